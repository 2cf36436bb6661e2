import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { parseCertificateBundle } from '../libs/pki';
import { AppModule } from './app.module';
import { configureHttpChannel } from './channels/http/http-channel';
import { BODY_LIMIT_BYTES } from './channels/http/http-channel';
import { ResponseSigner } from './channels/http/response-signer';
import { BankDirectory } from './banks/bank-directory';
import { OpsRecorder } from './ops/ops-recorder';
import { ConfigurationError, GatewayConfig } from './config/gateway-config';
import { projectRoot } from './common/project-root';
import { JsonLogger } from './logging/json-logger';

export const DEVELOPMENT_SIGNING_KEY = join(projectRoot(), 'config/pki/dev/gateway-signing.key.pem');
export const DEVELOPMENT_SIGNING_CERT = join(projectRoot(), 'config/pki/dev/gateway-signing.cert.pem');

/** The gateway's own signing identity: GATEWAY_SIGNING_KEY/CERT, or the development pair with a warning. */
export function loadResponseSigner(config: GatewayConfig, logger: JsonLogger): ResponseSigner {
  let keyPath = config.GATEWAY_SIGNING_KEY;
  let certPath = config.GATEWAY_SIGNING_CERT;
  if (!keyPath || !certPath) {
    keyPath = DEVELOPMENT_SIGNING_KEY;
    certPath = DEVELOPMENT_SIGNING_CERT;
    logger.emit('warn', 'GATEWAY_SIGNING_KEY/GATEWAY_SIGNING_CERT are unset: responses are signed with the development key, for development only');
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(readFileSync(keyPath, 'utf8'));
  } catch (error) {
    throw new ConfigurationError(`GATEWAY_SIGNING_KEY ${keyPath} cannot be read as a PEM private key: ${(error as Error).message}`);
  }
  let certificate;
  try {
    [certificate] = parseCertificateBundle(readFileSync(certPath, 'utf8'));
  } catch (error) {
    throw new ConfigurationError(`GATEWAY_SIGNING_CERT ${certPath} cannot be read: ${(error as Error).message}`);
  }
  if (!certificate) throw new ConfigurationError(`GATEWAY_SIGNING_CERT ${certPath} holds no certificate`);
  return new ResponseSigner(privateKey, certificate.thumbprint, config.GATEWAY_ID);
}

/** Builds the whole gateway (not yet listening); main.ts and the tests both start it this way. */
export async function createGateway(config: GatewayConfig, logger: JsonLogger): Promise<NestFastifyApplication> {
  JsonLogger.setLevel(config.LOG_LEVEL);
  const signer = loadResponseSigner(config, logger);
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, logger),
    new FastifyAdapter({ bodyLimit: BODY_LIMIT_BYTES, connectionTimeout: 30_000, requestTimeout: 30_000, return503OnClosing: true }),
    { bodyParser: false, logger, abortOnError: false },
  );
  const directory = app.get(BankDirectory);
  configureHttpChannel(app, signer, logger, { recorder: app.get(OpsRecorder), isKnownBank: (code) => directory.get(code) !== undefined });
  app.enableShutdownHooks();
  return app;
}
