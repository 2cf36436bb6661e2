import { MigrationInterface, QueryRunner } from 'typeorm';

/** Results from the identity core (spec 5.3): every one received, applied or not. */
export class ActivationResults1763877600000 implements MigrationInterface {
  name = 'ActivationResults1763877600000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE activation_result (
        id bigserial PRIMARY KEY,
        activation_id uuid NOT NULL,
        result varchar(10) NOT NULL,
        reason text,
        completed_at timestamptz NOT NULL,
        applied boolean NOT NULL,
        not_applied_because varchar(30),
        received_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE INDEX activation_result_activation_idx ON activation_result (activation_id)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE activation_result`);
  }
}
