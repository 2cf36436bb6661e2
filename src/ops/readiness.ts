import { Inject, Injectable } from '@nestjs/common';
import { HealthCheckService, HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { Admin } from 'kafkajs';
import { GatewayConfig } from '../config/gateway-config';
import { Store } from '../database/store';
import { KafkaConnection } from '../kafka/kafka-connection';
import { OutboxRelay } from '../outbox/outbox-relay';
import { InstanceRegistry } from '../instances/instance-registry';
import { KeyStore } from '../keys/key-store';

/**
 * The checks behind /health/ready: the store answers, Kafka answers, and the
 * outbox is not falling behind (backlog and age of the oldest unpublished
 * event under their limits), and the keys can be used (the token is there). Each says why when it fails. Parked rows do
 * not count against readiness (an operator's matter, not a reason to take
 * the instance out); the outbox check shows how many. `instance` says what
 * this instance owns.
 */
@Injectable()
export class ReadinessIndicators {
  private admin: Admin | null = null;
  private kafkaCache: { at: number; result: HealthIndicatorResult } | null = null;
  private kafkaCheck: Promise<HealthIndicatorResult> | null = null;
  private draining = false;

  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(HealthIndicatorService) private readonly indicators: HealthIndicatorService,
    @Inject(Store) private readonly store: Store,
    @Inject(KafkaConnection) private readonly kafka: KafkaConnection,
    @Inject(OutboxRelay) private readonly relay: OutboxRelay,
    @Inject(GatewayConfig) private readonly config: GatewayConfig,
    @Inject(InstanceRegistry) private readonly instances: InstanceRegistry,
    @Inject(KeyStore) private readonly keys: KeyStore,
  ) {}

  /**
   * Every check, each saying why when it is down: the management port's /health/ready. The bank
   * port's says only ready or not (the details name banks' volumes, instances and versions).
   */
  async report(): Promise<{ ready: boolean; body: unknown }> {
    try {
      return { ready: true, body: await this.health.check([() => this.store_(), () => this.kafka_(), () => this.outbox(), () => this.keyStore(), () => this.instance(), () => this.lifecycle()]) };
    } catch (error) {
      return { ready: false, body: (error as { getResponse?: () => unknown }).getResponse?.() ?? { status: 'error', error: { readiness: { status: 'down', message: (error as Error).message } } } };
    }
  }

  async store_(): Promise<HealthIndicatorResult> {
    const check = this.indicators.check('store');
    try {
      await withTimeout(this.store.ping(), 2000, 'no answer within 2 s');
      return check.up();
    } catch (error) {
      return check.down({ message: (error as Error).message });
    }
  }

  /** Cached for a second, and one check at a time however many probes come. */
  async kafka_(): Promise<HealthIndicatorResult> {
    if (this.kafkaCache && Date.now() - this.kafkaCache.at < 1000) return this.kafkaCache.result;
    this.kafkaCheck ??= this.checkKafka().finally(() => (this.kafkaCheck = null));
    return this.kafkaCheck;
  }

  private async checkKafka(): Promise<HealthIndicatorResult> {
    const check = this.indicators.check('kafka');
    let result: HealthIndicatorResult;
    try {
      if (!this.admin) {
        this.admin = this.kafka.kafka.admin({ retry: { retries: 0 } });
        await withTimeout(this.admin.connect(), 2000, 'cannot connect within 2 s');
      }
      const cluster = await withTimeout(this.admin.describeCluster(), 2000, 'no answer within 2 s');
      result = check.up({ brokers: cluster.brokers.length });
    } catch (error) {
      await this.admin?.disconnect().catch(() => undefined);
      this.admin = null;
      result = check.down({ message: (error as Error).message });
    }
    this.kafkaCache = { at: Date.now(), result };
    return result;
  }

  async outbox(): Promise<HealthIndicatorResult> {
    const check = this.indicators.check('outbox');
    try {
      const backlog = await withTimeout(this.relay.backlog(), 2000, 'no answer within 2 s');
      const details = { backlog: backlog.count, oldestAgeSeconds: Math.round(backlog.oldestAgeSeconds * 10) / 10, parked: backlog.parked };
      if (backlog.count > this.config.OUTBOX_READY_MAX_BACKLOG) return check.down({ ...details, message: `more than ${this.config.OUTBOX_READY_MAX_BACKLOG} events wait to be published` });
      if (backlog.oldestAgeSeconds > this.config.OUTBOX_READY_MAX_AGE_SECONDS) {
        return check.down({ ...details, message: `the oldest unpublished event is older than ${this.config.OUTBOX_READY_MAX_AGE_SECONDS} s` });
      }
      return check.up(details);
    } catch (error) {
      return check.down({ message: (error as Error).message });
    }
  }

  /** Down while the keys cannot be used (KEY_STORE=pkcs11: the token is gone), saying why; answers are 503 / 91 meanwhile. */
  keyStore(): HealthIndicatorResult {
    const check = this.indicators.check('keys');
    const problem = this.keys.problem;
    return problem ? check.down({ store: this.keys.kind, message: problem }) : check.up({ store: this.keys.kind });
  }

  /** From the shutdown signal on: not ready, so load balancers stop sending, while requests are still served. */
  drain(): void {
    this.draining = true;
  }

  /** Down once the instance is shutting down. */
  lifecycle(): HealthIndicatorResult {
    const check = this.indicators.check('lifecycle');
    return this.draining ? check.down({ message: 'shutting down: draining before it stops' }) : check.up();
  }

  /** Always up: which instance answered, how many share the work, and this one's relay slots and partitions. */
  instance(): HealthIndicatorResult {
    return this.indicators.check('instance').up(this.instances.ownership());
  }

  async close(): Promise<void> {
    await this.admin?.disconnect().catch(() => undefined);
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([work, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}
