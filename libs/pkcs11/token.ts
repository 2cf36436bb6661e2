import { createHash, createPublicKey, KeyObject } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';

/** Where a PKCS#11 token is and how to log in to it. */
export interface TokenSettings {
  /** Path of the PKCS#11 library (SoftHSM2's libsofthsm2.so, or a network HSM's client library). */
  module: string;
  tokenLabel: string;
  pin: string;
}

export class TokenError extends Error {}

/** DER of the named curve P-256 (OID 1.2.840.10045.3.1.7), as CKA_EC_PARAMS holds it. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

/**
 * One logged-in session on a PKCS#11 token, for the keys that never leave
 * it. pkcs11js calls are synchronous and Node runs them on its one thread,
 * so one session serves every request: there is nothing to pool until the
 * calls move off the event loop. Keys are found by label (CKA_LABEL).
 */
export class Pkcs11Token {
  private readonly library = new pkcs11js.PKCS11();
  private session: pkcs11js.Handle;

  private constructor(settings: TokenSettings) {
    try {
      this.library.load(settings.module);
      this.library.C_Initialize();
    } catch (error) {
      throw new TokenError(`PKCS11_MODULE ${settings.module} cannot be loaded: ${(error as Error).message}`);
    }
    const slot = this.library.C_GetSlotList(true).find((candidate) => this.library.C_GetTokenInfo(candidate).label.trim() === settings.tokenLabel);
    if (slot === undefined) {
      this.library.C_Finalize();
      throw new TokenError(`no token labelled ${JSON.stringify(settings.tokenLabel)} in ${settings.module} (PKCS11_TOKEN_LABEL)`);
    }
    this.session = this.library.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      this.library.C_Login(this.session, pkcs11js.CKU_USER, settings.pin);
    } catch (error) {
      this.close();
      throw new TokenError(`cannot log in to token ${settings.tokenLabel}: ${(error as Error).message}`);
    }
  }

  static open(settings: TokenSettings): Pkcs11Token {
    return new Pkcs11Token(settings);
  }

  /** The EC P-256 private key labelled `label`, for ES256 signing in the token. */
  ecSigningKey(label: string): TokenSigningKey {
    const privateKey = this.find(pkcs11js.CKO_PRIVATE_KEY, label);
    const publicKey = this.find(pkcs11js.CKO_PUBLIC_KEY, label);
    const [point] = this.library.C_GetAttributeValue(this.session, publicKey, [{ type: pkcs11js.CKA_EC_POINT }]);
    return new TokenSigningKey(this, privateKey, ecPublicKey(point.value as Buffer), label);
  }

  /** Whether the key labelled `label` of this class can never be read out of the token (CKA_SENSITIVE, not CKA_EXTRACTABLE). */
  neverLeaves(objectClass: 'private' | 'secret', label: string): boolean {
    const handle = this.find(objectClass === 'private' ? pkcs11js.CKO_PRIVATE_KEY : pkcs11js.CKO_SECRET_KEY, label);
    const [sensitive, extractable] = this.library.C_GetAttributeValue(this.session, handle, [{ type: pkcs11js.CKA_SENSITIVE }, { type: pkcs11js.CKA_EXTRACTABLE }]);
    return (sensitive.value as Buffer)[0] === 1 && (extractable.value as Buffer)[0] === 0;
  }

  /** ECDSA over a SHA-256 digest with CKM_ECDSA: the raw r||s JWS wants. */
  signDigest(key: pkcs11js.Handle, digest: Buffer): Buffer {
    this.library.C_SignInit(this.session, { mechanism: pkcs11js.CKM_ECDSA }, key);
    return this.library.C_Sign(this.session, digest, Buffer.alloc(64));
  }

  /** Generates an EC P-256 key pair in the token, the private half sensitive and never extractable (a key ceremony). */
  generateEcSigningKey(label: string): TokenSigningKey {
    this.library.C_GenerateKeyPair(
      this.session,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
        { type: pkcs11js.CKA_VERIFY, value: true },
      ],
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_SIGN, value: true },
      ],
    );
    return this.ecSigningKey(label);
  }

  close(): void {
    try {
      this.library.C_Logout(this.session);
      this.library.C_CloseSession(this.session);
    } catch {
      // A token gone away: its sessions went with it.
    }
    try {
      this.library.C_Finalize();
    } catch {
      // Already finalised.
    }
  }

  private find(objectClass: number, label: string): pkcs11js.Handle {
    this.library.C_FindObjectsInit(this.session, [
      { type: pkcs11js.CKA_CLASS, value: objectClass },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    const [handle] = this.library.C_FindObjects(this.session, 2);
    this.library.C_FindObjectsFinal(this.session);
    if (!handle) throw new TokenError(`no key labelled ${JSON.stringify(label)} in the token`);
    return handle;
  }
}

/** An EC P-256 signing key held in the token: signs, never shows itself. */
export class TokenSigningKey {
  constructor(
    private readonly token: Pkcs11Token,
    private readonly handle: pkcs11js.Handle,
    /** Its public half, read from the token: checked against the certificate it is used with. */
    readonly publicKey: KeyObject,
    readonly label: string,
  ) {}

  /** ES256 over `input`: SHA-256 here, ECDSA in the token; r||s. */
  signEs256(input: Buffer): Buffer {
    return this.token.signDigest(this.handle, createHash('sha256').update(input).digest());
  }
}

/** CKA_EC_POINT (a DER OCTET STRING around the uncompressed point) as a P-256 public key. */
function ecPublicKey(point: Buffer): KeyObject {
  const raw = point[0] === 0x04 && point[1] === point.length - 2 ? point.subarray(2) : point;
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33, 65).toString('base64url') }, format: 'jwk' });
}
