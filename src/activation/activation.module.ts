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
import { AdviseReversal } from './advise-reversal.use-case';

export const DEVELOPMENT_SUBJECT_HASH_KEY = 'development-only-subject-hash-key-not-for-production';

@Module({
  imports: [OutboxModule, OpsModule],
  providers: [
    {
      provide: SubjectHasher,
      inject: [GatewayConfig, JsonLogger],
      useFactory: (config: GatewayConfig, logger: JsonLogger) => {
        if (!config.SUBJECT_HASH_KEY) logger.emit('warn', 'SUBJECT_HASH_KEY is unset: ops events use a development key, for development only');
        return new SubjectHasher(config.SUBJECT_HASH_KEY ?? DEVELOPMENT_SUBJECT_HASH_KEY);
      },
    },
    {
      provide: ActivateAccount,
      inject: [Store, SubjectHasher, OutboxRelay, OpsRecorder],
      useFactory: (store: Store, subjects: SubjectHasher, relay: OutboxRelay, ops: OpsRecorder) => new ActivateAccount(store.dataSource, subjects, () => relay.notify(), ops),
    },
    { provide: ActivationQueries, inject: [Store], useFactory: (store: Store) => new ActivationQueries(store.dataSource) },
    {
      provide: AdviseReversal,
      inject: [Store, OutboxRelay],
      useFactory: (store: Store, relay: OutboxRelay) => new AdviseReversal(store.dataSource, () => relay.notify()),
    },
  ],
  exports: [ActivateAccount, ActivationQueries, AdviseReversal],
})
export class ActivationModule {}
