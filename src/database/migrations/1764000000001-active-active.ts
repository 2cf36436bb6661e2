import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Several gateway instances on one database:
 * - every outbox row belongs to one of 16 relay slots, derived from its topic
 *   and key, so all events of one key are published by whichever instance
 *   owns that slot, in id order;
 * - every relay is told of new rows at commit (LISTEN/NOTIFY), whichever
 *   instance wrote them;
 * - a row Kafka keeps refusing is retried later (`next_attempt_at`) and,
 *   after its attempts, parked with the reason;
 * - instances announce themselves with a heartbeat (how many share the work,
 *   and what each owns);
 * - each bank's rate budget lives here, leased to instances in small blocks.
 */
export class ActiveActive1764000000001 implements MigrationInterface {
  name = 'ActiveActive1764000000001';

  async up(db: QueryRunner): Promise<void> {
    // hashtext is immutable, so the slot is a stored generated column: no writer can get it wrong,
    // and rows already waiting are given theirs by the same rule.
    await db.query(`ALTER TABLE outbox_event ADD COLUMN slot smallint GENERATED ALWAYS AS ((hashtext(topic || '/' || message_key) & 15)::smallint) STORED`);
    await db.query(`ALTER TABLE outbox_event ADD COLUMN attempts integer NOT NULL DEFAULT 0`);
    await db.query(`ALTER TABLE outbox_event ADD COLUMN next_attempt_at timestamptz`);
    await db.query(`ALTER TABLE outbox_event ADD COLUMN last_error text`);
    await db.query(`ALTER TABLE outbox_event ADD COLUMN parked_at timestamptz`);
    await db.query(`CREATE INDEX outbox_event_slot_pending_idx ON outbox_event (slot, id) WHERE published_at IS NULL`);
    // Rows waiting for a retry or parked: few, read often (they hold back their key).
    await db.query(`CREATE INDEX outbox_event_held_idx ON outbox_event (slot) WHERE published_at IS NULL AND next_attempt_at IS NOT NULL`);
    // Every instance's relay is told of new rows at commit, whoever wrote them: a decision taken on one
    // instance may be in a slot another owns. One notification per writing transaction (a statement
    // trigger; PostgreSQL folds identical notifications of one transaction into one).
    await db.query(`
      CREATE FUNCTION outbox_event_written() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('outbox_event', '');
        RETURN NULL;
      END $$`);
    await db.query(`CREATE TRIGGER outbox_event_written AFTER INSERT ON outbox_event FOR EACH STATEMENT EXECUTE FUNCTION outbox_event_written()`);
    // A queue table: every row is updated once (published) and deleted later, so dead row versions pile
    // up fast, and the relay's index scans walk their entries until vacuum removes them. Vacuum it
    // after every few thousand, not after a fifth of the table.
    await db.query(`ALTER TABLE outbox_event SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0)`);
    await db.query(`
      CREATE TABLE gateway_instance (
        instance_id text PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        started_at timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        relay_slots smallint[] NOT NULL DEFAULT '{}',
        partitions jsonb NOT NULL DEFAULT '{}'
      )`);
    await db.query(`
      CREATE TABLE bank_rate_budget (
        bank_code varchar(4) PRIMARY KEY,
        tokens double precision NOT NULL,
        refilled_at timestamptz NOT NULL
      )`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE bank_rate_budget`);
    await db.query(`DROP TABLE gateway_instance`);
    await db.query(`ALTER TABLE outbox_event RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay)`);
    await db.query(`DROP TRIGGER outbox_event_written ON outbox_event`);
    await db.query(`DROP FUNCTION outbox_event_written()`);
    await db.query(`DROP INDEX outbox_event_held_idx`);
    await db.query(`DROP INDEX outbox_event_slot_pending_idx`);
    for (const column of ['parked_at', 'last_error', 'next_attempt_at', 'attempts', 'slot']) await db.query(`ALTER TABLE outbox_event DROP COLUMN ${column}`);
  }
}
