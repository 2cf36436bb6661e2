import { JwsError, parseDetachedJws, verifyDetachedSignature } from '../../libs/jws';
import { TlsClientIdentity, tlsClientAllowed, withinValidity } from '../../libs/pki';
import { GatewayError } from '../common/gateway-error';
import { BankDirectory, BankProfile } from './bank-directory';

/** What the authenticator needs of a signed HTTP request. */
export interface SignedRequest {
  method: string;
  /** The request path as sent, without the query string. */
  path: string;
  bankId: string | undefined;
  requestId: string | undefined;
  signature: string | undefined;
  /** The exact body bytes received (empty for GET). */
  body: Uint8Array;
  /** Under mutual TLS, the client certificate the connection's handshake verified; absent on a plain listener. */
  tlsClient?: TlsClientIdentity;
}

/**
 * Proves who the bank is (spec 3.3). Cheap checks run first; the signature
 * is verified last, over the exact bytes received.
 */
export class BankAuthenticator {
  constructor(
    private readonly directory: BankDirectory,
    private readonly maxAgeSeconds: number,
    private readonly clock: () => number = Date.now,
  ) {}

  async authenticate(request: SignedRequest): Promise<BankProfile> {
    if (!request.signature) throw new GatewayError('SIGNATURE_MISSING', 'the X-JWS-Signature header is required');
    if (!request.bankId) throw new GatewayError('UNKNOWN_BANK', 'the X-Bank-Id header is required');
    const bank = this.directory.get(request.bankId);
    if (!bank) throw new GatewayError('UNKNOWN_BANK', `no partner bank is registered with code "${printable(request.bankId)}"`);
    // Before any cryptography: a connection of one bank never speaks for another.
    if (request.tlsClient && !tlsClientAllowed(request.tlsClient, bank.tlsClients)) {
      throw new GatewayError('UNKNOWN_BANK', `the TLS client certificate is not one registered for ${bank.code}`);
    }

    let jws;
    try {
      jws = parseDetachedJws(request.signature);
    } catch (error) {
      throw new GatewayError('SIGNATURE_INVALID', (error as JwsError).message);
    }
    const header = jws.header;
    if (header.iss !== bank.code) throw new GatewayError('SIGNATURE_INVALID', 'protected header "iss" must equal X-Bank-Id');
    if (header.jti !== request.requestId) throw new GatewayError('SIGNATURE_INVALID', 'protected header "jti" must equal X-Request-Id');
    if (header.htm !== request.method) throw new GatewayError('SIGNATURE_INVALID', `protected header "htm" must be ${request.method}`);
    if (header.htu !== request.path) throw new GatewayError('SIGNATURE_INVALID', `protected header "htu" must be the request path ${request.path}`);
    const skew = Math.abs(this.clock() / 1000 - header.iat);
    if (!(skew <= this.maxAgeSeconds)) {
      throw new GatewayError('STALE_REQUEST', `protected header "iat" is ${Math.round(skew)} s from the gateway's clock; at most ${this.maxAgeSeconds} s is accepted`);
    }

    const certificate = bank.certificates.get(header.kid);
    if (!certificate) throw new GatewayError('UNKNOWN_KEY', `no certificate with thumbprint (kid) "${printable(header.kid)}" is registered for ${bank.code}`);
    const now = this.clock();
    if (certificate.info.notAfter.getTime() < now) {
      throw new GatewayError('CERTIFICATE_EXPIRED', `the signing certificate expired at ${certificate.info.notAfter.toISOString()}`);
    }
    if (certificate.info.notBefore.getTime() > now) {
      throw new GatewayError('CERTIFICATE_EXPIRED', `the signing certificate is not valid before ${certificate.info.notBefore.toISOString()}`);
    }
    if (certificate.trustProblem) throw new GatewayError('CERTIFICATE_NOT_TRUSTED', certificate.trustProblem);
    for (const issuer of certificate.issuers) {
      if (!withinValidity(issuer, new Date(now))) {
        throw new GatewayError('CERTIFICATE_EXPIRED', `the issuing CA certificate "${issuer.subject}" is outside its validity period (${issuer.notBefore.toISOString()} to ${issuer.notAfter.toISOString()})`);
      }
    }

    try {
      await verifyDetachedSignature(jws, request.body, certificate.info.publicKey);
    } catch (error) {
      throw new GatewayError('SIGNATURE_INVALID', (error as JwsError).message);
    }
    return bank;
  }
}

/** Echo a client value in an error without letting it carry control characters or length. */
function printable(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}
