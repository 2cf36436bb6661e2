import { createHmac, createPrivateKey, KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { keyCheckValue, MacKey, softwareMacKey } from '../../libs/iso8583';
import { JwsSigningKey, softwareSigningKey } from '../../libs/jws';
import { openSecret, sealSecret } from '../../libs/keys';
import { HASH_KEY_LABELS, HashKeyName, Pkcs11Token, TokenHmacKey, TokenUnavailableError } from '../../libs/pkcs11';
import { ConfigurationError, GatewayConfig } from '../config/gateway-config';

/** How a bank's MAC key in the token is written in the registry (mac_key_sealed): `pkcs11:<key id>`. */
const TOKEN_REFERENCE = 'pkcs11:';

/** A key operation that cannot be done with this key store (a clear key under pkcs11, a ceremony under software). */
export class KeyStoreError extends Error {}

/**
 * Where the gateway's secret keys live (KEY_STORE), behind one interface:
 * `software` holds them in memory (the signing key from its PEM file, MAC
 * keys sealed under KEY_ENCRYPTION_KEY in the registry, the hash keys from
 * the environment); `pkcs11` keeps every one in a PKCS#11 token and only
 * asks the token to use them. Under pkcs11 the registry holds a reference
 * to each bank's MAC key, never the key.
 */
export abstract class KeyStore {
  abstract readonly kind: 'software' | 'pkcs11';

  /** Why keys cannot be used now (the token is gone); null when they can. */
  abstract get problem(): string | null;

  /** The gateway's response-signing key; `certified` is the public key of GATEWAY_SIGNING_CERT, which must be its own. */
  abstract responseSigningKey(certified: KeyObject): JwsSigningKey;

  /** The PAN's keyed hash (HMAC-SHA-256, hex), stored instead of the PAN. */
  abstract panHash(pan: string): string;

  /** A national ID's keyed hash on the ops stream (HMAC-SHA-256, 128 bits in hex). */
  abstract subjectHash(nationalId: string): string;

  /** The MAC key a registry row holds (`stored`: sealed, or a token reference); throws KeyStoreError when this store cannot use it. */
  abstract macKey(bankCode: string, stored: string): { key: MacKey; checkValue: () => string };

  /** A clear MAC key (BANKS_FILE, `mac-key set`) as the registry stores it; software only. */
  abstract storeClearMacKey(bankCode: string, key: Buffer): string;

  /** Checks at start that every key the gateway needs is there, so a missing one stops the start rather than a request. */
  abstract checkGatewayKeys(): void;

  abstract close(): void;

  static open(config: GatewayConfig): KeyStore {
    return config.KEY_STORE === 'pkcs11' ? TokenKeyStore.open(config) : new SoftwareKeyStore(config);
  }
}

class SoftwareKeyStore extends KeyStore {
  readonly kind = 'software';
  private readonly keyEncryptionKey: Buffer;

  constructor(private readonly config: GatewayConfig) {
    super();
    this.keyEncryptionKey = Buffer.from(config.KEY_ENCRYPTION_KEY, 'hex');
  }

  get problem(): null {
    return null;
  }

  responseSigningKey(): JwsSigningKey {
    const keyPath = this.config.GATEWAY_SIGNING_KEY;
    try {
      return softwareSigningKey(createPrivateKey(readFileSync(keyPath, 'utf8')));
    } catch (error) {
      throw new ConfigurationError(`GATEWAY_SIGNING_KEY ${keyPath} cannot be read as a PEM private key: ${(error as Error).message}`);
    }
  }

  panHash(pan: string): string {
    return createHmac('sha256', this.config.PAN_HASH_KEY).update(pan).digest('hex');
  }

  subjectHash(nationalId: string): string {
    return createHmac('sha256', this.config.SUBJECT_HASH_KEY).update(nationalId).digest('hex').slice(0, 32);
  }

  macKey(bankCode: string, stored: string): { key: MacKey; checkValue: () => string } {
    if (stored.startsWith(TOKEN_REFERENCE)) throw new KeyStoreError(`the MAC key of ${bankCode} is in a PKCS#11 token; this gateway runs KEY_STORE=software`);
    let clear: Buffer;
    try {
      clear = openSecret(this.keyEncryptionKey, stored, bankCode);
    } catch (error) {
      throw new KeyStoreError(`the MAC key of ${bankCode} cannot be opened with KEY_ENCRYPTION_KEY: ${(error as Error).message}`);
    }
    return { key: softwareMacKey(clear), checkValue: () => keyCheckValue(clear) };
  }

  storeClearMacKey(bankCode: string, key: Buffer): string {
    return sealSecret(this.keyEncryptionKey, key, bankCode);
  }

  checkGatewayKeys(): void {}

  close(): void {}
}

export class TokenKeyStore extends KeyStore {
  readonly kind = 'pkcs11';
  private hashKeys: { pan: TokenHmacKey; subject: TokenHmacKey } | null = null;

  private constructor(
    private readonly config: GatewayConfig,
    private readonly token: Pkcs11Token,
  ) {
    super();
  }

  /** Told when the token is lost and when it is back (the gateway logs both). */
  onAvailability(listener: (available: boolean, reason: string | null) => void): void {
    this.token.onAvailability = listener;
  }

  static override open(config: GatewayConfig): TokenKeyStore {
    let pin = config.PKCS11_PIN;
    if (!pin) {
      try {
        pin = readFileSync(config.PKCS11_PIN_FILE!, 'utf8').trim();
      } catch (error) {
        throw new ConfigurationError(`PKCS11_PIN_FILE ${config.PKCS11_PIN_FILE} cannot be read: ${(error as Error).message}`);
      }
    }
    try {
      return new TokenKeyStore(config, Pkcs11Token.open({ module: config.PKCS11_MODULE!, tokenLabel: config.PKCS11_TOKEN_LABEL!, pin }));
    } catch (error) {
      throw new ConfigurationError(`KEY_STORE=pkcs11: ${(error as Error).message}`);
    }
  }

  get problem(): string | null {
    return this.token.problem;
  }

  responseSigningKey(certified: KeyObject): JwsSigningKey {
    const label = this.config.GATEWAY_SIGNING_KEY_LABEL!;
    let key;
    try {
      key = this.token.ecSigningKey(label);
    } catch (error) {
      throw new ConfigurationError(`KEY_STORE=pkcs11: ${(error as Error).message}`);
    }
    const der = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
    if (!der(key.publicKey).equals(der(certified))) {
      throw new ConfigurationError(`GATEWAY_SIGNING_CERT does not certify the token's key ${JSON.stringify(label)} (GATEWAY_SIGNING_KEY_LABEL)`);
    }
    return { algorithm: 'ES256', sign: (input) => key.signEs256(input) };
  }

  private hashKey(name: 'pan' | 'subject'): TokenHmacKey {
    this.hashKeys ??= { pan: this.token.hmacKey(HASH_KEY_LABELS.pan), subject: this.token.hmacKey(HASH_KEY_LABELS.subject) };
    return this.hashKeys[name];
  }

  panHash(pan: string): string {
    return this.hashKey('pan').hmac(pan).toString('hex');
  }

  subjectHash(nationalId: string): string {
    return this.hashKey('subject').hmac(nationalId).toString('hex', 0, 16);
  }

  macKey(bankCode: string, stored: string): { key: MacKey; checkValue: () => string } {
    if (!stored.startsWith(TOKEN_REFERENCE)) {
      throw new KeyStoreError(`the MAC key of ${bankCode} is a software key sealed under KEY_ENCRYPTION_KEY; under KEY_STORE=pkcs11 generate or import it into the token (mac-key generate, mac-key import)`);
    }
    const key = this.token.macKey(bankCode, stored.slice(TOKEN_REFERENCE.length));
    return { key, checkValue: () => key.checkValue() };
  }

  storeClearMacKey(bankCode: string): string {
    throw new KeyStoreError(`a clear MAC key for ${bankCode} is not taken under KEY_STORE=pkcs11 (BANKS_FILE macKey, mac-key set): generate or import it into the token (mac-key generate, mac-key import)`);
  }

  /** A new MAC key for `bankCode`, made in the token: its registry reference and check value. */
  generateMacKey(bankCode: string): { stored: string; checkValue: string } {
    const { keyId, checkValue } = this.token.generateMacKey(bankCode);
    return { stored: `${TOKEN_REFERENCE}${keyId}`, checkValue };
  }

  /** A bank's MAC key unwrapped in the token from its cryptogram under a zone master key; refused when its check value is not `checkValue`. */
  importMacKey(bankCode: string, zoneKeyLabel: string, cryptogram: Buffer, checkValue: string): { stored: string; checkValue: string } {
    const imported = this.token.importMacKey(bankCode, zoneKeyLabel, cryptogram, checkValue);
    return { stored: `${TOKEN_REFERENCE}${imported.keyId}`, checkValue: imported.checkValue };
  }

  /** A keyed-hash key made in the token; refused when the token already holds one of that name. */
  generateHashKey(name: HashKeyName): void {
    this.token.generateHmacKey(HASH_KEY_LABELS[name]);
  }

  checkGatewayKeys(): void {
    try {
      this.hashKey('pan');
      this.hashKey('subject');
    } catch (error) {
      throw new ConfigurationError(`KEY_STORE=pkcs11: ${(error as Error).message} (make the hash keys with: npm run cli -- hash-key generate --name pan|subject)`);
    }
  }

  close(): void {
    this.token.close();
  }
}

/** A key operation failed because the token is gone, not because of the request. */
export function isKeyStoreUnavailable(error: unknown): boolean {
  return error instanceof TokenUnavailableError;
}
