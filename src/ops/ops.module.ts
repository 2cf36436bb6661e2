import { Module } from '@nestjs/common';
import { Store } from '../database/store';
import { JsonLogger } from '../logging/json-logger';
import { OutboxModule } from '../outbox/outbox.module';
import { OutboxRelay } from '../outbox/outbox-relay';
import { GatewayMetrics } from './gateway-metrics';
import { OpsRecorder } from './ops-recorder';

/** The ATM listener registers how to count its connections (it is built after this module). */
let isoConnections: () => number = () => 0;
export function countIsoConnectionsWith(counter: () => number): void {
  isoConnections = counter;
}

/** The ops stream: request-handled and per-minute summaries. */
@Module({
  imports: [OutboxModule],
  providers: [
    {
      provide: GatewayMetrics,
      inject: [OutboxRelay],
      useFactory: (relay: OutboxRelay) => new GatewayMetrics({ outboxBacklog: () => relay.backlog(), isoConnections: () => isoConnections() }),
    },
    {
      provide: OpsRecorder,
      inject: [Store, OutboxRelay, GatewayMetrics, JsonLogger],
      useFactory: (store: Store, relay: OutboxRelay, metrics: GatewayMetrics, logger: JsonLogger) => new OpsRecorder(store.dataSource, () => relay.notify(), metrics, logger),
    },
  ],
  exports: [OpsRecorder, GatewayMetrics],
})
export class OpsModule {}
