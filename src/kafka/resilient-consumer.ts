import { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { JsonLogger } from '../logging/json-logger';

/**
 * A consumer group member that never gives up while the gateway runs: a
 * broker away at start, or a crash kafkajs does not restart by itself, leads
 * to another attempt with back-off, so what it feeds is never left frozen.
 * Offsets are committed by the subclass, after what a batch means is stored.
 */
export abstract class ResilientConsumer {
  protected consumer: Consumer | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private joined = false;
  private wake: (() => void) | null = null;
  private onAssigned: (topic: string, partitions: number[]) => void = () => undefined;
  protected readonly log: JsonLogger;

  protected constructor(
    protected readonly kafka: Kafka,
    private readonly groupId: string,
    private readonly topic: string,
    private readonly maxWaitTimeInMs: number,
    logger: JsonLogger,
    component: string,
    private readonly onLag: (topic: string, partition: number, lag: number) => void = () => undefined,
  ) {
    this.log = logger.child(component);
  }

  /** Stores what one batch means, then commits its offsets (see commit()). */
  protected abstract handleBatch(payload: EachBatchPayload): Promise<void>;

  /** Where a group without committed offsets starts: the whole topic by default. */
  protected startsFromBeginning(): boolean {
    return true;
  }

  /** Called once the consumer runs: the place to seek(). */
  protected async positioned(_consumer: Consumer): Promise<void> {}

  start(): void {
    this.stopped = false;
    this.running ??= this.runUntilStopped();
  }

  /** Told the partitions this member is given at each rebalance (none once it stops or crashes). */
  reportAssignmentTo(listener: (topic: string, partitions: number[]) => void): void {
    this.onAssigned = listener;
  }

  /** True once the consumer has joined its group and is consuming. */
  get consuming(): boolean {
    return this.joined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.consumer?.disconnect().catch(() => undefined);
    await this.running;
    this.running = null;
    this.consumer = null;
    this.onAssigned(this.topic, []);
  }

  /** Commits up to and including `offset` of a partition. */
  protected async commit(topic: string, partition: number, offset: string): Promise<void> {
    await this.consumer!.commitOffsets([{ topic, partition, offset: (BigInt(offset) + 1n).toString() }]);
  }

  private async runUntilStopped(): Promise<void> {
    let backoffMs = 500;
    while (!this.stopped) {
      const crashed = new Promise<void>((resolve) => (this.wake = resolve));
      try {
        await this.connectAndRun(() => this.wake?.());
        backoffMs = 500;
        await crashed; // until a crash kafkajs will not restart from, or stop()
      } catch (error) {
        this.log.emit('warn', `${this.topic} consumer could not start; retrying`, { error: (error as Error).message, backoffMs });
      }
      this.joined = false;
      this.onAssigned(this.topic, []);
      await this.consumer?.disconnect().catch(() => undefined);
      if (this.stopped) break;
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      backoffMs = Math.min(backoffMs * 2, 10_000);
    }
  }

  private async connectAndRun(onFatalCrash: () => void): Promise<void> {
    // A 10 s session (not kafkajs' 30 s): after a broker outage or a crashed
    // instance, consumption resumes within seconds, not half a minute. The
    // rebalance timeout (kafkajs: 60 s) bounds how long a rebalance waits for
    // members to rejoin: a dead instance's partitions move to the survivors
    // within about twice 10 s, not a minute.
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: 10_000,
      rebalanceTimeout: 10_000,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: this.maxWaitTimeInMs,
      retry: { retries: 10, maxRetryTime: 5000 },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      this.joined = true;
      this.onAssigned(this.topic, event.payload.memberAssignment[this.topic] ?? []);
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.joined = false;
      this.onAssigned(this.topic, []);
      if (!event.payload.restart) {
        this.log.emit('warn', `${this.topic} consumer crashed; restarting it`, { error: event.payload.error?.message });
        onFatalCrash();
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topic: this.topic, fromBeginning: this.startsFromBeginning() });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async (payload) => {
        await this.handleBatch(payload);
        this.onLag(payload.batch.topic, payload.batch.partition, Number(payload.batch.offsetLag()));
      },
    });
    await this.positioned(consumer);
  }
}
