import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Under mutual TLS, the client certificates that may speak for a bank: by
 * thumbprint, or `CN=` and a common name. A bank with none is refused on a
 * listener that requires client certificates.
 */
export class TlsClients1764300000001 implements MigrationInterface {
  name = 'TlsClients1764300000001';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE bank ADD COLUMN tls_clients text[] NOT NULL DEFAULT '{}'`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE bank DROP COLUMN tls_clients`);
  }
}
