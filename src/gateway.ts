import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { createPrivateKey, KeyObject } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { JwsSigningKey, softwareSigningKey } from '../libs/jws';
import { Pkcs11Token, TokenSigningKey } from '../libs/pkcs11';
import { parseCertificateBundle } from '../libs/pki';
import { AppModule } from './app.module';
import { configureHttpChannel, createHttpAdapter } from './channels/http/http-channel';
import { listenerTls } from './config/listener-tls';
import { ResponseSigner } from './channels/http/response-signer';
import { BankDirectory } from './banks/bank-directory';
import { OpsRecorder } from './ops/ops-recorder';
import { RefusedTraffic } from './ops/refused-traffic';
import { ConfigurationError, GatewayConfig } from './config/gateway-config';
import { JsonLogger } from './logging/json-logger';
import { ReadinessIndicators } from './ops/readiness';
import { AtmTransport } from './channels/atm/atm-transport';

/**
 * The gateway's own signing identity: GATEWAY_SIGNING_CERT with GATEWAY_SIGNING_KEY (the development pair
 * when unset, see loadConfig), or under KEY_STORE=pkcs11 with GATEWAY_SIGNING_KEY_LABEL in the token.
 */
export function loadResponseSigner(config: GatewayConfig): ResponseSigner {
  const certPath = config.GATEWAY_SIGNING_CERT;
  let certificate;
  try {
    [certificate] = parseCertificateBundle(readFileSync(certPath, 'utf8'));
  } catch (error) {
    throw new ConfigurationError(`GATEWAY_SIGNING_CERT ${certPath} cannot be read: ${(error as Error).message}`);
  }
  if (!certificate) throw new ConfigurationError(`GATEWAY_SIGNING_CERT ${certPath} holds no certificate`);
  const key = config.KEY_STORE === 'pkcs11' ? tokenSigningKey(config, certificate.publicKey) : fileSigningKey(config.GATEWAY_SIGNING_KEY);
  return new ResponseSigner(key, certificate.thumbprint, config.GATEWAY_ID);
}

function fileSigningKey(keyPath: string): JwsSigningKey {
  try {
    return softwareSigningKey(createPrivateKey(readFileSync(keyPath, 'utf8')));
  } catch (error) {
    throw new ConfigurationError(`GATEWAY_SIGNING_KEY ${keyPath} cannot be read as a PEM private key: ${(error as Error).message}`);
  }
}

/** The signing key in the token; it must be the key GATEWAY_SIGNING_CERT certifies. */
function tokenSigningKey(config: GatewayConfig, certified: KeyObject): JwsSigningKey {
  let pin = config.PKCS11_PIN;
  if (!pin) {
    try {
      pin = readFileSync(config.PKCS11_PIN_FILE!, 'utf8').trim();
    } catch (error) {
      throw new ConfigurationError(`PKCS11_PIN_FILE ${config.PKCS11_PIN_FILE} cannot be read: ${(error as Error).message}`);
    }
  }
  let key: TokenSigningKey;
  try {
    key = Pkcs11Token.open({ module: config.PKCS11_MODULE!, tokenLabel: config.PKCS11_TOKEN_LABEL!, pin }).ecSigningKey(config.GATEWAY_SIGNING_KEY_LABEL!);
  } catch (error) {
    throw new ConfigurationError(`KEY_STORE=pkcs11: ${(error as Error).message}`);
  }
  const der = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  if (!der(key.publicKey).equals(der(certified))) {
    throw new ConfigurationError(`GATEWAY_SIGNING_CERT does not certify the token's key ${JSON.stringify(key.label)} (GATEWAY_SIGNING_KEY_LABEL)`);
  }
  return { algorithm: 'ES256', sign: (input) => key.signEs256(input) };
}

/**
 * Builds the whole gateway, not yet listening: `app.init()`, then `app.startAllMicroservices()` binds the
 * ISO 8583 transport, then `app.listen()` the HTTP channel (main.ts).
 */
export async function createGateway(config: GatewayConfig, logger: JsonLogger): Promise<NestFastifyApplication> {
  JsonLogger.setLevel(config.LOG_LEVEL);
  const signer = loadResponseSigner(config);
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, logger),
    createHttpAdapter(signer, { requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS, headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS }, logger, listenerTls(config, 'HTTP')),
    { bodyParser: false, logger, abortOnError: false },
  );
  const directory = app.get(BankDirectory);
  configureHttpChannel(app, signer, logger, {
    recorder: app.get(OpsRecorder),
    refused: app.get(RefusedTraffic),
    isKnownBank: (code) => directory.get(code) !== undefined,
    maxAuthFailures: config.HTTP_MAX_AUTH_FAILURES,
    authFailureWindowMs: config.HTTP_AUTH_FAILURE_WINDOW_MS,
  });
  // The ATM channel is a microservices transport of this (hybrid) application, sharing its modules and logger.
  app.connectMicroservice({ strategy: app.get(AtmTransport) }, { inheritAppConfig: true });
  closeOnSignals(app, config.SHUTDOWN_DRAIN_MS, logger);
  return app;
}

/**
 * SIGTERM or SIGINT: first not ready for SHUTDOWN_DRAIN_MS while still
 * serving, so a load balancer takes this instance out before it stops
 * accepting connections (nothing reset mid-answer, no request sent to a
 * closed port); then Nest's shutdown in order (relay slots and partitions
 * handed over, the store closed), then the signal again, as Nest does, so
 * the exit says how it ended.
 */
function closeOnSignals(app: NestFastifyApplication, drainMs: number, logger: JsonLogger): void {
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
  const onSignal = async (signal: NodeJS.Signals) => {
    for (const each of signals) process.removeListener(each, onSignal);
    if (drainMs > 0) {
      app.get(ReadinessIndicators, { strict: false }).drain();
      logger.emit('info', 'shutting down: not ready, still serving while the load balancer takes this instance out', { drainMs, signal });
      await new Promise((resolve) => setTimeout(resolve, drainMs));
    }
    await app.close();
    process.kill(process.pid, signal);
  };
  for (const signal of signals) process.on(signal, onSignal);
}
