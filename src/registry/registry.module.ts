import { Module } from '@nestjs/common';
import { GatewayConfig } from '../config/gateway-config';
import { KafkaConnection } from '../kafka/kafka-connection';
import { JsonLogger } from '../logging/json-logger';
import { OutboxModule } from '../outbox/outbox.module';
import { OutboxRelay } from '../outbox/outbox-relay';
import { RegistrationsConsumer } from './registrations-consumer';
import { RegistrationReadModel } from './registration-read-model';
import { Transactions } from '../database/sql';
import { OpsModule } from '../ops/ops.module';
import { GatewayMetrics } from '../ops/gateway-metrics';
import { InstanceRegistry } from '../instances/instance-registry';
import { ConsumerLifecycle } from '../kafka/consumer-lifecycle';

const REGISTRATIONS_CONSUMER_LIFECYCLE = Symbol('registrations consumer lifecycle');

/** The registration read model (spec 5.2): kept from the identity core's registrations topic, read by the activation use case. */
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
      provide: REGISTRATIONS_CONSUMER_LIFECYCLE,
      inject: [RegistrationsConsumer, InstanceRegistry],
      useFactory: (consumer: RegistrationsConsumer, instances: InstanceRegistry) => new ConsumerLifecycle(consumer, instances),
    },
  ],
  exports: [RegistrationReadModel, RegistrationsConsumer],
})
export class RegistryModule {}
