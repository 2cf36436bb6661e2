import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { ResilientConsumer } from '../../kafka/resilient-consumer';
import { TOPICS } from '../../kafka/topics';
import { JsonLogger } from '../../logging/json-logger';
import { OpsView, WINDOW_MS } from './ops-view';

/**
 * The gateway's own reader of the ops topic, feeding the live page. Every
 * instance needs every event (a page shows all banks whichever instance it
 * is served by), so each process is a group of its own, commits nothing,
 * and starts at the offsets of 15 minutes ago. A broker that cannot look up
 * offsets by time (the development broker) starts it at the end instead.
 */
export class OpsViewConsumer extends ResilientConsumer {
  private positionedAt: number | null = null;
  /** Next offset per partition already folded into the view: a restarted consumer resumes there, counting nothing twice. */
  private readonly next = new Map<number, bigint>();

  constructor(
    kafka: Kafka,
    readonly view: OpsView,
    gatewayId: string,
    maxWaitTimeInMs: number,
    logger: JsonLogger,
  ) {
    super(kafka, `${gatewayId}.ops-view.${hostname()}.${process.pid}.${randomBytes(4).toString('hex')}`, TOPICS.ops, maxWaitTimeInMs, logger, 'ops-view-consumer');
  }

  /** True once it reads the topic from its starting offsets: what the page shows from then on is complete. */
  get live(): boolean {
    return this.consuming && this.positionedAt !== null;
  }

  protected override startsFromBeginning(): boolean {
    return false;
  }

  protected override async positioned(consumer: Consumer): Promise<void> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const offsets = await admin.fetchTopicOffsetsByTimestamp(TOPICS.ops, Date.now() - WINDOW_MS);
      for (const { partition, offset } of offsets) {
        const resume = this.next.get(partition);
        consumer.seek({ topic: TOPICS.ops, partition, offset: resume !== undefined && resume > BigInt(offset) ? resume.toString() : offset });
      }
    } catch (error) {
      this.log.emit('warn', 'ops view could not look up the offsets of the last minutes; it starts at the end of the topic', { error: (error as Error).message });
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    this.positionedAt = Date.now();
  }

  protected async handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) return;
      this.view.addEventValue(message.value);
      this.next.set(batch.partition, BigInt(message.offset) + 1n);
      resolveOffset(message.offset);
    }
    await heartbeat();
  }
}
