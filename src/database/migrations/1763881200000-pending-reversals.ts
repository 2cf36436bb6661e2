import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A reversal advice that arrives before (or overtakes) its own 0200 is kept
 * here, and applied when that 0200 is decided (spec 4.4: the reversal must
 * not be lost because the original was late).
 */
export class PendingReversals1763881200000 implements MigrationInterface {
  name = 'PendingReversals1763881200000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE atm_pending_reversal (
        bank_code varchar(4) NOT NULL,
        request_id varchar(64) NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (bank_code, request_id)
      )`);
    // Which activations were accepted when decided, whatever happened after (results, reversals).
    await db.query(`ALTER TABLE activation_request ADD COLUMN accepted boolean`);
    await db.query(`UPDATE activation_request SET accepted = (status IN ('ACCEPTED', 'ACTIVATED', 'FAILED', 'REVERSED'))`);
    await db.query(`ALTER TABLE activation_request ALTER COLUMN accepted SET NOT NULL`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE activation_request DROP COLUMN accepted`);
    await db.query(`DROP TABLE atm_pending_reversal`);
  }
}
