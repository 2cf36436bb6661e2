import { DataSource } from 'typeorm';
import { Sql } from '../database/sql';
import { Channel } from '../activation/activation.types';

/** Who manages a bank's registry entry: BANKS_FILE at start-up, or the operator CLI once it changed the bank. */
export type BankManager = 'BANKS_FILE' | 'CLI';

/** A bank as the directory loads it; its MAC keys still sealed. */
export interface StoredBank {
  code: string;
  name: string;
  channels: Channel[];
  acquirerIds: string[];
  rateLimitPerSecond: number;
  macKeySealed: string | null;
  /** The key a rotation moves to (migration 1764300000000-mac-key-next). */
  macKeyNextSealed: string | null;
  /** Its TLS client certificates, by thumbprint or `CN=` common name. */
  tlsClients: string[];
}

/** A bank as the operator lists it. */
export interface BankListing {
  code: string;
  name: string;
  channels: Channel[];
  acquirerIds: string[];
  rateLimitPerSecond: number;
  managedBy: BankManager;
  macKeySet: boolean;
  macKeyNextSet: boolean;
  activeCertificates: number;
}

/** A bank's entry as BANKS_FILE or the CLI writes it. */
export interface BankEntry {
  code: string;
  name: string;
  channels: Channel[];
  acquirerIds: string[];
  rateLimitPerSecond: number;
}

/** A signing certificate (PEM: the certificate, then any intermediates) as written to the registry. */
export interface NewCertificate {
  thumbprint: string;
  bankCode: string;
  pem: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  /** BANKS_FILE or CLI: BANKS_FILE removes only the certificates it added. */
  source: string;
}

/** A certificate not revoked, as the directory assesses it. */
export interface CertificateInUse {
  thumbprint: string;
  bankCode: string;
  pem: string;
}

/** A certificate as the operator lists it, revoked ones too. */
export interface CertificateListing {
  thumbprint: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  source: string;
  revokedAt: Date | null;
}

/** One entry of the registry's audit trail. */
export interface AuditEntry {
  at: Date;
  operator: string;
  action: string;
  bankCode: string | null;
  details: unknown;
}

/**
 * The bank registry: bank, bank_certificate and registry_audit, every
 * statement BankDirectory and BankRegistryAdmin run on them. Each audit
 * entry doubles as the registry's change marker: a newer one makes every
 * instance reload. Methods that must share the caller's transaction take it
 * (`tx`); the others use the pool.
 */
export class BankRepository {
  constructor(private readonly dataSource: DataSource) {}

  /** The newest audit entry's id ('0' for none): it changes whenever the registry does. */
  async newestChange(): Promise<string> {
    const [{ newest }]: { newest: string }[] = await this.dataSource.query(`SELECT coalesce(max(id), 0)::text AS newest FROM registry_audit`);
    return newest;
  }

  async allBanks(): Promise<StoredBank[]> {
    return this.dataSource.query(
      `SELECT code, name, channels, acquirer_ids AS "acquirerIds", rate_limit_per_second AS "rateLimitPerSecond", mac_key_sealed AS "macKeySealed",
              mac_key_next_sealed AS "macKeyNextSealed", tls_clients AS "tlsClients" FROM bank`,
    );
  }

  /** Every certificate not revoked, of every bank. */
  async certificatesInUse(): Promise<CertificateInUse[]> {
    return this.dataSource.query(`SELECT thumbprint, bank_code AS "bankCode", pem FROM bank_certificate WHERE revoked_at IS NULL`);
  }

  /** The banks with the number of certificates in use, by code. */
  async listBanks(): Promise<BankListing[]> {
    return this.dataSource.query(
      `SELECT b.code, b.name, b.channels, b.acquirer_ids AS "acquirerIds", b.rate_limit_per_second AS "rateLimitPerSecond", b.managed_by AS "managedBy",
              b.mac_key_sealed IS NOT NULL AS "macKeySet", b.mac_key_next_sealed IS NOT NULL AS "macKeyNextSet",
              (SELECT count(*)::int FROM bank_certificate c WHERE c.bank_code = b.code AND c.revoked_at IS NULL) AS "activeCertificates"
         FROM bank b ORDER BY b.code`,
    );
  }

  async exists(bankCode: string): Promise<boolean> {
    const [bank] = await this.dataSource.query(`SELECT code FROM bank WHERE code = $1`, [bankCode]);
    return Boolean(bank);
  }

  /** Locks the bank's row until the transaction ends, so changes to one bank are made one after the other; false when there is no such bank. */
  async lock(tx: Sql, bankCode: string): Promise<boolean> {
    const [bank] = await tx.query(`SELECT code FROM bank WHERE code = $1 FOR UPDATE`, [bankCode]);
    return Boolean(bank);
  }

  async codesManagedBy(tx: Sql, manager: BankManager): Promise<string[]> {
    const rows: { code: string }[] = await tx.query(`SELECT code FROM bank WHERE managed_by = $1`, [manager]);
    return rows.map((r) => r.code);
  }

  /** The banks BANKS_FILE manages whose code is not among `codes`. */
  async fileBanksNotIn(tx: Sql, codes: readonly string[]): Promise<string[]> {
    const rows: { code: string }[] = await tx.query(`SELECT code FROM bank WHERE managed_by = 'BANKS_FILE' AND NOT (code = ANY($1::varchar[]))`, [codes]);
    return rows.map((r) => r.code);
  }

  /** Removes banks with all their certificates. */
  async remove(tx: Sql, codes: readonly string[]): Promise<void> {
    await tx.query(`DELETE FROM bank_certificate WHERE bank_code = ANY($1::varchar[])`, [codes]);
    await tx.query(`DELETE FROM bank WHERE code = ANY($1::varchar[])`, [codes]);
  }

  /** BANKS_FILE's entry for a bank, new or replacing what the file said before. */
  async upsertFromFile(tx: Sql, bank: BankEntry & { macKeySealed: string | null; tlsClients: string[] }): Promise<void> {
    await tx.query(
      `INSERT INTO bank (code, name, channels, acquirer_ids, rate_limit_per_second, mac_key_sealed, tls_clients)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (code) DO UPDATE SET name = $2, channels = $3, acquirer_ids = $4, rate_limit_per_second = $5, mac_key_sealed = $6, tls_clients = $7, updated_at = now()`,
      [bank.code, bank.name, bank.channels, bank.acquirerIds, bank.rateLimitPerSecond, bank.macKeySealed, bank.tlsClients],
    );
  }

  async setTlsClients(tx: Sql, bankCode: string, tlsClients: readonly string[]): Promise<void> {
    await tx.query(`UPDATE bank SET tls_clients = $2 WHERE code = $1`, [bankCode, tlsClients]);
  }

  /** A bank registered with the CLI, managed by it from the start; false when the code is taken. */
  async insertFromCli(tx: Sql, bank: BankEntry): Promise<boolean> {
    const inserted: unknown[] = await tx.query(
      `INSERT INTO bank (code, name, channels, acquirer_ids, rate_limit_per_second, managed_by) VALUES ($1, $2, $3, $4, $5, 'CLI')
       ON CONFLICT (code) DO NOTHING RETURNING code`,
      [bank.code, bank.name, bank.channels, bank.acquirerIds, bank.rateLimitPerSecond],
    );
    return inserted.length > 0;
  }

  /** The bank that some of `acquirerIds` already identify, if any. */
  async holderOfAcquirerIds(tx: Sql, acquirerIds: readonly string[]): Promise<string | null> {
    const [taken]: { code: string }[] = await tx.query(`SELECT code FROM bank WHERE acquirer_ids && $1::text[]`, [acquirerIds]);
    return taken?.code ?? null;
  }

  /** The CLI manages the bank from now on: BANKS_FILE's entry for it is ignored. */
  async markManagedByCli(tx: Sql, bankCode: string): Promise<void> {
    await tx.query(`UPDATE bank SET managed_by = 'CLI', updated_at = now() WHERE code = $1`, [bankCode]);
  }

  async setRateLimit(tx: Sql, bankCode: string, perSecond: number): Promise<void> {
    await tx.query(`UPDATE bank SET rate_limit_per_second = $2 WHERE code = $1`, [bankCode, perSecond]);
  }

  async channelsOf(tx: Sql, bankCode: string): Promise<Channel[]> {
    const [bank]: { channels: Channel[] }[] = await tx.query(`SELECT channels FROM bank WHERE code = $1`, [bankCode]);
    return bank.channels;
  }

  async setChannels(tx: Sql, bankCode: string, channels: readonly Channel[]): Promise<void> {
    await tx.query(`UPDATE bank SET channels = $2 WHERE code = $1`, [bankCode, channels]);
  }

  async setMacKeySealed(tx: Sql, bankCode: string, sealed: string): Promise<void> {
    await tx.query(`UPDATE bank SET mac_key_sealed = $2 WHERE code = $1`, [bankCode, sealed]);
  }

  /** The key a rotation moves to. */
  async setNextMacKeySealed(tx: Sql, bankCode: string, sealed: string): Promise<void> {
    await tx.query(`UPDATE bank SET mac_key_next_sealed = $2 WHERE code = $1`, [bankCode, sealed]);
  }

  /** The next MAC key becomes the current one; returns it sealed, or null when the bank has no next key. */
  async promoteNextMacKey(tx: Sql, bankCode: string): Promise<string | null> {
    const [row]: { sealed: string }[] = await tx.query(
      // In a CTE: TypeORM answers a bare UPDATE … RETURNING with [rows, affected], a SELECT with its rows.
      `WITH promoted AS (
         UPDATE bank SET mac_key_sealed = mac_key_next_sealed, mac_key_next_sealed = NULL
          WHERE code = $1 AND mac_key_next_sealed IS NOT NULL RETURNING mac_key_sealed)
       SELECT mac_key_sealed AS sealed FROM promoted`,
      [bankCode],
    );
    return row?.sealed ?? null;
  }

  /** Who holds a certificate, and whether it was revoked; null when it was never registered. */
  async certificateHolder(tx: Sql, thumbprint: string): Promise<{ bankCode: string; revoked: boolean } | null> {
    const [row]: { bank_code: string; revoked_at: Date | null }[] = await tx.query(`SELECT bank_code, revoked_at FROM bank_certificate WHERE thumbprint = $1`, [thumbprint]);
    return row ? { bankCode: row.bank_code, revoked: Boolean(row.revoked_at) } : null;
  }

  async insertCertificate(tx: Sql, certificate: NewCertificate): Promise<void> {
    const c = certificate;
    await tx.query(
      `INSERT INTO bank_certificate (thumbprint, bank_code, pem, subject, not_before, not_after, source) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [c.thumbprint, c.bankCode, c.pem, c.subject, c.notBefore, c.notAfter, c.source],
    );
  }

  /** A certificate from BANKS_FILE: new, or its row rewritten (a file may move a certificate to another bank). */
  async upsertCertificate(tx: Sql, certificate: NewCertificate): Promise<void> {
    const c = certificate;
    await tx.query(
      `INSERT INTO bank_certificate (thumbprint, bank_code, pem, subject, not_before, not_after, source)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (thumbprint) DO UPDATE SET bank_code = $2, pem = $3, subject = $4, not_before = $5, not_after = $6, source = $7`,
      [c.thumbprint, c.bankCode, c.pem, c.subject, c.notBefore, c.notAfter, c.source],
    );
  }

  /** Deletes the bank's certificates from `source` other than `kept`; says how many. */
  async removeCertificatesNotIn(tx: Sql, bankCode: string, source: string, kept: readonly string[]): Promise<number> {
    const dropped: unknown[] = await tx.query(
      `WITH dropped AS (DELETE FROM bank_certificate WHERE bank_code = $1 AND source = $3 AND NOT (thumbprint = ANY($2::varchar[])) RETURNING thumbprint)
       SELECT thumbprint FROM dropped`,
      [bankCode, kept, source],
    );
    return dropped.length;
  }

  /** Revokes a certificate of the bank still in use; false when there is none with that thumbprint. */
  async revokeCertificate(tx: Sql, bankCode: string, thumbprint: string, operator: string): Promise<boolean> {
    // In a CTE: TypeORM answers a bare UPDATE ... RETURNING with [rows, count], not the rows.
    const revoked: unknown[] = await tx.query(
      `WITH revoked AS (
         UPDATE bank_certificate SET revoked_at = now(), revoked_by = $3 WHERE bank_code = $1 AND thumbprint = $2 AND revoked_at IS NULL RETURNING thumbprint
       ) SELECT thumbprint FROM revoked`,
      [bankCode, thumbprint, operator],
    );
    return revoked.length > 0;
  }

  /** The bank's certificates, revoked ones too, oldest first. */
  async certificatesOf(bankCode: string): Promise<CertificateListing[]> {
    const rows: { thumbprint: string; subject: string; not_before: Date; not_after: Date; source: string; revoked_at: Date | null }[] = await this.dataSource.query(
      `SELECT thumbprint, subject, not_before, not_after, source, revoked_at FROM bank_certificate WHERE bank_code = $1 ORDER BY not_before, thumbprint`,
      [bankCode],
    );
    return rows.map((r) => ({ thumbprint: r.thumbprint, subject: r.subject, notBefore: r.not_before, notAfter: r.not_after, source: r.source, revokedAt: r.revoked_at }));
  }

  /** An audit entry, in the transaction of the change it records; a registry-wide one has no bank. */
  async recordChange(tx: Sql, entry: { operator: string; action: string; bankCode: string | null; details: unknown }): Promise<void> {
    await tx.query(`INSERT INTO registry_audit (operator, action, bank_code, details) VALUES ($1, $2, $3, $4)`, [
      entry.operator,
      entry.action,
      entry.bankCode,
      JSON.stringify(entry.details),
    ]);
  }

  /** The newest `limit` audit entries, of one bank or of all, newest first. */
  async auditTrail(bankCode: string | null, limit: number): Promise<AuditEntry[]> {
    const rows: { at: Date; operator: string; action: string; bank_code: string | null; details: unknown }[] = await this.dataSource.query(
      `SELECT at, operator, action, bank_code, details FROM registry_audit WHERE ($1::text IS NULL OR bank_code = $1) ORDER BY id DESC LIMIT $2`,
      [bankCode, limit],
    );
    return rows.map((r) => ({ at: r.at, operator: r.operator, action: r.action, bankCode: r.bank_code, details: r.details }));
  }
}
