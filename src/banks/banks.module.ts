import { readFileSync } from 'node:fs';
import { Module } from '@nestjs/common';
import { CertificateInfo, parseCertificateBundle } from '../../libs/pki';
import { DataSource } from 'typeorm';
import { ActivationTraceRepository } from '../activation/activation-trace.repository';
import { BankRegistryAdmin } from './bank-registry-admin';
import { GatewayConfig } from '../config/gateway-config';
import { ConfigurationError } from '../config/gateway-config';
import { Transactions } from '../database/sql';
import { Store } from '../database/store';
import { JsonLogger } from '../logging/json-logger';
import { BankAuthenticator } from './bank-authenticator';
import { BankDirectory } from './bank-directory';
import { readBankRegistryFile } from './bank-registry-file';
import { BankRepository } from './bank.repository';
import { RateBudgetRepository } from './rate-budget.repository';
import { RateLimiter } from './rate-limiter';
import { InstanceRegistry } from '../instances/instance-registry';
import { KeyStore } from '../keys/key-store';

/** TRUST_ANCHORS, the CAs bank certificates must chain to. */
export function loadTrustAnchors(config: GatewayConfig): CertificateInfo[] {
  let anchors;
  try {
    anchors = parseCertificateBundle(readFileSync(config.TRUST_ANCHORS, 'utf8'));
  } catch (error) {
    throw new ConfigurationError(`TRUST_ANCHORS ${config.TRUST_ANCHORS} cannot be read as a PEM bundle: ${(error as Error).message}`);
  }
  if (anchors.length === 0) throw new ConfigurationError(`TRUST_ANCHORS ${config.TRUST_ANCHORS} holds no certificate`);
  return anchors;
}

/** The registry as the operator CLI changes it: the same repositories, anchors and key store as the gateway's, on the CLI's own connection. */
export function bankRegistryAdmin(dataSource: DataSource, config: GatewayConfig, keys: KeyStore, operator: string): BankRegistryAdmin {
  return new BankRegistryAdmin(new BankRepository(dataSource), new ActivationTraceRepository(dataSource), new Transactions(dataSource), loadTrustAnchors(config), keys, operator);
}

/** Partner banks: the registry (BANKS_FILE and the operator CLI), their certificates, authentication and rate limits. */
@Module({
  providers: [
    { provide: BankRepository, inject: [Store], useFactory: (store: Store) => new BankRepository(store.dataSource) },
    { provide: RateBudgetRepository, inject: [Store], useFactory: (store: Store) => new RateBudgetRepository(store.dataSource) },
    {
      provide: BankDirectory,
      inject: [GatewayConfig, BankRepository, Transactions, KeyStore, JsonLogger],
      useFactory: async (config: GatewayConfig, registry: BankRepository, transactions: Transactions, keys: KeyStore, logger: JsonLogger) => {
        const directory = new BankDirectory(registry, transactions, loadTrustAnchors(config), keys, logger);
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
      inject: [RateBudgetRepository, InstanceRegistry],
      useFactory: (budget: RateBudgetRepository, instances: InstanceRegistry) => new RateLimiter(budget, () => instances.live),
    },
  ],
  exports: [BankDirectory, BankAuthenticator, RateLimiter],
})
export class BanksModule {}
