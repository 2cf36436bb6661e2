import { constants, KeyObject, sign, verify } from 'node:crypto';
import { parseStrictJson, StrictJsonError } from '../json';
import { derToP1363, p1363ToDer } from './ecdsa-signature';

/** Bytes of r and of s in a P-256 signature. */
const P256_SIZE = 32;

/**
 * Detached JWS (RFC 7515 appendix F) as the partner interface uses it (spec 3.3):
 * `BASE64URL(protected) + ".." + BASE64URL(signature)`, signing input
 * `BASE64URL(protected) + "." + BASE64URL(exact body bytes)`.
 */
export const ACCEPTED_ALGORITHMS = ['PS256', 'ES256'] as const;
export type SigningAlgorithm = (typeof ACCEPTED_ALGORITHMS)[number];
export const CRITICAL_CLAIMS = ['iat', 'iss', 'jti', 'htm', 'htu'] as const;

export interface RequestBindingHeader {
  alg: SigningAlgorithm;
  kid: string;
  iat: number;
  iss: string;
  jti: string;
  htm: string;
  htu: string;
  crit: string[];
}

export type JwsProblem = 'MALFORMED' | 'ALGORITHM_NOT_ACCEPTED' | 'HEADER_INVALID' | 'SIGNATURE_MISMATCH';

export class JwsError extends Error {
  constructor(
    readonly problem: JwsProblem,
    message: string,
  ) {
    super(message);
  }
}

export interface ParsedDetachedJws {
  readonly protectedSegment: string;
  readonly signatureSegment: string;
  readonly header: RequestBindingHeader;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Splits a compact detached JWS and checks its protected header's shape (not the signature). */
export function parseDetachedJws(compact: string): ParsedDetachedJws {
  const parts = compact.split('.');
  if (parts.length !== 3) throw new JwsError('MALFORMED', 'X-JWS-Signature must have three dot-separated parts');
  const [protectedSegment, payloadSegment, signatureSegment] = parts;
  if (payloadSegment !== '') throw new JwsError('MALFORMED', 'X-JWS-Signature must be detached: its middle part must be empty');
  if (!BASE64URL.test(protectedSegment) || !BASE64URL.test(signatureSegment)) {
    throw new JwsError('MALFORMED', 'X-JWS-Signature parts must be base64url without padding');
  }
  let header: unknown;
  try {
    // Strict: with a repeated member ("alg" twice) JSON.parse keeps the last and jose or a bank's library may read another.
    header = parseStrictJson(Buffer.from(protectedSegment, 'base64url').toString('utf8'));
  } catch (error) {
    if (error instanceof StrictJsonError && error.problem === 'DUPLICATE_MEMBER') {
      throw new JwsError('HEADER_INVALID', `the JWS protected header repeats the member ${JSON.stringify(error.member?.name.slice(0, 40))}; member names must be unique`);
    }
    throw new JwsError('MALFORMED', 'the JWS protected header is not JSON');
  }
  return { protectedSegment, signatureSegment, header: checkHeader(header) };
}

function checkHeader(header: unknown): RequestBindingHeader {
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new JwsError('MALFORMED', 'the JWS protected header must be a JSON object');
  }
  const h = header as Record<string, unknown>;
  if (!ACCEPTED_ALGORITHMS.includes(h.alg as SigningAlgorithm)) {
    throw new JwsError('ALGORITHM_NOT_ACCEPTED', `alg ${JSON.stringify(h.alg ?? null)} is not accepted; use PS256 or ES256`);
  }
  if ('b64' in h) throw new JwsError('HEADER_INVALID', 'the b64 header parameter is not accepted; the payload is base64url-encoded');
  for (const name of ['kid', 'iss', 'jti', 'htm', 'htu'] as const) {
    if (typeof h[name] !== 'string' || h[name] === '') throw new JwsError('HEADER_INVALID', `protected header "${name}" must be a non-empty string`);
  }
  if (typeof h.iat !== 'number' || !Number.isFinite(h.iat)) throw new JwsError('HEADER_INVALID', 'protected header "iat" must be a number of seconds since the epoch');
  const crit = h.crit;
  if (
    !Array.isArray(crit) ||
    crit.length !== CRITICAL_CLAIMS.length ||
    !CRITICAL_CLAIMS.every((claim) => crit.includes(claim))
  ) {
    throw new JwsError('HEADER_INVALID', `protected header "crit" must be ${JSON.stringify(CRITICAL_CLAIMS)}`);
  }
  return h as unknown as RequestBindingHeader;
}

/** Verifies the signature over the exact payload bytes (the header was checked by parseDetachedJws). */
export async function verifyDetachedSignature(jws: ParsedDetachedJws, payload: Uint8Array, key: KeyObject): Promise<void> {
  if (!verifyJwsSignature(jws.header.alg, jws.protectedSegment, payload, jws.signatureSegment, key)) {
    throw new JwsError('SIGNATURE_MISMATCH', 'the signature does not match the body and protected header');
  }
}

/**
 * The JWS signature over `protected.payload` (RFC 7515), checked with
 * node:crypto: ES256 as the raw r||s of RFC 7518 (IEEE P1363), PS256 with
 * SHA-256 and a 32-byte salt, on the key's own PSS restrictions when it has
 * them. Synchronous and on the calling thread: 65 µs of CPU for ES256 and
 * 34 µs for PS256 here, against 100 and 62 µs through jose 6, whose verify
 * goes through WebCrypto's job queue (ES256 signatures are converted to DER
 * here: ecdsa-signature.ts says why). A key that does not fit the algorithm
 * (an RSA key for ES256, an EC key for PS256, RSA under 2048 bits, another
 * curve) is refused, never tried: no algorithm confusion.
 */
export function verifyJwsSignature(alg: string, protectedSegment: string, payload: Uint8Array, signatureSegment: string, key: KeyObject): boolean {
  const signingInput = Buffer.from(`${protectedSegment}.${Buffer.from(payload).toString('base64url')}`);
  const signature = Buffer.from(signatureSegment, 'base64url');
  if (alg === 'ES256') {
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new JwsError('HEADER_INVALID', 'alg ES256 needs an EC P-256 key; the certificate named by kid holds another');
    const der = p1363ToDer(signature, P256_SIZE);
    return der !== null && verify('sha256', signingInput, key, der);
  }
  if (alg === 'PS256') {
    if ((key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      throw new JwsError('HEADER_INVALID', 'alg PS256 needs an RSA key of 2048 bits or more; the certificate named by kid holds another');
    }
    return verify('sha256', signingInput, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature);
  }
  throw new JwsError('ALGORITHM_NOT_ACCEPTED', `alg ${JSON.stringify(alg)} is not accepted; use PS256 or ES256`);
}

/**
 * Signs with node:crypto directly: synchronous, and for ES256 about 40,000
 * signatures/s on one core (24 µs, the DER signature converted to r||s);
 * RSA-PSS signing is ten times slower, so the gateway's own key is EC P-256
 * by default.
 */
export function signDetached(header: Omit<RequestBindingHeader, 'crit'>, payload: Uint8Array, privateKey: KeyObject): string {
  return signWithProtectedHeader({ ...header, crit: [...CRITICAL_CLAIMS] }, payload, softwareSigningKey(privateKey));
}

/**
 * What signs a JWS: its algorithm, and the signature over a signing input in
 * JWS form (r||s for ES256). A KeyObject in memory (`softwareSigningKey`),
 * or a key in a PKCS#11 token that never leaves it (libs/pkcs11).
 */
export interface JwsSigningKey {
  readonly algorithm: SigningAlgorithm;
  sign(signingInput: Buffer): Buffer;
}

export function softwareSigningKey(privateKey: KeyObject): JwsSigningKey {
  const algorithm = algorithmFor(privateKey);
  return {
    algorithm,
    sign: (input) =>
      algorithm === 'ES256'
        ? derToP1363(sign('sha256', input, privateKey), P256_SIZE)
        : sign('sha256', input, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
  };
}

/** A detached JWS over `payload` with exactly this protected header, whose `alg` must be the key's. */
export function signWithProtectedHeader(header: { alg: SigningAlgorithm } & Record<string, unknown>, payload: Uint8Array, key: JwsSigningKey): string {
  if (header.alg !== key.algorithm) throw new JwsError('ALGORITHM_NOT_ACCEPTED', `alg ${header.alg} does not fit a ${key.algorithm} key`);
  const protectedSegment = Buffer.from(JSON.stringify(header)).toString('base64url');
  const signingInput = Buffer.from(`${protectedSegment}.${Buffer.from(payload).toString('base64url')}`);
  return `${protectedSegment}..${key.sign(signingInput).toString('base64url')}`;
}

/** ES256 for EC P-256 keys, PS256 for RSA keys. */
export function algorithmFor(key: KeyObject): SigningAlgorithm {
  if (key.asymmetricKeyType === 'ec') return 'ES256';
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') return 'PS256';
  throw new Error(`no accepted JWS algorithm for a ${key.asymmetricKeyType} key`);
}
