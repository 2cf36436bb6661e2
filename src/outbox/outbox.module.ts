import { Module } from '@nestjs/common';
import { Partitioners } from 'kafkajs';
import { DataSource } from 'typeorm';
import { GatewayConfig } from '../config/gateway-config';
import { Store } from '../database/store';
import { KafkaConnection, producerCompression } from '../kafka/kafka-connection';
import { JsonLogger } from '../logging/json-logger';
import { OutboxRelay } from './outbox-relay';
import { OutboxRepository } from './outbox.repository';
import { RelaySlotLocks } from './relay-slot-locks';
import { RelaySlots } from './relay-slots';
import { InstanceRegistry } from '../instances/instance-registry';

/** The relay's slot locks need a connection of their own, outside the pool, to the same database. */
function databaseUrlOf(dataSource: DataSource): string {
  const { url } = dataSource.options as { url?: string };
  if (!url) throw new Error('the store was opened without a connection URL');
  return url;
}

@Module({
  providers: [
    { provide: OutboxRepository, inject: [Store], useFactory: (store: Store) => new OutboxRepository(store.dataSource) },
    {
      provide: OutboxRelay,
      inject: [OutboxRepository, Store, KafkaConnection, InstanceRegistry, GatewayConfig, JsonLogger],
      useFactory: (outbox: OutboxRepository, store: Store, kafka: KafkaConnection, instances: InstanceRegistry, config: GatewayConfig, logger: JsonLogger) =>
        new OutboxRelay(
          outbox,
          new RelaySlots(
            new RelaySlotLocks(databaseUrlOf(store.dataSource), config.GATEWAY_INSTANCE_ID),
            config.GATEWAY_INSTANCE_ID,
            () => instances.live,
            logger,
          ),
          // Java-compatible murmur2 partitioning by key; idempotent, acks=-1 and one request in flight: no duplicates
          // from producer retries, order per partition kept. Topics are never created by publishing: a missing topic
          // is a refusal the relay parks rows for, not a topic with the wrong settings.
          () =>
            kafka.kafka.producer({
              createPartitioner: Partitioners.DefaultPartitioner,
              idempotent: true,
              maxInFlightRequests: 1,
              allowAutoTopicCreation: false,
              retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
            }),
          config.OUTBOX_BATCH_SIZE,
          producerCompression(config),
          { maxAttempts: config.OUTBOX_MAX_ATTEMPTS, baseDelayMs: config.OUTBOX_RETRY_BASE_MS, retentionSeconds: config.OUTBOX_RETENTION_SECONDS },
          logger,
          (slots) => instances.ownsRelaySlots(slots),
        ),
    },
  ],
  exports: [OutboxRelay, OutboxRepository],
})
export class OutboxModule {}
