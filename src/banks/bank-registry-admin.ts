import { maskMobile, maskNationalId } from '../../libs/identity';
import { keyCheckValue } from '../../libs/iso8583';
import { HASH_KEY_LABELS, TokenError } from '../../libs/pkcs11';
import { KeyStore, KeyStoreError, TokenKeyStore } from '../keys/key-store';
import { CertificateInfo, parseCertificateBundle, TLS_CLIENT_PATTERN, verifyChain } from '../../libs/pki';
import { CHANNELS, Channel } from '../activation/activation.types';
import { Sql, Transactions } from '../database/sql';
import { ActivationTraceRepository, TracedActivation } from '../activation/activation-trace.repository';
import { BankListing, BankRepository } from './bank.repository';

/** A refused registry change, said so that the operator knows what to fix. */
export class RegistryChangeError extends Error {}

export const CLI_SOURCE = 'CLI';
const BANK_CODE = /^[A-Z]{4}$/;
const ACQUIRER = /^[0-9]{1,11}$/;

/** A bank as `banks list` shows it. */
export type BankSummary = Omit<BankListing, 'macKeySet' | 'macKeyNextSet'> & { macKey: 'set' | 'not set' | 'set, next set' | 'not set, next set' };

export interface CertificateSummary {
  thumbprint: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  source: string;
  revokedAt: string | null;
}

/**
 * What the operator CLI changes in the bank registry. Every change
 * is one transaction with its audit entry (who, what, when), and makes the
 * bank managed by the CLI from then on. Running gateways see the new audit
 * entry and reload (BankDirectory.watch), so no restart is needed. MAC keys
 * are kept by the key store (sealed, or in the token); only their check value is shown.
 */
/** A ceremony's work in the token; what the token refuses (no such zone key, a KCV mismatch, the token gone) is the change refused, saying why. */
function inToken<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof TokenError) throw new RegistryChangeError(error.message);
    throw error;
  }
}

export class BankRegistryAdmin {
  constructor(
    private readonly registry: BankRepository,
    private readonly activations: ActivationTraceRepository,
    private readonly transactions: Transactions,
    private readonly trustAnchors: CertificateInfo[],
    private readonly keys: KeyStore,
    private readonly operator: string,
  ) {}

  async listBanks(): Promise<BankSummary[]> {
    const banks = await this.registry.listBanks();
    return banks.map(({ macKeySet, macKeyNextSet, ...bank }) => ({ ...bank, macKey: `${macKeySet ? 'set' : 'not set'}${macKeyNextSet ? ', next set' : ''}` as BankSummary['macKey'] }));
  }

  async registerBank(bank: { code: string; name: string; channels: string[]; acquirerIds: string[]; rateLimitPerSecond: number }): Promise<void> {
    if (!BANK_CODE.test(bank.code)) throw new RegistryChangeError(`--code must be the 4 letters of the bank's BIC (got ${JSON.stringify(bank.code)})`);
    if (!bank.name.trim()) throw new RegistryChangeError('--name must not be empty');
    const channels = checkChannels(bank.channels);
    for (const acquirer of bank.acquirerIds) if (!ACQUIRER.test(acquirer)) throw new RegistryChangeError(`--acquirer must be 1-11 digits (got ${JSON.stringify(acquirer)})`);
    if (!Number.isInteger(bank.rateLimitPerSecond) || bank.rateLimitPerSecond < 1) throw new RegistryChangeError('--rate must be a whole number of requests per second, at least 1');
    await this.change('bank-registered', bank.code, { name: bank.name, channels, acquirerIds: bank.acquirerIds, rateLimitPerSecond: bank.rateLimitPerSecond }, async (tx) => {
      const holder = await this.registry.holderOfAcquirerIds(tx, bank.acquirerIds);
      if (holder) throw new RegistryChangeError(`an acquirer id of ${bank.code} already identifies ${holder}`);
      const inserted = await this.registry.insertFromCli(tx, { code: bank.code, name: bank.name.trim(), channels, acquirerIds: bank.acquirerIds, rateLimitPerSecond: bank.rateLimitPerSecond });
      if (!inserted) throw new RegistryChangeError(`bank ${bank.code} already exists`);
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
    await this.change('certificate-added', bankCode, { thumbprint: leaf.thumbprint, subject: leaf.subject, notAfter: leaf.notAfter.toISOString() }, async (tx) => {
      const existing = await this.registry.certificateHolder(tx, leaf.thumbprint);
      if (existing) {
        throw new RegistryChangeError(
          existing.bankCode !== bankCode
            ? `this certificate is already registered for ${existing.bankCode}`
            : existing.revoked
              ? 'this certificate was revoked; a revoked certificate cannot be added again'
              : 'this certificate is already registered for the bank',
        );
      }
      await this.registry.insertCertificate(tx, { thumbprint: leaf.thumbprint, bankCode, pem, subject: leaf.subject, notBefore: leaf.notBefore, notAfter: leaf.notAfter, source: CLI_SOURCE });
    });
    return { thumbprint: leaf.thumbprint, subject: leaf.subject, notBefore: leaf.notBefore.toISOString(), notAfter: leaf.notAfter.toISOString(), source: CLI_SOURCE, revokedAt: null };
  }

  async listCertificates(bankCode: string): Promise<CertificateSummary[]> {
    if (!(await this.registry.exists(bankCode))) throw noSuchBank(bankCode);
    const certificates = await this.registry.certificatesOf(bankCode);
    return certificates.map((c) => ({
      thumbprint: c.thumbprint,
      subject: c.subject,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
      source: c.source,
      revokedAt: c.revokedAt?.toISOString() ?? null,
    }));
  }

  async revokeCertificate(bankCode: string, thumbprint: string): Promise<void> {
    await this.change('certificate-revoked', bankCode, { thumbprint }, async (tx) => {
      const revoked = await this.registry.revokeCertificate(tx, bankCode, thumbprint, this.operator);
      if (!revoked) throw new RegistryChangeError(`no certificate of ${bankCode} in use has the thumbprint ${thumbprint} (see: certs list --bank ${bankCode})`);
    });
  }

  /**
   * Sets the ISO 8583 MAC key, or with `next` the key a rotation moves to (requests then verify under
   * either); returns its check value (KCV), never the key.
   */
  async setMacKey(bankCode: string, keyHex: string, slot: 'current' | 'next' = 'current'): Promise<{ checkValue: string }> {
    const hex = keyHex.trim();
    if (!/^[0-9A-Fa-f]{32}$/.test(hex)) throw new RegistryChangeError('the MAC key must be 32 hex digits (a double-length 3DES key)');
    const key = Buffer.from(hex, 'hex');
    let sealed: string;
    try {
      sealed = this.keys.storeClearMacKey(bankCode, key);
    } catch (error) {
      if (error instanceof KeyStoreError) throw new RegistryChangeError(error.message);
      throw error;
    }
    const checkValue = keyCheckValue(key);
    await this.storeMacKey(bankCode, slot, sealed, checkValue, 'set');
    return { checkValue };
  }

  /** Key ceremony, KEY_STORE=pkcs11: a new MAC key made in the token for the bank (or its next key); returns its check value. */
  async generateMacKey(bankCode: string, slot: 'current' | 'next'): Promise<{ checkValue: string }> {
    const token = this.tokenKeys('mac-key generate');
    await this.requireBank(bankCode);
    const { stored, checkValue } = inToken(() => token.generateMacKey(bankCode));
    await this.storeMacKey(bankCode, slot, stored, checkValue, 'generated');
    return { checkValue };
  }

  /**
   * Key ceremony, KEY_STORE=pkcs11: the bank's MAC key (or next key) from its cryptogram under the zone
   * master key labelled `zoneKeyLabel`, unwrapped in the token; refused, and nothing kept, when its check
   * value is not `checkValue`.
   */
  async importMacKey(bankCode: string, slot: 'current' | 'next', zoneKeyLabel: string, cryptogramHex: string, checkValue: string): Promise<{ checkValue: string }> {
    const token = this.tokenKeys('mac-key import');
    const cryptogram = cryptogramHex.trim();
    if (!/^([0-9A-Fa-f]{2})+$/.test(cryptogram)) throw new RegistryChangeError('--cryptogram must be hex digits');
    if (!/^[0-9A-Fa-f]{6}$/.test(checkValue.trim())) throw new RegistryChangeError('--kcv must be 6 hex digits (the key check value the bank gave with the key)');
    await this.requireBank(bankCode);
    const imported = inToken(() => token.importMacKey(bankCode, zoneKeyLabel, Buffer.from(cryptogram, 'hex'), checkValue.trim()));
    await this.storeMacKey(bankCode, slot, imported.stored, imported.checkValue, 'imported');
    return { checkValue: imported.checkValue };
  }

  /** Key ceremony, KEY_STORE=pkcs11: the PAN or subject hash key, made in the token; audited like registry changes. */
  async generateHashKey(name: string): Promise<void> {
    if (name !== 'pan' && name !== 'subject') throw new RegistryChangeError('--name is pan or subject');
    const token = this.tokenKeys('hash-key generate');
    inToken(() => token.generateHashKey(name));
    await this.transactions.run((tx) => this.registry.recordChange(tx, { operator: this.operator, action: 'hash-key-generated', bankCode: null, details: { name, label: HASH_KEY_LABELS[name] } }));
  }

  private tokenKeys(ceremony: string): TokenKeyStore {
    if (!(this.keys instanceof TokenKeyStore)) throw new RegistryChangeError(`${ceremony} makes the key in a PKCS#11 token: it needs KEY_STORE=pkcs11 (under software, use mac-key set)`);
    return this.keys;
  }

  private async requireBank(bankCode: string): Promise<void> {
    if (!(await this.registry.exists(bankCode))) throw noSuchBank(bankCode);
  }

  private async storeMacKey(bankCode: string, slot: 'current' | 'next', stored: string, checkValue: string, how: 'set' | 'generated' | 'imported'): Promise<void> {
    const action = `mac-key${slot === 'next' ? '-next' : ''}-${how}`;
    await this.change(action, bankCode, { checkValue }, async (tx) => {
      if (slot === 'next') await this.registry.setNextMacKeySealed(tx, bankCode, stored);
      else await this.registry.setMacKeySealed(tx, bankCode, stored);
    });
  }

  /** Ends a rotation: the next MAC key becomes the current one, and answers are MAC'd under it. Returns its check value. */
  async promoteMacKey(bankCode: string): Promise<{ checkValue: string }> {
    let checkValue = '';
    await this.change('mac-key-promoted', bankCode, () => ({ checkValue }), async (tx) => {
      const sealed = await this.registry.promoteNextMacKey(tx, bankCode);
      if (!sealed) {
        const how = this.keys.kind === 'pkcs11' ? `mac-key import --bank ${bankCode} --next ..., or mac-key generate --bank ${bankCode} --next` : `mac-key set --bank ${bankCode} --next --file FILE`;
        throw new RegistryChangeError(`${bankCode} has no next MAC key to promote (set one with: ${how})`);
      }
      checkValue = this.keys.macKey(bankCode, sealed).checkValue();
    });
    return { checkValue };
  }

  /** Under mutual TLS, the client certificates that may speak for the bank; an empty list refuses every one. */
  async setTlsClients(bankCode: string, clients: string[]): Promise<string[]> {
    const wrong = clients.filter((c) => !TLS_CLIENT_PATTERN.test(c));
    if (wrong.length) throw new RegistryChangeError(`--clients takes certificate thumbprints (43 characters, as a kid) or CN=<common name> (got ${JSON.stringify(wrong)})`);
    const unique = [...new Set(clients)];
    await this.change('tls-clients-set', bankCode, { tlsClients: unique }, (tx) => this.registry.setTlsClients(tx, bankCode, unique));
    return unique;
  }

  /** The bank's rate limit, shared by its HTTP and ISO 8583 requests (`429` / `91` above it). */
  async setRateLimit(bankCode: string, perSecond: number): Promise<void> {
    if (!Number.isInteger(perSecond) || perSecond < 1) throw new RegistryChangeError('--rate must be a whole number of requests per second, at least 1');
    await this.change('rate-limit-set', bankCode, { rateLimitPerSecond: perSecond }, async (tx) => {
      await this.registry.setRateLimit(tx, bankCode, perSecond);
    });
  }

  async setChannel(bankCode: string, channel: string, enabled: boolean): Promise<Channel[]> {
    const [checked] = checkChannels([channel]);
    let channels: Channel[] = [];
    await this.change(enabled ? 'channel-enabled' : 'channel-disabled', bankCode, { channel: checked }, async (tx) => {
      const current = new Set<Channel>(await this.registry.channelsOf(tx, bankCode));
      if (enabled) current.add(checked);
      else current.delete(checked);
      channels = CHANNELS.filter((c) => current.has(c));
      await this.registry.setChannels(tx, bankCode, channels);
    });
    return channels;
  }

  /** One activation request, by the bank's request id or by activation id; national ID and mobile masked. */
  async showRequest(query: { bankCode?: string; requestId?: string; activationId?: string }): Promise<Record<string, unknown> | null> {
    let request: TracedActivation | null;
    if (query.activationId) {
      if (!/^[0-9a-f-]{36}$/i.test(query.activationId)) throw new RegistryChangeError('--activation-id must be a UUID');
      request = await this.activations.findByActivationId(query.activationId);
    } else if (query.requestId && query.bankCode) {
      request = await this.activations.findByRequestId(query.bankCode, query.requestId);
    } else {
      throw new RegistryChangeError('give --activation-id, or --bank with --request-id');
    }
    if (!request) return null;
    const events = await this.activations.eventsOf(request.activationId);
    // Printed as is by `requests show`, under the store's column names.
    return {
      activation_id: request.activationId,
      bank_code: request.bankCode,
      request_id: request.requestId,
      channel: request.channel,
      national_id: maskNationalId(String(request.nationalId)),
      mobile: maskMobile(String(request.mobile)),
      status: request.status,
      reason: request.reason,
      decided_at: request.decidedAt,
      completed_at: request.completedAt,
      result_reason: request.resultReason,
      acquirer_id: request.acquirerId,
      terminal_id: request.terminalId,
      stan: request.stan,
      rrn: request.rrn,
      response_status: request.responseStatus,
      events: events.map((e) => ({ topic: e.topic, type: e.type, publishedAt: e.publishedAt?.toISOString() ?? 'not yet' })),
    };
  }

  async audit(bankCode: string | undefined, limit: number): Promise<{ at: string; operator: string; action: string; bank: string | null; details: unknown }[]> {
    const entries = await this.registry.auditTrail(bankCode ?? null, limit);
    return entries.map((e) => ({ at: e.at.toISOString(), operator: e.operator, action: e.action, bank: e.bankCode, details: e.details }));
  }

  /**
   * A change to one bank, with its audit entry, in one transaction; the bank is managed by the CLI from then
   * on. `details` as a function: what the audit records is known only once the change is applied.
   */
  private async change(action: string, bankCode: string, details: Record<string, unknown> | (() => Record<string, unknown>), apply: (tx: Sql) => Promise<void>): Promise<void> {
    await this.transactions.run(async (tx) => {
      // Locked, so that concurrent changes to one bank apply one after the other.
      if (action !== 'bank-registered' && !(await this.registry.lock(tx, bankCode))) throw noSuchBank(bankCode);
      await apply(tx);
      await this.registry.markManagedByCli(tx, bankCode);
      await this.registry.recordChange(tx, { operator: this.operator, action, bankCode, details: typeof details === 'function' ? details() : details });
    });
  }
}

function noSuchBank(bankCode: string): RegistryChangeError {
  return new RegistryChangeError(`no bank ${JSON.stringify(bankCode)} (see: banks list)`);
}

function checkChannels(channels: string[]): Channel[] {
  const unknown = channels.filter((c) => !(CHANNELS as readonly string[]).includes(c));
  if (unknown.length || channels.length === 0) throw new RegistryChangeError(`channels must be among ${CHANNELS.join(', ')} (got ${JSON.stringify(channels)})`);
  return CHANNELS.filter((c) => channels.includes(c));
}
