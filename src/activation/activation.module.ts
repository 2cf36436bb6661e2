import { Module } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config';
import { Store } from '../database/store';
import { JsonLogger } from '../logging/json-logger';
import { SubjectHasher } from '../ops/subject-hasher';
import { OutboxModule } from '../outbox/outbox.module';
import { OpsModule } from '../ops/ops.module';
import { OpsRecorder } from '../ops/ops-recorder';
import { OutboxRelay } from '../outbox/outbox-relay';
import { ActivateAccount } from './activate-account.use-case';
import { ActivationQueries } from './activation-queries';
import { ActivationRepository } from './activation.repository';
import { Transactions } from '../database/sql';
import { RegistryModule } from '../registry/registry.module';
import { RegistrationReadModel } from '../registry/registration-read-model';
import { AdviseReversal } from './advise-reversal.use-case';

export const DEVELOPMENT_SUBJECT_HASH_KEY = 'development-only-subject-hash-key-not-for-production';

@Module({
  imports: [OutboxModule, OpsModule, RegistryModule],
  providers: [
    {
      provide: SubjectHasher,
      inject: [GatewayConfig, JsonLogger],
      useFactory: (config: GatewayConfig, logger: JsonLogger) => {
        if (!config.SUBJECT_HASH_KEY) logger.emit('warn', 'SUBJECT_HASH_KEY is unset: ops events use a development key, for development only');
        return new SubjectHasher(config.SUBJECT_HASH_KEY ?? DEVELOPMENT_SUBJECT_HASH_KEY);
      },
    },
    { provide: Transactions, inject: [Store], useFactory: (store: Store) => new Transactions(store.dataSource) },
    { provide: ActivationRepository, inject: [Store], useFactory: (store: Store) => new ActivationRepository(store.dataSource) },
    {
      provide: ActivateAccount,
      inject: [Transactions, ActivationRepository, RegistrationReadModel, SubjectHasher, OutboxRelay, OpsRecorder],
      useFactory: (transactions: Transactions, activations: ActivationRepository, registrations: RegistrationReadModel, subjects: SubjectHasher, relay: OutboxRelay, ops: OpsRecorder) =>
        new ActivateAccount(transactions, activations, registrations, subjects, () => relay.notify(), ops),
    },
    { provide: ActivationQueries, inject: [ActivationRepository], useFactory: (activations: ActivationRepository) => new ActivationQueries(activations) },
    {
      provide: AdviseReversal,
      inject: [Transactions, ActivationRepository, OutboxRelay],
      useFactory: (transactions: Transactions, activations: ActivationRepository, relay: OutboxRelay) => new AdviseReversal(transactions, activations, () => relay.notify()),
    },
  ],
  exports: [ActivateAccount, ActivationQueries, AdviseReversal],
})
export class ActivationModule {}
