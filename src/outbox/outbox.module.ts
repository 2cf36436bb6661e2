import { Module } from '@nestjs/common';
import { Partitioners } from 'kafkajs';
import { GatewayConfig } from '../config/gateway-config';
import { Store } from '../database/store';
import { KafkaConnection, producerCompression } from '../kafka/kafka-connection';
import { JsonLogger } from '../logging/json-logger';
import { OutboxRelay } from './outbox-relay';

@Module({
  providers: [
    {
      provide: OutboxRelay,
      inject: [Store, KafkaConnection, GatewayConfig, JsonLogger],
      useFactory: (store: Store, kafka: KafkaConnection, config: GatewayConfig, logger: JsonLogger) =>
        new OutboxRelay(
          store.dataSource,
          // Java-compatible murmur2 partitioning by key; idempotent, acks=-1 and one request in flight: no duplicates from producer retries, order per partition kept.
          () => kafka.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1, retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 } }),
          config.OUTBOX_BATCH_SIZE,
          producerCompression(config),
          logger,
        ),
    },
  ],
  exports: [OutboxRelay],
})
export class OutboxModule {}
