import { readFileSync } from 'node:fs';
import { GatewayConfig } from './gateway-config';

/** A listener's TLS material, read once at start; `ca` set means mutual TLS. */
export interface ListenerTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | null;
}

/**
 * The TLS of the bank (HTTP) or ISO 8583 listener, from its `*_TLS_*`
 * variables; null for a plain listener. A file that cannot be read stops the
 * gateway, naming the variable.
 */
export function listenerTls(config: GatewayConfig, listener: 'HTTP' | 'ISO8583'): ListenerTls | null {
  const cert = config[`${listener}_TLS_CERT` as const];
  const key = config[`${listener}_TLS_KEY` as const];
  const ca = config[`${listener}_TLS_CLIENT_CA` as const];
  if (!cert || !key) return null;
  const read = (name: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`${listener}_TLS_${name} ${path} cannot be read: ${(error as Error).message}`);
    }
  };
  return { cert: read('CERT', cert), key: read('KEY', key), ca: ca ? read('CLIENT_CA', ca) : null };
}

/** The options Node's TLS servers take for it: with a client CA, a client certificate is required and verified in the handshake. */
export function tlsServerOptions(tls: ListenerTls): { cert: Buffer; key: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean } {
  return { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}), requestCert: tls.ca !== null, rejectUnauthorized: tls.ca !== null };
}
