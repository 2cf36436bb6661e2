import { listInstances } from '../instances/instance-registry';
import { InstanceRepository } from '../instances/instance.repository';
import { OutboxRepository } from '../outbox/outbox.repository';
import { appendToOutbox } from '../outbox/outbox.repository';
import { RefusedTrafficLog } from './refused-traffic.repository';
import { Module } from '@nestjs/common';
import { Store } from '../database/store';
import { JsonLogger } from '../logging/json-logger';
import { OutboxModule } from '../outbox/outbox.module';
import { OutboxRelay } from '../outbox/outbox-relay';
import { InstanceRegistry } from '../instances/instance-registry';
import { GatewayMetrics } from './gateway-metrics';
import { OpsRecorder } from './ops-recorder';
import { RefusedTraffic } from './refused-traffic';
import { GatewayConfig } from '../config/gateway-config';
import { KafkaConnection } from '../kafka/kafka-connection';
import { OpsView } from './live/ops-view';
import { OpsViewConsumer } from './live/ops-view.consumer';
import { OpsLiveFeed } from './live/ops-live-feed';
import { OperatorAccess } from './live/operator-access';
import { DeploymentStatus } from './live/deployment-status';

/** The ATM listener registers how to count its connections (it is built after this module). */
let isoConnections: () => number = () => 0;
export function countIsoConnectionsWith(counter: () => number): void {
  isoConnections = counter;
}

/** The ops stream (request-handled and per-minute summaries), metrics, and the live page's reader of that stream and of the deployment. */
@Module({
  imports: [OutboxModule],
  providers: [
    {
      provide: GatewayMetrics,
      inject: [OutboxRelay, InstanceRegistry],
      useFactory: (relay: OutboxRelay, instances: InstanceRegistry) =>
        new GatewayMetrics({ outboxBacklog: () => relay.backlog(), isoConnections: () => isoConnections(), ownership: () => instances.ownership() }),
    },
    {
      provide: OpsRecorder,
      inject: [Store, OutboxRelay, GatewayMetrics, JsonLogger],
      useFactory: (store: Store, relay: OutboxRelay, metrics: GatewayMetrics, logger: JsonLogger) =>
        new OpsRecorder((messages) => appendToOutbox(store.dataSource, messages), () => relay.notify(), metrics, logger),
    },
    {
      provide: RefusedTraffic,
      inject: [Store, GatewayConfig, JsonLogger],
      useFactory: (store: Store, config: GatewayConfig, logger: JsonLogger) =>
        new RefusedTraffic(new RefusedTrafficLog(store.dataSource), { samplesPerMinute: config.REFUSED_SAMPLES_PER_MINUTE, retentionDays: config.REFUSED_TRAFFIC_RETENTION_DAYS }, logger),
    },
    { provide: OpsView, useFactory: () => new OpsView() },
    {
      provide: OpsViewConsumer,
      inject: [KafkaConnection, OpsView, GatewayConfig, JsonLogger],
      useFactory: (kafka: KafkaConnection, view: OpsView, config: GatewayConfig, logger: JsonLogger) =>
        new OpsViewConsumer(kafka.kafka, view, config.GATEWAY_ID, config.KAFKA_CONSUMER_MAX_WAIT_MS, logger),
    },
    {
      provide: DeploymentStatus,
      inject: [Store],
      useFactory: (store: Store) => {
        const instances = new InstanceRepository(store.dataSource);
        const outbox = new OutboxRepository(store.dataSource);
        return new DeploymentStatus({ instances: () => listInstances(instances), parkedEvents: () => outbox.parkedCount() });
      },
    },
    {
      provide: OpsLiveFeed,
      inject: [OpsView, OpsViewConsumer, DeploymentStatus],
      useFactory: (view: OpsView, consumer: OpsViewConsumer, deployment: DeploymentStatus) => new OpsLiveFeed(view, () => consumer.live, () => deployment.current()),
    },
    { provide: OperatorAccess, inject: [GatewayConfig], useFactory: (config: GatewayConfig) => new OperatorAccess(config.OPS_TOKEN) },
  ],
  exports: [OpsRecorder, RefusedTraffic, GatewayMetrics, OpsViewConsumer, OpsLiveFeed, OperatorAccess, DeploymentStatus],
})
export class OpsModule {}
