import { readFileSync } from 'node:fs';
import { MacKey } from '../../libs/iso8583';
import { CertificateInfo, parseCertificateBundle, verifyChain } from '../../libs/pki';
import { Channel } from '../activation/activation.types';
import { Transactions } from '../database/sql';
import { JsonLogger } from '../logging/json-logger';
import { KeyStore, KeyStoreError } from '../keys/key-store';
import { ConfigurationError } from '../config/gateway-config';
import { BankRepository, NewCertificate } from './bank.repository';
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
  /** Its double-length 3DES key for ISO 8583 MACs: in memory (opened from the registry, sealed) or in the PKCS#11 token (KEY_STORE). */
  readonly macKey: MacKey | null;
  /** During a rotation, the key the bank moves to: requests verify under either, answers use `macKey`. */
  readonly macKeyNext: MacKey | null;
  /** Under mutual TLS, the client certificates that may speak for it (thumbprints, `CN=` common names). */
  readonly tlsClients: ReadonlySet<string>;
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
  private readonly log: JsonLogger;
  /** Newest registry_audit id seen: a newer one means the registry changed (the CLI, another instance). */
  private seenChange = '0';
  private watcher: NodeJS.Timeout | null = null;

  constructor(
    private readonly registry: BankRepository,
    private readonly transactions: Transactions,
    private readonly trustAnchors: CertificateInfo[],
    /** Opens MAC keys as the registry holds them: sealed (software), or references to the token (pkcs11). */
    private readonly keys: KeyStore,
    logger: JsonLogger,
  ) {
    this.log = logger.child('banks');
  }

  /**
   * Reloads whenever the registry changes, checked every `intervalMs`: an
   * operator's change with the CLI takes effect without a restart, on every
   * instance. A store that does not answer keeps the directory as it is.
   */
  watch(intervalMs = 1000): void {
    this.watcher ??= setInterval(() => {
      void this.reloadIfChanged().catch((error) => this.log.emit('warn', 'could not check the bank registry for changes', { error: (error as Error).message }));
    }, intervalMs);
    this.watcher.unref();
  }

  stopWatching(): void {
    if (this.watcher) clearInterval(this.watcher);
    this.watcher = null;
  }

  private async reloadIfChanged(): Promise<void> {
    if ((await this.registry.newestChange()) !== this.seenChange) await this.reload();
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
   * Writes BANKS_FILE into the store. For the banks it manages, the file is
   * the whole list: a bank or a certificate taken out of it is removed, so it
   * stops authenticating at the next start, wherever the file was loaded
   * from. A bank an operator has changed with the CLI is managed by the CLI
   * from then on: its entry in the file is ignored, with a warning. MAC keys
   * are stored sealed under the key-encryption key.
   */
  async syncFromFile(entries: BankFileEntry[]): Promise<void> {
    await this.transactions.run(async (tx) => {
      const cliManaged = new Set(await this.registry.codesManagedBy(tx, 'CLI'));
      const ignored = entries.filter((b) => cliManaged.has(b.code)).map((b) => b.code);
      if (ignored.length) this.log.emit('warn', 'BANKS_FILE entries ignored: these banks are managed with the operator CLI', { banks: ignored });
      const fileBanks = entries.filter((b) => !cliManaged.has(b.code));
      const removed = await this.registry.fileBanksNotIn(tx, entries.map((b) => b.code));
      if (removed.length) {
        await this.registry.remove(tx, removed);
        this.log.emit('warn', 'banks no longer in BANKS_FILE were removed with their certificates', { banks: removed });
      }
      for (const bank of fileBanks) {
        const macKeySealed = bank.macKey ? this.storeFileMacKey(bank.code, bank.macKey) : null;
        await this.registry.upsertFromFile(tx, { code: bank.code, name: bank.name, channels: bank.channels, acquirerIds: bank.acquirerIds, rateLimitPerSecond: bank.rateLimitPerSecond, macKeySealed, tlsClients: bank.tlsClients });
        const thumbprints: string[] = [];
        for (const file of bank.certificateFiles) {
          const certificate = this.readCertificateFile(bank.code, file);
          if (!certificate) continue;
          thumbprints.push(certificate.thumbprint);
          await this.registry.upsertCertificate(tx, certificate);
        }
        const dropped = await this.registry.removeCertificatesNotIn(tx, bank.code, BANKS_FILE_SOURCE, thumbprints);
        if (dropped) this.log.emit('warn', 'certificates no longer in BANKS_FILE were removed', { bank: bank.code, count: dropped });
      }
      // Every instance reloads on a new audit entry; so does this one, after the start-up reload.
      await this.registry.recordChange(tx, { operator: 'gateway', action: 'banks-file-loaded', bankCode: null, details: { banks: fileBanks.map((b) => b.code), ignored } });
    });
  }

  /** A certificate file of BANKS_FILE as it is registered; null, with a warning, when it cannot be used. */
  private readCertificateFile(bankCode: string, file: string): NewCertificate | null {
    let pem: string;
    let leaf: CertificateInfo | undefined;
    try {
      pem = readFileSync(file, 'utf8');
      leaf = parseCertificateBundle(pem)[0];
    } catch (error) {
      this.log.emit('warn', 'bank certificate file cannot be read; skipped', { bank: bankCode, file, error: (error as Error).message });
      return null;
    }
    if (!leaf) {
      this.log.emit('warn', 'bank certificate file holds no certificate; skipped', { bank: bankCode, file });
      return null;
    }
    return { thumbprint: leaf.thumbprint, bankCode, pem, subject: leaf.subject, notBefore: leaf.notBefore, notAfter: leaf.notAfter, source: BANKS_FILE_SOURCE };
  }

  /** Rebuilds the in-memory directory from the store. */
  async reload(now = new Date()): Promise<void> {
    // Read before the registry, so a change made while reloading is seen at the next check.
    const newest = await this.registry.newestChange();
    const banks = await this.registry.allBanks();
    const certificates = await this.registry.certificatesInUse();
    const next = new Map<string, BankProfile>();
    for (const bank of banks) {
      const registered = new Map<string, RegisteredCertificate>();
      for (const row of certificates.filter((c) => c.bankCode === bank.code)) {
        const certificate = this.assess(bank.code, row.pem, now);
        if (certificate) registered.set(certificate.info.thumbprint, certificate);
      }
      next.set(bank.code, {
        code: bank.code,
        name: bank.name,
        channels: new Set(bank.channels),
        acquirerIds: bank.acquirerIds,
        rateLimitPerSecond: bank.rateLimitPerSecond,
        certificates: registered,
        macKey: this.openMacKey(bank.code, bank.macKeySealed),
        macKeyNext: this.openMacKey(bank.code, bank.macKeyNextSealed),
        tlsClients: new Set(bank.tlsClients),
      });
    }
    this.banks = next;
    this.seenChange = newest;
    this.byAcquirer = new Map([...next.values()].flatMap((bank) => bank.acquirerIds.map((acquirer) => [acquirer, bank] as const)));
    this.log.emit('info', 'bank directory loaded', {
      // The newest registry change it reflects (registry_audit id): an operator can tell a CLI change is in effect.
      registryChange: Number(newest),
      banks: this.all().map((b) => ({ code: b.code, channels: [...b.channels], certificates: b.certificates.size })),
    });
  }

  private openMacKey(bankCode: string, stored: string | null): MacKey | null {
    if (!stored) return null;
    try {
      return this.keys.macKey(bankCode, stored).key;
    } catch (error) {
      // Its ATM requests then fail the MAC check (63) until the key is set again; other banks are unaffected.
      this.log.emit('error', 'the MAC key of a bank cannot be used; its ISO 8583 requests will be refused', { bank: bankCode, error: (error as Error).message });
      return null;
    }
  }

  /** A BANKS_FILE key as the registry stores it; a clear key under KEY_STORE=pkcs11 stops the start. */
  private storeFileMacKey(bankCode: string, hex: string): string {
    try {
      return this.keys.storeClearMacKey(bankCode, Buffer.from(hex, 'hex'));
    } catch (error) {
      if (error instanceof KeyStoreError) throw new ConfigurationError(`BANKS_FILE: ${error.message}`);
      throw error;
    }
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
