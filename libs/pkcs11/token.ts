import { createHash, createPublicKey, KeyObject, randomBytes } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';

/** Where a PKCS#11 token is and how to log in to it. */
export interface TokenSettings {
  /** Path of the PKCS#11 library (SoftHSM2's libsofthsm2.so, or a network HSM's client library). */
  module: string;
  tokenLabel: string;
  pin: string;
}

/** The token is there but cannot do what was asked (no such key, a wrong check value): about the request, not the token. */
export class TokenError extends Error {}

/** The token cannot be reached (module error, session gone, token removed): nothing can be signed or MAC'd until it is back. */
export class TokenUnavailableError extends TokenError {}

/** DER of the named curve P-256 (OID 1.2.840.10045.3.1.7), as CKA_EC_PARAMS holds it. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

/** How often a lost token is looked for again. */
const RECONNECT_MS = 1000;

/** Label of a bank's MAC key in the token (both its halves carry it; CKA_ID tells them apart). */
export const macKeyLabel = (bankCode: string): string => `mac:${bankCode}`;

/** Labels of the keyed-hash keys: generic secrets for HMAC-SHA-256. */
export const HASH_KEY_LABELS = { pan: 'hash:pan', subject: 'hash:subject' } as const;
export type HashKeyName = keyof typeof HASH_KEY_LABELS;

/**
 * One logged-in session on a PKCS#11 token, for the keys that never leave
 * it. pkcs11js calls are synchronous and Node runs them on its one thread,
 * so one session serves every request (a pool would only hold idle
 * sessions). When the token goes away, every use fails with
 * TokenUnavailableError and the token is looked for again every second:
 * the library is finalised and initialised afresh, the slot found by its
 * label, the session logged in, and each key found again by its label
 * and id at its next use.
 */
export class Pkcs11Token {
  private readonly library = new pkcs11js.PKCS11();
  private session: pkcs11js.Handle | null = null;
  /** Counts sessions: a key's handle found under an older one is found again. */
  private generation = 0;
  private lostBecause: string | null = null;
  private reconnecting: NodeJS.Timeout | null = null;
  private closed = false;
  /** Told when the token is lost and when it is back. */
  onAvailability: (available: boolean, reason: string | null) => void = () => undefined;

  private constructor(private readonly settings: TokenSettings) {
    try {
      this.library.load(settings.module);
    } catch (error) {
      throw new TokenError(`PKCS11_MODULE ${settings.module} cannot be loaded: ${(error as Error).message}`);
    }
    this.connect();
  }

  /** Opens the token, or throws saying why (no module, no token of that label, a wrong PIN). */
  static open(settings: TokenSettings): Pkcs11Token {
    return new Pkcs11Token(settings);
  }

  get available(): boolean {
    return this.session !== null;
  }

  /** Why the token cannot be used now; null when it can. */
  get problem(): string | null {
    return this.session ? null : this.lostBecause ?? 'closed';
  }

  private connect(): void {
    try {
      this.library.C_Initialize();
    } catch (error) {
      throw new TokenError(`PKCS11_MODULE ${this.settings.module} cannot be initialised: ${(error as Error).message}`);
    }
    let session: pkcs11js.Handle;
    try {
      const slot = this.library.C_GetSlotList(true).find((candidate) => this.library.C_GetTokenInfo(candidate).label.trim() === this.settings.tokenLabel);
      if (slot === undefined) throw new TokenError(`no token labelled ${JSON.stringify(this.settings.tokenLabel)} in ${this.settings.module} (PKCS11_TOKEN_LABEL)`);
      session = this.library.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      try {
        this.library.C_Login(session, pkcs11js.CKU_USER, this.settings.pin);
      } catch (error) {
        throw new TokenError(`cannot log in to token ${this.settings.tokenLabel}: ${(error as Error).message}`);
      }
    } catch (error) {
      // Finalised whatever failed, so that the next attempt initialises afresh.
      this.finalize();
      throw error instanceof TokenError ? error : new TokenError(`token ${this.settings.tokenLabel}: ${(error as Error).message}`);
    }
    this.session = session;
    this.generation += 1;
    this.lostBecause = null;
  }

  /**
   * Runs `work` on the session. A PKCS#11 error here is the token's (the inputs are the gateway's own, well
   * formed): the token is taken as lost, and looked for again in the background.
   */
  use<T>(work: (library: pkcs11js.PKCS11, session: pkcs11js.Handle) => T): T {
    if (!this.session) throw new TokenUnavailableError(`the PKCS#11 token is unavailable: ${this.problem}`);
    try {
      return work(this.library, this.session);
    } catch (error) {
      if (error instanceof TokenError) throw error;
      this.lose((error as Error).message);
      throw new TokenUnavailableError(`the PKCS#11 token is unavailable: ${(error as Error).message}`);
    }
  }

  private lose(reason: string): void {
    if (!this.session || this.closed) return;
    this.session = null;
    this.lostBecause = reason;
    this.finalize();
    this.onAvailability(false, reason);
    this.reconnecting = setInterval(() => {
      try {
        this.connect();
      } catch (error) {
        this.lostBecause = (error as Error).message;
        return;
      }
      clearInterval(this.reconnecting!);
      this.reconnecting = null;
      this.onAvailability(true, null);
    }, RECONNECT_MS);
    this.reconnecting.unref();
  }

  /** The handle of the one object of this class, label (and id); found again after a reconnection. */
  handleFinder(objectClass: number, label: string, id?: string): () => pkcs11js.Handle {
    let found: { handle: pkcs11js.Handle; generation: number } | null = null;
    return () => {
      if (found?.generation !== this.generation) found = { handle: this.find(objectClass, label, id), generation: this.generation };
      return found.handle;
    };
  }

  private find(objectClass: number, label: string, id?: string): pkcs11js.Handle {
    const handles = this.findAll(objectClass, label, id);
    if (!handles.length) throw new TokenError(`no key labelled ${JSON.stringify(label)}${id === undefined ? '' : ` with id ${id}`} in the token`);
    return handles[0];
  }

  private findAll(objectClass: number, label: string, id?: string): pkcs11js.Handle[] {
    return this.use((library, session) => {
      const template: pkcs11js.Template = [
        { type: pkcs11js.CKA_CLASS, value: objectClass },
        { type: pkcs11js.CKA_LABEL, value: label },
      ];
      if (id !== undefined) template.push({ type: pkcs11js.CKA_ID, value: Buffer.from(id) });
      library.C_FindObjectsInit(session, template);
      const handles = library.C_FindObjects(session, 16);
      library.C_FindObjectsFinal(session);
      return handles;
    });
  }

  /** The EC P-256 private key labelled `label`, for ES256 signing in the token. */
  ecSigningKey(label: string): TokenSigningKey {
    const privateKey = this.handleFinder(pkcs11js.CKO_PRIVATE_KEY, label);
    const publicKey = this.find(pkcs11js.CKO_PUBLIC_KEY, label);
    const point = this.use((library, session) => library.C_GetAttributeValue(session, publicKey, [{ type: pkcs11js.CKA_EC_POINT }])[0].value as Buffer);
    privateKey(); // there, now: a missing key stops the start rather than the first answer
    return new TokenSigningKey(this, privateKey, ecPublicKey(point), label);
  }

  /** A bank's MAC key: its two halves, found by the label `mac:<bank>` and the key's id. */
  macKey(bankCode: string, keyId: string): TokenMacKey {
    const label = macKeyLabel(bankCode);
    return new TokenMacKey(this, this.handleFinder(pkcs11js.CKO_SECRET_KEY, label, `${keyId}:1`), this.handleFinder(pkcs11js.CKO_SECRET_KEY, label, `${keyId}:2`));
  }

  /** A keyed-hash key (HMAC-SHA-256) labelled `label`. */
  hmacKey(label: string): TokenHmacKey {
    const key = this.handleFinder(pkcs11js.CKO_SECRET_KEY, label);
    key();
    return new TokenHmacKey(this, key);
  }

  /** Whether every key labelled `label` of this class (and id) can never be read out of the token (CKA_SENSITIVE, not CKA_EXTRACTABLE). */
  neverLeaves(objectClass: 'private' | 'secret', label: string, id?: string): boolean {
    const handles = this.findAll(objectClass === 'private' ? pkcs11js.CKO_PRIVATE_KEY : pkcs11js.CKO_SECRET_KEY, label, id);
    return (
      handles.length > 0 &&
      handles.every((handle) =>
        this.use((library, session) => {
          const [sensitive, extractable] = library.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_SENSITIVE }, { type: pkcs11js.CKA_EXTRACTABLE }]);
          return (sensitive.value as Buffer)[0] === 1 && (extractable.value as Buffer)[0] === 0;
        }),
      )
    );
  }

  /** Generates an EC P-256 key pair in the token, the private half sensitive and never extractable (a key ceremony). */
  generateEcSigningKey(label: string): TokenSigningKey {
    this.use((library, session) =>
      library.C_GenerateKeyPair(
        session,
        { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
        [
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_LABEL, value: label },
          { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
          { type: pkcs11js.CKA_VERIFY, value: true },
        ],
        [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_LABEL, value: label }, { type: pkcs11js.CKA_SIGN, value: true }, ...NEVER_LEAVES],
      ),
    );
    return this.ecSigningKey(label);
  }

  /** Generates a keyed-hash key (a 256-bit generic secret, HMAC-SHA-256 only) inside the token; refuses when one is there. */
  generateHmacKey(label: string): void {
    if (this.findAll(pkcs11js.CKO_SECRET_KEY, label).length) throw new TokenError(`the token already holds a key labelled ${JSON.stringify(label)}`);
    this.use((library, session) =>
      library.C_GenerateKey(session, { mechanism: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_SIGN, value: true },
        ...NEVER_LEAVES,
      ]),
    );
  }

  /**
   * A new MAC key for a bank, written into the token as its two halves. Its value is drawn from the OS
   * random source and goes straight into the token: SoftHSM2 cannot make a key of this form by itself
   * (see TokenMacKey). Returns the key's id and check value.
   */
  generateMacKey(bankCode: string): { keyId: string; checkValue: string } {
    const value = randomBytes(16);
    try {
      const keyId = randomBytes(4).toString('hex');
      for (const half of [1, 2] as const) {
        const single = value.subarray((half - 1) * 8, half * 8);
        this.use((library, session) => library.C_CreateObject(session, [...macHalfTemplate(bankCode, keyId, half), { type: pkcs11js.CKA_VALUE, value: Buffer.concat([single, single]) }]));
      }
      return { keyId, checkValue: this.macKey(bankCode, keyId).checkValue() };
    } finally {
      value.fill(0);
    }
  }

  /**
   * Imports a bank's MAC key delivered encrypted under the zone master key labelled `zoneKeyLabel`, by
   * unwrapping in the token: under a 3DES zone key, the usual 3DES-ECB cryptogram (32 hex digits, each half
   * on its own block); under an AES zone key, each half as a double-length key Ki‖Ki wrapped with AES key
   * wrap (RFC 3394), the two 24-byte cryptograms one after the other. The key's check value must be
   * `expectedCheckValue`: when it is not, nothing stays in the token.
   */
  importMacKey(bankCode: string, zoneKeyLabel: string, cryptogram: Buffer, expectedCheckValue: string): { keyId: string; checkValue: string } {
    const zoneKey = this.find(pkcs11js.CKO_SECRET_KEY, zoneKeyLabel);
    const zoneKeyType = this.use((library, session) => (library.C_GetAttributeValue(session, zoneKey, [{ type: pkcs11js.CKA_KEY_TYPE }])[0].value as Buffer).readUIntLE(0, 4));
    const aes = zoneKeyType === pkcs11js.CKK_AES;
    if (!aes && zoneKeyType !== pkcs11js.CKK_DES2 && zoneKeyType !== pkcs11js.CKK_DES3) throw new TokenError(`the zone key ${JSON.stringify(zoneKeyLabel)} is neither a 3DES nor an AES key`);
    const halfBytes = aes ? 24 : 8;
    if (cryptogram.length !== 2 * halfBytes) {
      throw new TokenError(`under ${aes ? 'an AES' : 'a 3DES'} zone key the cryptogram is ${2 * halfBytes * 2} hex digits, not ${cryptogram.length * 2}`);
    }
    const keyId = randomBytes(4).toString('hex');
    const created: pkcs11js.Handle[] = [];
    try {
      for (const half of [1, 2] as const) {
        const wrapped = cryptogram.subarray((half - 1) * halfBytes, half * halfBytes);
        created.push(
          this.use((library, session) => {
            try {
              // 3DES-ECB: the half's block twice unwraps to the double-length form Ki‖Ki.
              return library.C_UnwrapKey(session, { mechanism: aes ? pkcs11js.CKM_AES_KEY_WRAP : pkcs11js.CKM_DES3_ECB }, zoneKey, aes ? wrapped : Buffer.concat([wrapped, wrapped]), macHalfTemplate(bankCode, keyId, half));
            } catch (error) {
              throw new TokenError(`the token cannot unwrap the cryptogram under ${JSON.stringify(zoneKeyLabel)}: ${(error as Error).message}`);
            }
          }),
        );
      }
      const checkValue = this.macKey(bankCode, keyId).checkValue();
      if (checkValue !== expectedCheckValue.toUpperCase()) throw new TokenError(`key check value mismatch: the cryptogram gives ${checkValue}, not ${expectedCheckValue.toUpperCase()}; nothing was imported`);
      return { keyId, checkValue };
    } catch (error) {
      for (const handle of created) this.use((library, session) => library.C_DestroyObject(session, handle));
      throw error;
    }
  }

  close(): void {
    this.closed = true;
    if (this.reconnecting) clearInterval(this.reconnecting);
    const session = this.session;
    this.session = null;
    this.lostBecause = 'closed';
    if (session) {
      try {
        this.library.C_Logout(session);
        this.library.C_CloseSession(session);
      } catch {
        // A token gone away: its sessions went with it.
      }
    }
    this.finalize();
  }

  private finalize(): void {
    try {
      this.library.C_Finalize();
    } catch {
      // Already finalised, or the module is gone.
    }
  }
}

/** A secret that is used in the token and can never be read out of it. */
const NEVER_LEAVES: pkcs11js.Template = [
  { type: pkcs11js.CKA_PRIVATE, value: true },
  { type: pkcs11js.CKA_SENSITIVE, value: true },
  { type: pkcs11js.CKA_EXTRACTABLE, value: false },
];

function macHalfTemplate(bankCode: string, keyId: string, half: 1 | 2): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_DES2 },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_LABEL, value: macKeyLabel(bankCode) },
    { type: pkcs11js.CKA_ID, value: Buffer.from(`${keyId}:${half}`) },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    ...NEVER_LEAVES,
  ];
}

/** An EC P-256 signing key held in the token: signs, never shows itself. */
export class TokenSigningKey {
  constructor(
    private readonly token: Pkcs11Token,
    private readonly handle: () => pkcs11js.Handle,
    /** Its public half, read from the token: checked against the certificate it is used with. */
    readonly publicKey: KeyObject,
    readonly label: string,
  ) {}

  /** ES256 over `input`: SHA-256 here, ECDSA (CKM_ECDSA) in the token; r||s, as JWS wants. */
  signEs256(input: Buffer): Buffer {
    const digest = createHash('sha256').update(input).digest();
    return this.token.use((library, session) => {
      library.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, this.handle());
      return library.C_Sign(session, digest, Buffer.alloc(64));
    });
  }
}

/**
 * A bank's double-length MAC key K1‖K2 in the token, as two keys: K1‖K1 and K2‖K2. Two-key 3DES with equal
 * halves is single DES under that half, which X9.19 needs and which tokens without single DES (SoftHSM2 on
 * OpenSSL 3) can still compute; it is also how payment HSMs hold single-length keys.
 */
export class TokenMacKey {
  constructor(
    private readonly token: Pkcs11Token,
    private readonly first: () => pkcs11js.Handle,
    private readonly second: () => pkcs11js.Handle,
  ) {}

  /** ANSI X9.19 (ISO 9797-1 MAC algorithm 3, padding method 1) in the token: CBC under K1, then decrypt under K2, encrypt under K1. */
  mac(data: Buffer): Buffer {
    const padded = Buffer.alloc(Math.max(8, Math.ceil(data.length / 8) * 8));
    data.copy(padded);
    return this.token.use((library, session) => {
      const k1 = this.first();
      library.C_EncryptInit(session, { mechanism: pkcs11js.CKM_DES3_CBC, parameter: Buffer.alloc(8) }, k1);
      const chained = library.C_Encrypt(session, padded, Buffer.alloc(padded.length));
      library.C_DecryptInit(session, { mechanism: pkcs11js.CKM_DES3_ECB }, this.second());
      const middle = library.C_Decrypt(session, chained.subarray(chained.length - 8), Buffer.alloc(8));
      library.C_EncryptInit(session, { mechanism: pkcs11js.CKM_DES3_ECB }, k1);
      return library.C_Encrypt(session, middle, Buffer.alloc(8));
    });
  }

  /** The key check value of K1‖K2: a zero block under E(K1) D(K2) E(K1), first 3 bytes in hex. */
  checkValue(): string {
    return this.token.use((library, session) => {
      const k1 = this.first();
      library.C_EncryptInit(session, { mechanism: pkcs11js.CKM_DES3_ECB }, k1);
      const once = library.C_Encrypt(session, Buffer.alloc(8), Buffer.alloc(8));
      library.C_DecryptInit(session, { mechanism: pkcs11js.CKM_DES3_ECB }, this.second());
      const middle = library.C_Decrypt(session, once, Buffer.alloc(8));
      library.C_EncryptInit(session, { mechanism: pkcs11js.CKM_DES3_ECB }, k1);
      return library.C_Encrypt(session, middle, Buffer.alloc(8)).subarray(0, 3).toString('hex').toUpperCase();
    });
  }
}

/** A keyed-hash key in the token: HMAC-SHA-256 (CKM_SHA256_HMAC). */
export class TokenHmacKey {
  constructor(
    private readonly token: Pkcs11Token,
    private readonly handle: () => pkcs11js.Handle,
  ) {}

  hmac(data: string): Buffer {
    return this.token.use((library, session) => {
      library.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_HMAC }, this.handle());
      return library.C_Sign(session, Buffer.from(data), Buffer.alloc(32));
    });
  }
}

/** CKA_EC_POINT (a DER OCTET STRING around the uncompressed point) as a P-256 public key. */
function ecPublicKey(point: Buffer): KeyObject {
  const raw = point[0] === 0x04 && point[1] === point.length - 2 ? point.subarray(2) : point;
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33, 65).toString('base64url') }, format: 'jwk' });
}
