import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { NestFactory } from '@nestjs/core';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
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
import { KeyStore, TokenKeyStore } from './keys/key-store';

/**
 * The gateway's own signing identity: GATEWAY_SIGNING_CERT with GATEWAY_SIGNING_KEY (the development pair
 * when unset, see loadConfig), or under KEY_STORE=pkcs11 with GATEWAY_SIGNING_KEY_LABEL in the token.
 */
export function loadResponseSigner(config: GatewayConfig, keys: KeyStore): ResponseSigner {
  const certPath = config.GATEWAY_SIGNING_CERT;
  let certificate;
  try {
    [certificate] = parseCertificateBundle(readFileSync(certPath, 'utf8'));
  } catch (error) {
    throw new ConfigurationError(`GATEWAY_SIGNING_CERT ${certPath} cannot be read: ${(error as Error).message}`);
  }
  if (!certificate) throw new ConfigurationError(`GATEWAY_SIGNING_CERT ${certPath} holds no certificate`);
  return new ResponseSigner(keys.responseSigningKey(certificate.publicKey), certificate.thumbprint, config.GATEWAY_ID);
}

/**
 * Builds the whole gateway, not yet listening: `app.init()`, then `app.startAllMicroservices()` binds the
 * ISO 8583 transport, then `app.listen()` the HTTP channel (main.ts).
 */
export async function createGateway(config: GatewayConfig, logger: JsonLogger): Promise<NestFastifyApplication> {
  JsonLogger.setLevel(config.LOG_LEVEL);
  const keys = KeyStore.open(config);
  const signer = loadResponseSigner(config, keys);
  keys.checkGatewayKeys();
  if (keys instanceof TokenKeyStore) {
    keys.onAvailability((available, reason) =>
      available
        ? logger.emit('info', 'the PKCS#11 token is back: signing and MACs resume, the instance is ready again')
        : logger.emit('error', 'the PKCS#11 token is unavailable: answering 503 / 91 and not ready until it is back (looked for every second)', { reason }),
    );
  }
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, logger, keys),
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
