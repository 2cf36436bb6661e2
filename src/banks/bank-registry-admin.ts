import { DataSource, EntityManager } from 'typeorm';
import { maskMobile, maskNationalId } from '../../libs/identity';
import { keyCheckValue } from '../../libs/iso8583';
import { sealSecret } from '../../libs/keys';
import { CertificateInfo, parseCertificateBundle, verifyChain } from '../../libs/pki';
import { CHANNELS, Channel } from '../activation/activation.types';

/** A refused registry change, said so that the operator knows what to fix. */
export class RegistryChangeError extends Error {}

export const CLI_SOURCE = 'CLI';
const BANK_CODE = /^[A-Z]{4}$/;
const ACQUIRER = /^[0-9]{1,11}$/;

export interface BankSummary {
  code: string;
  name: string;
  channels: Channel[];
  acquirerIds: string[];
  rateLimitPerSecond: number;
  managedBy: 'BANKS_FILE' | 'CLI';
  activeCertificates: number;
  macKey: 'set' | 'not set';
}

export interface CertificateSummary {
  thumbprint: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  source: string;
  revokedAt: string | null;
}

/**
 * What the operator CLI changes in the bank registry (issue 6). Every change
 * is one transaction with its audit entry (who, what, when), and makes the
 * bank managed by the CLI from then on. Running gateways see the new audit
 * entry and reload (BankDirectory.watch), so no restart is needed. MAC keys
 * are sealed under the key-encryption key; only their check value is shown.
 */
export class BankRegistryAdmin {
  constructor(
    private readonly dataSource: DataSource,
    private readonly trustAnchors: CertificateInfo[],
    private readonly keyEncryptionKey: Buffer,
    private readonly operator: string,
  ) {}

  async listBanks(): Promise<BankSummary[]> {
    const rows: { code: string; name: string; channels: Channel[]; acquirer_ids: string[]; rate_limit_per_second: number; managed_by: 'BANKS_FILE' | 'CLI'; mac_key_sealed: string | null; certificates: number }[] =
      await this.dataSource.query(
        `SELECT b.code, b.name, b.channels, b.acquirer_ids, b.rate_limit_per_second, b.managed_by, b.mac_key_sealed,
                (SELECT count(*)::int FROM bank_certificate c WHERE c.bank_code = b.code AND c.revoked_at IS NULL) AS certificates
           FROM bank b ORDER BY b.code`,
      );
    return rows.map((r) => ({
      code: r.code,
      name: r.name,
      channels: r.channels,
      acquirerIds: r.acquirer_ids,
      rateLimitPerSecond: r.rate_limit_per_second,
      managedBy: r.managed_by,
      activeCertificates: r.certificates,
      macKey: r.mac_key_sealed ? 'set' : 'not set',
    }));
  }

  async registerBank(bank: { code: string; name: string; channels: string[]; acquirerIds: string[]; rateLimitPerSecond: number }): Promise<void> {
    if (!BANK_CODE.test(bank.code)) throw new RegistryChangeError(`--code must be the 4 letters of the bank's BIC (got ${JSON.stringify(bank.code)})`);
    if (!bank.name.trim()) throw new RegistryChangeError('--name must not be empty');
    const channels = checkChannels(bank.channels);
    for (const acquirer of bank.acquirerIds) if (!ACQUIRER.test(acquirer)) throw new RegistryChangeError(`--acquirer must be 1-11 digits (got ${JSON.stringify(acquirer)})`);
    if (!Number.isInteger(bank.rateLimitPerSecond) || bank.rateLimitPerSecond < 1) throw new RegistryChangeError('--rate must be a whole number of requests per second, at least 1');
    await this.change('bank-registered', bank.code, { name: bank.name, channels, acquirerIds: bank.acquirerIds, rateLimitPerSecond: bank.rateLimitPerSecond }, async (db) => {
      const [taken] = await db.query(`SELECT code FROM bank WHERE acquirer_ids && $1::text[]`, [bank.acquirerIds]);
      if (taken) throw new RegistryChangeError(`an acquirer id of ${bank.code} already identifies ${taken.code}`);
      const inserted: unknown[] = await db.query(
        `INSERT INTO bank (code, name, channels, acquirer_ids, rate_limit_per_second, managed_by) VALUES ($1, $2, $3, $4, $5, 'CLI')
         ON CONFLICT (code) DO NOTHING RETURNING code`,
        [bank.code, bank.name.trim(), channels, bank.acquirerIds, bank.rateLimitPerSecond],
      );
      if (inserted.length === 0) throw new RegistryChangeError(`bank ${bank.code} already exists`);
    });
  }

  /** Registers a signing certificate (a PEM: the certificate, then any intermediates) after checking it chains to the trust anchors. */
  async addCertificate(bankCode: string, pem: string, now = new Date()): Promise<CertificateSummary> {
    let bundle: CertificateInfo[];
    try {
      bundle = parseCertificateBundle(pem);
    } catch (error) {
      throw new RegistryChangeError(`the file is not a PEM certificate: ${(error as Error).message}`);
    }
    const [leaf, ...intermediates] = bundle;
    if (!leaf) throw new RegistryChangeError('the file holds no certificate');
    const chain = verifyChain(leaf, intermediates, this.trustAnchors);
    if (!chain.trusted) throw new RegistryChangeError(`the certificate does not chain to the trust anchors (TRUST_ANCHORS): ${chain.problem}`);
    if (!leaf.keyUsage?.has('digitalSignature')) throw new RegistryChangeError('the certificate lacks the digitalSignature key usage, so it cannot sign requests');
    if (leaf.notAfter < now) throw new RegistryChangeError(`the certificate expired on ${leaf.notAfter.toISOString()}`);
    await this.change('certificate-added', bankCode, { thumbprint: leaf.thumbprint, subject: leaf.subject, notAfter: leaf.notAfter.toISOString() }, async (db) => {
      const [existing] = await db.query(`SELECT bank_code, revoked_at FROM bank_certificate WHERE thumbprint = $1`, [leaf.thumbprint]);
      if (existing) {
        throw new RegistryChangeError(
          existing.bank_code !== bankCode
            ? `this certificate is already registered for ${existing.bank_code}`
            : existing.revoked_at
              ? 'this certificate was revoked; a revoked certificate cannot be added again'
              : 'this certificate is already registered for the bank',
        );
      }
      await db.query(
        `INSERT INTO bank_certificate (thumbprint, bank_code, pem, subject, not_before, not_after, source) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [leaf.thumbprint, bankCode, pem, leaf.subject, leaf.notBefore, leaf.notAfter, CLI_SOURCE],
      );
    });
    return { thumbprint: leaf.thumbprint, subject: leaf.subject, notBefore: leaf.notBefore.toISOString(), notAfter: leaf.notAfter.toISOString(), source: CLI_SOURCE, revokedAt: null };
  }

  async listCertificates(bankCode: string): Promise<CertificateSummary[]> {
    await this.requireBank(this.dataSource.manager, bankCode);
    const rows: { thumbprint: string; subject: string; not_before: Date; not_after: Date; source: string; revoked_at: Date | null }[] = await this.dataSource.query(
      `SELECT thumbprint, subject, not_before, not_after, source, revoked_at FROM bank_certificate WHERE bank_code = $1 ORDER BY not_before, thumbprint`,
      [bankCode],
    );
    return rows.map((r) => ({
      thumbprint: r.thumbprint,
      subject: r.subject,
      notBefore: r.not_before.toISOString(),
      notAfter: r.not_after.toISOString(),
      source: r.source,
      revokedAt: r.revoked_at?.toISOString() ?? null,
    }));
  }

  async revokeCertificate(bankCode: string, thumbprint: string): Promise<void> {
    await this.change('certificate-revoked', bankCode, { thumbprint }, async (db) => {
      // In a CTE: TypeORM answers a bare UPDATE ... RETURNING with [rows, count], not the rows.
      const updated: unknown[] = await db.query(
        `WITH revoked AS (
           UPDATE bank_certificate SET revoked_at = now(), revoked_by = $3 WHERE bank_code = $1 AND thumbprint = $2 AND revoked_at IS NULL RETURNING thumbprint
         ) SELECT thumbprint FROM revoked`,
        [bankCode, thumbprint, this.operator],
      );
      if (updated.length === 0) throw new RegistryChangeError(`no certificate of ${bankCode} in use has the thumbprint ${thumbprint} (see: certs list --bank ${bankCode})`);
    });
  }

  /** Sets or rotates the ISO 8583 MAC key; returns its check value (KCV), never the key. */
  async setMacKey(bankCode: string, keyHex: string): Promise<{ checkValue: string }> {
    const hex = keyHex.trim();
    if (!/^[0-9A-Fa-f]{32}$/.test(hex)) throw new RegistryChangeError('the MAC key must be 32 hex digits (a double-length 3DES key)');
    const key = Buffer.from(hex, 'hex');
    const checkValue = keyCheckValue(key);
    await this.change('mac-key-set', bankCode, { checkValue }, async (db) => {
      await db.query(`UPDATE bank SET mac_key_sealed = $2 WHERE code = $1`, [bankCode, sealSecret(this.keyEncryptionKey, key, bankCode)]);
    });
    return { checkValue };
  }

  /** The bank's rate limit, shared by its HTTP and ISO 8583 requests (`429` / `91` above it). */
  async setRateLimit(bankCode: string, perSecond: number): Promise<void> {
    if (!Number.isInteger(perSecond) || perSecond < 1) throw new RegistryChangeError('--rate must be a whole number of requests per second, at least 1');
    await this.change('rate-limit-set', bankCode, { rateLimitPerSecond: perSecond }, async (db) => {
      await db.query(`UPDATE bank SET rate_limit_per_second = $2 WHERE code = $1`, [bankCode, perSecond]);
    });
  }

  async setChannel(bankCode: string, channel: string, enabled: boolean): Promise<Channel[]> {
    const [checked] = checkChannels([channel]);
    let channels: Channel[] = [];
    await this.change(enabled ? 'channel-enabled' : 'channel-disabled', bankCode, { channel: checked }, async (db) => {
      const [bank] = await db.query(`SELECT channels FROM bank WHERE code = $1`, [bankCode]);
      const current = new Set<Channel>(bank.channels);
      if (enabled) current.add(checked);
      else current.delete(checked);
      channels = CHANNELS.filter((c) => current.has(c));
      await db.query(`UPDATE bank SET channels = $2 WHERE code = $1`, [bankCode, channels]);
    });
    return channels;
  }

  /** One activation request, by the bank's request id or by activation id; national ID and mobile masked. */
  async showRequest(query: { bankCode?: string; requestId?: string; activationId?: string }): Promise<Record<string, unknown> | null> {
    let rows: Record<string, unknown>[];
    const columns = `activation_id, bank_code, request_id, channel, national_id, mobile, status, reason, decided_at, completed_at, result_reason,
                     acquirer_id, terminal_id, stan, rrn, response_status`;
    if (query.activationId) {
      if (!/^[0-9a-f-]{36}$/i.test(query.activationId)) throw new RegistryChangeError('--activation-id must be a UUID');
      rows = await this.dataSource.query(`SELECT ${columns} FROM activation_request WHERE activation_id = $1`, [query.activationId]);
    } else if (query.requestId && query.bankCode) {
      rows = await this.dataSource.query(`SELECT ${columns} FROM activation_request WHERE bank_code = $1 AND request_id = $2`, [query.bankCode, query.requestId]);
    } else {
      throw new RegistryChangeError('give --activation-id, or --bank with --request-id');
    }
    const [row] = rows;
    if (!row) return null;
    const events: { topic: string; type: string; published_at: Date | null }[] = await this.dataSource.query(
      `SELECT topic, payload::jsonb ->> 'type' AS type, published_at FROM outbox_event
        WHERE payload::jsonb -> 'data' ->> 'activationId' = $1 ORDER BY id`,
      [row.activation_id],
    );
    return {
      ...row,
      national_id: maskNationalId(String(row.national_id)),
      mobile: maskMobile(String(row.mobile)),
      events: events.map((e) => ({ topic: e.topic, type: e.type, publishedAt: e.published_at?.toISOString() ?? 'not yet' })),
    };
  }

  async audit(bankCode: string | undefined, limit: number): Promise<{ at: string; operator: string; action: string; bank: string | null; details: unknown }[]> {
    const rows: { at: Date; operator: string; action: string; bank_code: string | null; details: unknown }[] = await this.dataSource.query(
      `SELECT at, operator, action, bank_code, details FROM registry_audit WHERE ($1::text IS NULL OR bank_code = $1) ORDER BY id DESC LIMIT $2`,
      [bankCode ?? null, limit],
    );
    return rows.map((r) => ({ at: r.at.toISOString(), operator: r.operator, action: r.action, bank: r.bank_code, details: r.details }));
  }

  /** A change to one bank, with its audit entry, in one transaction; the bank is managed by the CLI from then on. */
  private async change(action: string, bankCode: string, details: Record<string, unknown>, apply: (db: EntityManager) => Promise<void>): Promise<void> {
    await this.dataSource.transaction(async (db) => {
      if (action !== 'bank-registered') await this.requireBank(db, bankCode, true);
      await apply(db);
      await db.query(`UPDATE bank SET managed_by = 'CLI', updated_at = now() WHERE code = $1`, [bankCode]);
      await db.query(`INSERT INTO registry_audit (operator, action, bank_code, details) VALUES ($1, $2, $3, $4)`, [this.operator, action, bankCode, JSON.stringify(details)]);
    });
  }

  private async requireBank(db: EntityManager, bankCode: string, lock = false): Promise<void> {
    const [bank] = await db.query(`SELECT code FROM bank WHERE code = $1${lock ? ' FOR UPDATE' : ''}`, [bankCode]);
    if (!bank) throw new RegistryChangeError(`no bank ${JSON.stringify(bankCode)} (see: banks list)`);
  }
}

function checkChannels(channels: string[]): Channel[] {
  const unknown = channels.filter((c) => !(CHANNELS as readonly string[]).includes(c));
  if (unknown.length || channels.length === 0) throw new RegistryChangeError(`channels must be among ${CHANNELS.join(', ')} (got ${JSON.stringify(channels)})`);
  return CHANNELS.filter((c) => channels.includes(c));
}
