import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A bank's next MAC key, held beside its current one during a rotation:
 * requests verify under either, answers are MAC'd under the current one,
 * and `mac-key promote` makes the next one current. The ATM network can then
 * change keys terminal by terminal, with no moment when both ends must switch
 * at once. Sealed like the current key (KEY_ENCRYPTION_KEY, the bank code as
 * associated data).
 */
export class MacKeyNext1764300000000 implements MigrationInterface {
  name = 'MacKeyNext1764300000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE bank ADD COLUMN mac_key_next_sealed text`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE bank DROP COLUMN mac_key_next_sealed`);
  }
}
