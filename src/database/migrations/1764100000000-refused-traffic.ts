import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Refused traffic (a wrong or missing MAC, a 401) costs little and stays
 * bounded: counted per minute, source and code in one row per key
 * (`refused_traffic_minute`), with a bounded sample of recent refusals and
 * their reasons (`atm_refused_message` for ATM frames, `http_refused_request`
 * for HTTP requests). All three are pruned after their retention.
 */
export class RefusedTraffic1764100000000 implements MigrationInterface {
  name = 'RefusedTraffic1764100000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE refused_traffic_minute (
        minute timestamptz NOT NULL,
        channel varchar(4) NOT NULL,
        source varchar(64) NOT NULL,
        bank_code varchar(4) NOT NULL DEFAULT '',
        code varchar(32) NOT NULL,
        refused bigint NOT NULL,
        PRIMARY KEY (minute, channel, source, bank_code, code)
      )`);
    await db.query(`
      CREATE TABLE http_refused_request (
        id bigserial PRIMARY KEY,
        source_address varchar(64) NOT NULL,
        bank_code varchar(4),
        method varchar(8) NOT NULL,
        request_id varchar(64),
        code varchar(32) NOT NULL,
        reason text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE INDEX http_refused_request_received_idx ON http_refused_request (received_at)`);
    await db.query(`CREATE INDEX atm_refused_message_received_idx ON atm_refused_message (received_at)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX atm_refused_message_received_idx`);
    await db.query(`DROP TABLE http_refused_request`);
    await db.query(`DROP TABLE refused_traffic_minute`);
  }
}
