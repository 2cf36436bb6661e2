import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The bank registry becomes manageable at run time (the operator CLI):
 * - who manages a bank: BANKS_FILE, or the CLI (then the file no longer overrides it);
 * - MAC keys stored sealed under the key-encryption key (never in clear);
 * - an audit trail of every change, whose newest id tells running gateways to reload.
 */
export class RegistryManagement1763906400000 implements MigrationInterface {
  name = 'RegistryManagement1763906400000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE bank ADD COLUMN managed_by varchar(16) NOT NULL DEFAULT 'BANKS_FILE' CHECK (managed_by IN ('BANKS_FILE', 'CLI'))`);
    await db.query(`ALTER TABLE bank ADD COLUMN mac_key_sealed text`);
    await db.query(`ALTER TABLE bank_certificate ADD COLUMN revoked_by text`);
    await db.query(`
      CREATE TABLE registry_audit (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        operator text NOT NULL,
        action varchar(40) NOT NULL,
        bank_code varchar(4),
        details jsonb NOT NULL DEFAULT '{}'
      )`);
    await db.query(`CREATE INDEX registry_audit_bank_idx ON registry_audit (bank_code, at)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE registry_audit`);
    await db.query(`ALTER TABLE bank_certificate DROP COLUMN revoked_by`);
    await db.query(`ALTER TABLE bank DROP COLUMN mac_key_sealed, DROP COLUMN managed_by`);
  }
}
