import { KeyObject } from 'node:crypto';
import { algorithmFor, RequestBindingHeader, signDetached } from './detached-jws';

/** A bank's signing identity: its key and the thumbprint (kid) of the registered certificate. */
export interface BankSigningIdentity {
  bankCode: string;
  privateKey: KeyObject;
  keyId: string;
}

export interface SignedHeaders {
  'x-bank-id': string;
  'x-request-id': string;
  'x-jws-signature': string;
}

/**
 * Signs a request the way spec 3.3 asks a bank to: what a bank integrator
 * (and the simulator, the tests and the conformance kit) does per request.
 */
export function signBankRequest(
  identity: BankSigningIdentity,
  request: { method: string; path: string; requestId: string; body: Uint8Array },
  overrides: Partial<Omit<RequestBindingHeader, 'crit'>> = {},
): SignedHeaders {
  const header = {
    alg: algorithmFor(identity.privateKey),
    kid: identity.keyId,
    iat: Math.floor(Date.now() / 1000),
    iss: identity.bankCode,
    jti: request.requestId,
    htm: request.method,
    htu: request.path,
    ...overrides,
  };
  return {
    'x-bank-id': identity.bankCode,
    'x-request-id': request.requestId,
    'x-jws-signature': signDetached(header, request.body, identity.privateKey),
  };
}
