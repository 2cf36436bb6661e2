import { MigrationInterface, QueryRunner } from 'typeorm';

/** A result redelivered by Kafka is recorded (and reported) once. */
export class ActivationResultOnce1763884800000 implements MigrationInterface {
  name = 'ActivationResultOnce1763884800000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`CREATE UNIQUE INDEX activation_result_once_uq ON activation_result (activation_id, result, completed_at)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX activation_result_once_uq`);
  }
}
