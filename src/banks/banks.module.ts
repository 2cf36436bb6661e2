import { readFileSync } from 'node:fs';
import { Module } from '@nestjs/common';
import { parseCertificateBundle } from '../../libs/pki';
import { GatewayConfig } from '../config/gateway-config';
import { ConfigurationError } from '../config/gateway-config';
import { Store } from '../database/store';
import { JsonLogger } from '../logging/json-logger';
import { BankAuthenticator } from './bank-authenticator';
import { BankDirectory } from './bank-directory';
import { readBankRegistryFile } from './bank-registry-file';
import { PostgresRateBudget, RateLimiter } from './rate-limiter';
import { InstanceRegistry } from '../instances/instance-registry';

/** Published in this repository: it only goes with the embedded database (the configuration refuses it otherwise). */
export const DEVELOPMENT_KEY_ENCRYPTION_KEY = Buffer.from('development-only-key-encryption!', 'utf8');

/** KEY_ENCRYPTION_KEY, or the development key with a warning. */
export function keyEncryptionKey(config: GatewayConfig, logger: JsonLogger): Buffer {
  if (config.KEY_ENCRYPTION_KEY) return Buffer.from(config.KEY_ENCRYPTION_KEY, 'hex');
  logger.emit('warn', 'KEY_ENCRYPTION_KEY is unset: MAC keys are sealed with a development key, for development only');
  return DEVELOPMENT_KEY_ENCRYPTION_KEY;
}

/** Partner banks: the registry (BANKS_FILE and the operator CLI), their certificates, authentication and rate limits. */
@Module({
  providers: [
    {
      provide: BankDirectory,
      inject: [GatewayConfig, Store, JsonLogger],
      useFactory: async (config: GatewayConfig, store: Store, logger: JsonLogger) => {
        let anchors;
        try {
          anchors = parseCertificateBundle(readFileSync(config.TRUST_ANCHORS, 'utf8'));
        } catch (error) {
          throw new ConfigurationError(`TRUST_ANCHORS ${config.TRUST_ANCHORS} cannot be read as a PEM bundle: ${(error as Error).message}`);
        }
        if (anchors.length === 0) throw new ConfigurationError(`TRUST_ANCHORS ${config.TRUST_ANCHORS} holds no certificate`);
        const directory = new BankDirectory(store.dataSource, anchors, keyEncryptionKey(config, logger), logger);
        await directory.syncFromFile(readBankRegistryFile(config.BANKS_FILE));
        await directory.reload();
        return directory;
      },
    },
    {
      provide: BankAuthenticator,
      inject: [BankDirectory, GatewayConfig],
      useFactory: (directory: BankDirectory, config: GatewayConfig) => new BankAuthenticator(directory, config.JWS_MAX_AGE_SECONDS),
    },
    {
      provide: RateLimiter,
      inject: [Store, InstanceRegistry],
      useFactory: (store: Store, instances: InstanceRegistry) => new RateLimiter(new PostgresRateBudget(store.dataSource), () => instances.live),
    },
  ],
  exports: [BankDirectory, BankAuthenticator, RateLimiter],
})
export class BanksModule {}
