import { Module } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config';
import { Store } from '../database/store';
import { KeyStore } from '../keys/key-store';
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
import { ActivationResultsConsumer } from './activation-results-consumer';
import { InstanceRegistry } from '../instances/instance-registry';
import { ConsumerLifecycle } from '../kafka/consumer-lifecycle';
import { KafkaConnection } from '../kafka/kafka-connection';
import { JsonLogger } from '../logging/json-logger';
import { GatewayMetrics } from '../ops/gateway-metrics';

const RESULTS_CONSUMER_LIFECYCLE = Symbol('activation results consumer lifecycle');

/** The activation use cases (spec 2, 4.4), the read-back, and the identity core's results on them (spec 5.3). */

@Module({
  imports: [OutboxModule, OpsModule, RegistryModule],
  providers: [
    { provide: ActivationRepository, inject: [Store], useFactory: (store: Store) => new ActivationRepository(store.dataSource) },
    {
      provide: ActivateAccount,
      inject: [Transactions, ActivationRepository, RegistrationReadModel, KeyStore, OutboxRelay, OpsRecorder],
      useFactory: (transactions: Transactions, activations: ActivationRepository, registrations: RegistrationReadModel, subjects: KeyStore, relay: OutboxRelay, ops: OpsRecorder) =>
        new ActivateAccount(transactions, activations, registrations, subjects, () => relay.notify(), ops),
    },
    { provide: ActivationQueries, inject: [ActivationRepository], useFactory: (activations: ActivationRepository) => new ActivationQueries(activations) },
    {
      provide: ActivationResultsConsumer,
      inject: [KafkaConnection, Transactions, ActivationRepository, OutboxRelay, GatewayConfig, GatewayMetrics, JsonLogger],
      useFactory: (
        kafka: KafkaConnection,
        transactions: Transactions,
        activations: ActivationRepository,
        relay: OutboxRelay,
        config: GatewayConfig,
        metrics: GatewayMetrics,
        logger: JsonLogger,
      ) => new ActivationResultsConsumer(kafka.kafka, transactions, activations, () => relay.notify(), config.KAFKA_CONSUMER_MAX_WAIT_MS, logger, (t, p, lag) => metrics.lag(t, p, lag)),
    },
    {
      provide: RESULTS_CONSUMER_LIFECYCLE,
      inject: [ActivationResultsConsumer, InstanceRegistry],
      useFactory: (consumer: ActivationResultsConsumer, instances: InstanceRegistry) => new ConsumerLifecycle(consumer, instances),
    },
    {
      provide: AdviseReversal,
      inject: [Transactions, ActivationRepository, OutboxRelay],
      useFactory: (transactions: Transactions, activations: ActivationRepository, relay: OutboxRelay) => new AdviseReversal(transactions, activations, () => relay.notify()),
    },
  ],
  exports: [ActivateAccount, ActivationQueries, AdviseReversal, ActivationResultsConsumer],
})
export class ActivationModule {}
