import { KeyObject } from 'node:crypto';
import { ACCEPTED_ALGORITHMS, CRITICAL_CLAIMS, JwsSigningKey, SigningAlgorithm, signWithProtectedHeader, verifyJwsSignature } from '../../../libs/jws';
import { parseStrictJson } from '../../../libs/json';

/** The claims a `401`'s signature carries (spec 3.3): nothing the caller chose, so nothing it can be bound to. */
export const UNBOUND_CRITICAL_CLAIMS = ['iat', 'iss'] as const;
const BINDING_CLAIMS = ['jti', 'htm', 'htu'] as const;

/**
 * Signs every response the way banks sign requests (spec 3.3, last point):
 * iss = the gateway's id, jti = the request's X-Request-Id. ES256 by default:
 * EC P-256 signing is about 12x cheaper than RSA-PSS on this hot path.
 */
export class ResponseSigner {
  constructor(
    /** The gateway's key: a PEM file's, or one in a PKCS#11 token (KEY_STORE). */
    private readonly key: JwsSigningKey,
    /** Thumbprint of the gateway's certificate: the `kid` banks look up. */
    readonly keyId: string,
    private readonly gatewayId: string,
  ) {}

  sign(requestId: string, method: string, path: string, body: Uint8Array): string {
    const header = { alg: this.key.algorithm, kid: this.keyId, iat: Math.floor(Date.now() / 1000), iss: this.gatewayId, jti: requestId, htm: method, htu: path, crit: [...CRITICAL_CLAIMS] };
    return signWithProtectedHeader(header, body, this.key);
  }

  /**
   * A `401`'s signature (spec 3.3): no jti, htm or htu. The request proved nothing, so its id, method and
   * path are anyone's: bound to them, a refusal provoked with a victim's X-Request-Id could be
   * substituted for the answer to the victim's genuine request.
   */
  signUnbound(body: Uint8Array): string {
    const header = { alg: this.key.algorithm, kid: this.keyId, iat: Math.floor(Date.now() / 1000), iss: this.gatewayId, crit: [...UNBOUND_CRITICAL_CLAIMS] };
    return signWithProtectedHeader(header, body, this.key);
  }
}

/** The protected header of a gateway answer: jti/htm/htu all present (bound to a request), or none (a 401). */
export interface ResponseSignatureHeader {
  alg: SigningAlgorithm;
  kid: string;
  iat: number;
  iss: string;
  jti?: string;
  htm?: string;
  htu?: string;
  crit: string[];
}

/**
 * Verifies a gateway answer's X-JWS-Signature over the exact body bytes, in
 * either of its two forms (spec 3.3), and returns its protected header; the
 * caller checks which form its answer's status calls for. For the simulators,
 * the conformance kit and the tests (as a bank would verify).
 */
export async function verifyResponseSignature(compact: string, body: Uint8Array, key: KeyObject): Promise<ResponseSignatureHeader> {
  const [protectedSegment, payloadSegment, signatureSegment, ...rest] = compact.split('.');
  if (rest.length || payloadSegment !== '' || !protectedSegment || !signatureSegment) throw new Error('X-JWS-Signature is not a compact detached JWS');
  // Strict: a repeated member could be read one way here and another by a bank's library.
  const header = parseStrictJson(Buffer.from(protectedSegment, 'base64url').toString('utf8')) as Record<string, unknown>;
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error('the protected header is not a JSON object');
  if (!ACCEPTED_ALGORITHMS.includes(header.alg as SigningAlgorithm)) throw new Error(`alg ${JSON.stringify(header.alg)} is not accepted`);
  for (const name of ['kid', 'iss'] as const) if (typeof header[name] !== 'string' || header[name] === '') throw new Error(`"${name}" must be a non-empty string`);
  if (typeof header.iat !== 'number') throw new Error('"iat" must be a number');
  const present = BINDING_CLAIMS.filter((name) => name in header);
  if (present.length !== 0 && present.length !== BINDING_CLAIMS.length) throw new Error(`jti, htm and htu come together or not at all; present: ${present.join(', ')}`);
  for (const name of present) if (typeof header[name] !== 'string' || header[name] === '') throw new Error(`"${name}" must be a non-empty string`);
  // crit lists exactly the claims present: a verifier must understand every one of them.
  const expectedCrit: string[] = [...UNBOUND_CRITICAL_CLAIMS, ...present];
  const crit = header.crit;
  if (!Array.isArray(crit) || crit.length !== expectedCrit.length || !expectedCrit.every((claim) => crit.includes(claim))) {
    throw new Error(`"crit" must be ${JSON.stringify(expectedCrit)}`);
  }
  let valid: boolean;
  try {
    valid = verifyJwsSignature(header.alg as string, protectedSegment, body, signatureSegment, key);
  } catch (error) {
    throw new Error(`the JWS was refused: ${(error as Error).message}`);
  }
  if (!valid) throw new Error('the signature does not match the body and protected header');
  return header as unknown as ResponseSignatureHeader;
}

/** True when a signature's header is a 401's: bound to no request. */
export function isUnbound(header: ResponseSignatureHeader): boolean {
  return header.jti === undefined && header.htm === undefined && header.htu === undefined;
}
