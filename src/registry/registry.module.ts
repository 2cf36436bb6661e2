import { Module } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config';
import { Store } from '../database/store';
import { KafkaConnection } from '../kafka/kafka-connection';
import { JsonLogger } from '../logging/json-logger';
import { OutboxModule } from '../outbox/outbox.module';
import { OutboxRelay } from '../outbox/outbox-relay';
import { RegistrationsConsumer } from './registrations-consumer';
import { RegistrationReadModel } from './registration-read-model';
import { Transactions } from '../database/sql';
import { OpsModule } from '../ops/ops.module';
import { GatewayMetrics } from '../ops/gateway-metrics';
import { ActivationResultsConsumer } from '../activation/activation-results-consumer';
import { ActivationRepository } from '../activation/activation.repository';

/** The identity core's streams: registrations (5.2) and activation results (5.3). */
@Module({
  imports: [OutboxModule, OpsModule],
  providers: [
    RegistrationReadModel,
    {
      provide: RegistrationsConsumer,
      inject: [KafkaConnection, Transactions, RegistrationReadModel, OutboxRelay, GatewayConfig, GatewayMetrics, JsonLogger],
      useFactory: (kafka: KafkaConnection, transactions: Transactions, readModel: RegistrationReadModel, relay: OutboxRelay, config: GatewayConfig, metrics: GatewayMetrics, logger: JsonLogger) =>
        new RegistrationsConsumer(kafka.kafka, transactions, readModel, () => relay.notify(), config.KAFKA_CONSUMER_MAX_WAIT_MS, logger, (t, p, lag) => metrics.lag(t, p, lag)),
    },
    {
      provide: ActivationResultsConsumer,
      inject: [KafkaConnection, Transactions, Store, OutboxRelay, GatewayConfig, GatewayMetrics, JsonLogger],
      useFactory: (kafka: KafkaConnection, transactions: Transactions, store: Store, relay: OutboxRelay, config: GatewayConfig, metrics: GatewayMetrics, logger: JsonLogger) =>
        new ActivationResultsConsumer(
          kafka.kafka,
          transactions,
          new ActivationRepository(store.dataSource),
          () => relay.notify(),
          config.KAFKA_CONSUMER_MAX_WAIT_MS,
          logger,
          (t, p, lag) => metrics.lag(t, p, lag),
        ),
    },
  ],
  exports: [RegistrationReadModel, RegistrationsConsumer, ActivationResultsConsumer],
})
export class RegistryModule {}
