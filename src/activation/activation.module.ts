import { Module } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config';
import { Store } from '../database/store';
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

@Module({
  imports: [OutboxModule, OpsModule, RegistryModule],
  providers: [
    // The configuration hands out the key, or the development one (with its warning, given once at start).
    { provide: SubjectHasher, inject: [GatewayConfig], useFactory: (config: GatewayConfig) => new SubjectHasher(config.SUBJECT_HASH_KEY) },
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
