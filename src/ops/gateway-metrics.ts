import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { RequestHandled } from './request-handled';

/**
 * Prometheus metrics (GET /metrics). Requests and latencies are counted where
 * the ops stream sees every handled request (OpsRecorder); backlog, lag and
 * connections are read when scraped.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'absher_gateway_requests_total',
    help: 'Handled activation requests by bank, channel, outcome (ACCEPTED, REJECTED, ERROR), reason and error code.',
    labelNames: ['bank', 'channel', 'outcome', 'reason', 'error_code', 'replayed'] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'absher_gateway_decision_latency_seconds',
    help: 'From request received to answer decided (decisions, replays and errors).',
    labelNames: ['channel', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly consumerLag = new Gauge({
    name: 'absher_gateway_consumer_lag',
    help: 'Messages behind the end of each consumed partition, as of the last batch read.',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });

  constructor(sources: {
    outboxBacklog: () => Promise<{ count: number; oldestAgeSeconds: number; parked: number }>;
    isoConnections: () => number;
    ownership: () => { liveInstances: number; relaySlots: number[]; partitions: Record<string, number[]> };
  }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'absher_gateway_' });
    // One store query per scrape for both gauges, bounded in time; a store that is down gives NaN, never a failed scrape.
    let backlog: Promise<{ count: number; oldestAgeSeconds: number; parked: number }> | null = null;
    const readBacklog = () => {
      backlog ??= Promise.race([
        sources.outboxBacklog(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref()),
      ])
        .catch(() => ({ count: NaN, oldestAgeSeconds: NaN, parked: NaN }))
        .finally(() => setTimeout(() => (backlog = null), 500).unref());
      return backlog;
    };
    new Gauge({
      name: 'absher_gateway_outbox_backlog',
      help: 'Events stored but not yet acknowledged by Kafka.',
      registers: [this.registry],
      async collect() {
        this.set((await readBacklog()).count);
      },
    });
    new Gauge({
      name: 'absher_gateway_outbox_oldest_age_seconds',
      help: 'Age of the oldest event not yet acknowledged by Kafka.',
      registers: [this.registry],
      async collect() {
        this.set((await readBacklog()).oldestAgeSeconds);
      },
    });
    new Gauge({
      name: 'absher_gateway_outbox_parked',
      help: 'Events Kafka kept refusing, parked until an operator re-queues them (npm run cli -- outbox requeue).',
      registers: [this.registry],
      async collect() {
        this.set((await readBacklog()).parked);
      },
    });
    new Gauge({
      name: 'absher_gateway_instances_live',
      help: 'Gateway instances sharing this database whose heartbeat is fresh, this one included.',
      registers: [this.registry],
      collect() {
        this.set(sources.ownership().liveInstances);
      },
    });
    new Gauge({
      name: 'absher_gateway_relay_slots_owned',
      help: 'Outbox relay slots (of 16) this instance publishes.',
      registers: [this.registry],
      collect() {
        this.set(sources.ownership().relaySlots.length);
      },
    });
    new Gauge({
      name: 'absher_gateway_consumer_partitions_owned',
      help: 'Partitions of each consumed topic assigned to this instance.',
      labelNames: ['topic'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [topic, partitions] of Object.entries(sources.ownership().partitions)) this.set({ topic }, partitions.length);
      },
    });
    new Gauge({
      name: 'absher_gateway_iso8583_connections_open',
      help: 'ATM switch connections open.',
      registers: [this.registry],
      collect() {
        this.set(sources.isoConnections());
      },
    });
  }

  handled(event: Pick<RequestHandled, 'bankCode' | 'channel' | 'outcome' | 'reason' | 'errorCode' | 'replayed' | 'latencyMs'>): void {
    this.requests.inc({
      bank: event.bankCode,
      channel: event.channel,
      outcome: event.outcome,
      reason: event.reason ?? '',
      error_code: event.errorCode ?? '',
      replayed: String(event.replayed),
    });
    this.latency.observe({ channel: event.channel, outcome: event.outcome }, event.latencyMs / 1000);
  }

  lag(topic: string, partition: number, lag: number): void {
    this.consumerLag.set({ topic, partition: String(partition) }, lag);
  }
}
