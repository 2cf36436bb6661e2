import { readFileSync } from 'node:fs';
import { DataSource } from 'typeorm';
import { CertificateInfo, parseCertificateBundle, verifyChain } from '../../libs/pki';
import { Channel } from '../activation/activation.types';
import { JsonLogger } from '../logging/json-logger';
import { BankFileEntry } from './bank-registry-file';

export const BANKS_FILE_SOURCE = 'BANKS_FILE';

export interface RegisteredCertificate {
  readonly info: CertificateInfo;
  /** Why it can never be used (untrusted chain, no digitalSignature usage); null when it can. */
  readonly trustProblem: string | null;
  /** The issuing certificates (intermediates, anchor): each must be within its validity period when used. */
  readonly issuers: readonly CertificateInfo[];
}

export interface BankProfile {
  readonly code: string;
  readonly name: string;
  readonly channels: ReadonlySet<Channel>;
  readonly acquirerIds: readonly string[];
  readonly rateLimitPerSecond: number;
  /** By thumbprint (the JWS kid). */
  readonly certificates: ReadonlyMap<string, RegisteredCertificate>;
  /** Double-length 3DES key for ISO 8583 MACs; held in memory only, never written to the store. */
  readonly macKey: Buffer | null;
}

/**
 * The partner banks, held in memory for the hot path and rebuilt from the
 * store. A certificate that is expired, not yet valid or untrusted is loaded
 * with a warning and refused when used; it never stops the gateway or
 * affects other certificates and banks.
 */
export class BankDirectory {
  private banks = new Map<string, BankProfile>();
  private byAcquirer = new Map<string, BankProfile>();
  private macKeys = new Map<string, Buffer>();
  private readonly log: JsonLogger;

  constructor(
    private readonly dataSource: DataSource,
    private readonly trustAnchors: CertificateInfo[],
    logger: JsonLogger,
  ) {
    this.log = logger.child('banks');
  }

  get(code: string): BankProfile | undefined {
    return this.banks.get(code);
  }

  /** The bank an ATM switch's field 32 identifies. */
  forAcquirer(acquirerId: string): BankProfile | undefined {
    return this.byAcquirer.get(acquirerId);
  }

  all(): BankProfile[] {
    return [...this.banks.values()];
  }

  /**
   * Writes BANKS_FILE into the store. The file is the whole list: a bank or a
   * certificate taken out of it is removed, so it stops authenticating at the
   * next start, wherever the file was loaded from.
   */
  async syncFromFile(entries: BankFileEntry[]): Promise<void> {
    const source = BANKS_FILE_SOURCE;
    this.macKeys = new Map(entries.filter((b) => b.macKey).map((b) => [b.code, Buffer.from(b.macKey!, 'hex')]));
    await this.dataSource.transaction(async (db) => {
      const removed: { code: string }[] = await db.query(`SELECT code FROM bank WHERE NOT (code = ANY($1::varchar[]))`, [entries.map((b) => b.code)]);
      if (removed.length) {
        const codes = removed.map((r) => r.code);
        await db.query(`DELETE FROM bank_certificate WHERE bank_code = ANY($1::varchar[])`, [codes]);
        await db.query(`DELETE FROM bank WHERE code = ANY($1::varchar[])`, [codes]);
        this.log.emit('warn', 'banks no longer in BANKS_FILE were removed with their certificates', { banks: codes });
      }
      for (const bank of entries) {
        await db.query(
          `INSERT INTO bank (code, name, channels, acquirer_ids, rate_limit_per_second)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (code) DO UPDATE SET name = $2, channels = $3, acquirer_ids = $4, rate_limit_per_second = $5, updated_at = now()`,
          [bank.code, bank.name, bank.channels, bank.acquirerIds, bank.rateLimitPerSecond],
        );
        const thumbprints: string[] = [];
        for (const file of bank.certificateFiles) {
          let pem: string;
          let leaf: CertificateInfo | undefined;
          try {
            pem = readFileSync(file, 'utf8');
            leaf = parseCertificateBundle(pem)[0];
          } catch (error) {
            this.log.emit('warn', 'bank certificate file cannot be read; skipped', { bank: bank.code, file, error: (error as Error).message });
            continue;
          }
          if (!leaf) {
            this.log.emit('warn', 'bank certificate file holds no certificate; skipped', { bank: bank.code, file });
            continue;
          }
          thumbprints.push(leaf.thumbprint);
          await db.query(
            `INSERT INTO bank_certificate (thumbprint, bank_code, pem, subject, not_before, not_after, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (thumbprint) DO UPDATE SET bank_code = $2, pem = $3, subject = $4, not_before = $5, not_after = $6, source = $7`,
            [leaf.thumbprint, bank.code, pem, leaf.subject, leaf.notBefore, leaf.notAfter, source],
          );
        }
        const dropped: unknown[] = await db.query(
          `WITH dropped AS (DELETE FROM bank_certificate WHERE bank_code = $1 AND NOT (thumbprint = ANY($2::varchar[])) RETURNING thumbprint)
           SELECT thumbprint FROM dropped`,
          [bank.code, thumbprints],
        );
        if (dropped.length) this.log.emit('warn', 'certificates no longer in BANKS_FILE were removed', { bank: bank.code, count: dropped.length });
      }
    });
  }

  /** Rebuilds the in-memory directory from the store. */
  async reload(now = new Date()): Promise<void> {
    const banks: { code: string; name: string; channels: Channel[]; acquirer_ids: string[]; rate_limit_per_second: number }[] =
      await this.dataSource.query(`SELECT code, name, channels, acquirer_ids, rate_limit_per_second FROM bank`);
    const certificates: { thumbprint: string; bank_code: string; pem: string }[] = await this.dataSource.query(
      `SELECT thumbprint, bank_code, pem FROM bank_certificate WHERE revoked_at IS NULL`,
    );
    const next = new Map<string, BankProfile>();
    for (const bank of banks) {
      const registered = new Map<string, RegisteredCertificate>();
      for (const row of certificates.filter((c) => c.bank_code === bank.code)) {
        const certificate = this.assess(bank.code, row.pem, now);
        if (certificate) registered.set(certificate.info.thumbprint, certificate);
      }
      next.set(bank.code, {
        code: bank.code,
        name: bank.name,
        channels: new Set(bank.channels),
        acquirerIds: bank.acquirer_ids,
        rateLimitPerSecond: bank.rate_limit_per_second,
        certificates: registered,
        macKey: this.macKeys.get(bank.code) ?? null,
      });
    }
    this.banks = next;
    this.byAcquirer = new Map([...next.values()].flatMap((bank) => bank.acquirerIds.map((acquirer) => [acquirer, bank] as const)));
    this.log.emit('info', 'bank directory loaded', {
      banks: this.all().map((b) => ({ code: b.code, channels: [...b.channels], certificates: b.certificates.size })),
    });
  }

  private assess(bankCode: string, pem: string, now: Date): RegisteredCertificate | null {
    let bundle: CertificateInfo[];
    try {
      bundle = parseCertificateBundle(pem);
    } catch (error) {
      this.log.emit('warn', 'registered certificate cannot be parsed; ignored', { bank: bankCode, error: (error as Error).message });
      return null;
    }
    const [leaf, ...intermediates] = bundle;
    // Structure and signatures now; dates of the chain are checked on each use (BankAuthenticator).
    const chain = verifyChain(leaf, intermediates, this.trustAnchors);
    let trustProblem: string | null = null;
    if (!chain.trusted) trustProblem = `certificate does not chain to a configured trust anchor: ${chain.problem}`;
    else if (!leaf.keyUsage?.has('digitalSignature')) trustProblem = 'certificate lacks the digitalSignature key usage';
    const context = { bank: bankCode, kid: leaf.thumbprint, subject: leaf.subject, notBefore: leaf.notBefore, notAfter: leaf.notAfter };
    if (trustProblem) this.log.emit('warn', `bank certificate loaded but will be refused: ${trustProblem}`, context);
    else if (leaf.notAfter < now) this.log.emit('warn', 'bank certificate loaded but has expired; requests signed with it are refused', context);
    else if (leaf.notBefore > now) this.log.emit('warn', 'bank certificate loaded but is not yet valid; requests signed with it are refused until then', context);
    return { info: leaf, trustProblem, issuers: chain.trusted ? chain.issuers : [] };
  }
}
