import { MigrationInterface, QueryRunner } from 'typeorm';

/** The ATM channel (spec 4): where a request came from, reversals, and refused messages. */
export class AtmChannel1763874000000 implements MigrationInterface {
  name = 'AtmChannel1763874000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE activation_request
        ADD COLUMN acquirer_id varchar(11),
        ADD COLUMN terminal_id varchar(8),
        ADD COLUMN stan char(6),
        ADD COLUMN rrn varchar(12),
        ADD COLUMN transmitted_at char(10),
        ADD COLUMN pan_hash char(64),
        ADD COLUMN reversed_at timestamptz`);
    // A MAC failure is answered 63 and kept here (never decided, never published); no PAN, no personal data.
    await db.query(`
      CREATE TABLE atm_refused_message (
        id bigserial PRIMARY KEY,
        acquirer_id varchar(11),
        bank_code varchar(4),
        mti char(4) NOT NULL,
        stan char(6),
        rrn varchar(12),
        terminal_id varchar(8),
        response_code char(2) NOT NULL,
        reason text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE atm_refused_message`);
    await db.query(`
      ALTER TABLE activation_request
        DROP COLUMN acquirer_id, DROP COLUMN terminal_id, DROP COLUMN stan, DROP COLUMN rrn,
        DROP COLUMN transmitted_at, DROP COLUMN pan_hash, DROP COLUMN reversed_at`);
  }
}
