import { CompressionTypes, Producer } from 'kafkajs';
import { DataSource } from 'typeorm';
import { JsonLogger } from '../logging/json-logger';

interface PendingRow {
  id: string;
  topic: string;
  message_key: string;
  payload: string;
}

const MAX_BATCH_BYTES = 512 * 1024;

export interface OutboxBacklog {
  count: number;
  oldestAgeSeconds: number;
}

/**
 * Publishes the outbox to Kafka in id order and marks what Kafka acknowledged.
 *
 * Crash safety: rows are marked only after Kafka acknowledged them (acks=-1),
 * so a crash between the two re-publishes them (at least once; consumers
 * de-duplicate on the CloudEvent id). It always resumes from the oldest
 * unpublished row and never skips one, so order per key holds. While Kafka is
 * away it retries with back-off; requests keep being answered and stored.
 * One relay per database (a second one would double-publish, not lose).
 */
export class OutboxRelay {
  private producer: Producer | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  private wake: (() => void) | null = null;
  private lastError: string | null = null;
  private readonly log: JsonLogger;

  constructor(
    private readonly dataSource: DataSource,
    private readonly createProducer: () => Producer,
    private readonly batchSize: number,
    /** KAFKA_COMPRESSION: a per-batch setting in kafkajs, so it travels with the relay rather than the producer. */
    private readonly compression: CompressionTypes,
    logger: JsonLogger,
  ) {
    this.log = logger.child('outbox-relay');
  }

  start(): void {
    if (!this.running) this.running = this.loop();
  }

  /** Something was committed to the outbox: publish now rather than at the next poll. */
  notify(): void {
    this.wake?.();
  }

  get producerConnected(): boolean {
    return this.producer !== null && this.lastError === null;
  }

  async backlog(): Promise<OutboxBacklog> {
    const [row] = await this.dataSource.query(
      `SELECT count(*)::int AS count, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float AS age
         FROM outbox_event WHERE published_at IS NULL`,
    );
    return { count: row.count, oldestAgeSeconds: row.age };
  }

  /** Publishes what is left (up to `flushTimeoutMs`), then stops. */
  async stop(flushTimeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    this.notify();
    if (this.running) {
      await Promise.race([this.running, new Promise((resolve) => setTimeout(resolve, flushTimeoutMs).unref())]);
    }
    this.running = null;
    await this.disconnect();
  }

  private async loop(): Promise<void> {
    let backoffMs = 100;
    for (;;) {
      let published = 0;
      try {
        published = await this.publishBatch();
        if (this.lastError) this.log.emit('info', 'publishing to Kafka again', { after: this.lastError });
        this.lastError = null;
        backoffMs = 100;
      } catch (error) {
        const message = (error as Error).message;
        if (this.lastError !== message) this.log.emit('warn', 'outbox publish failed; retrying with back-off', { error: message, backoffMs });
        this.lastError = message;
        await this.disconnect();
        if (this.stopping) return;
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5000);
        continue;
      }
      if (published === 0) {
        if (this.stopping) return;
        await this.sleep(250);
      }
    }
  }

  private async publishBatch(): Promise<number> {
    const rows: PendingRow[] = await this.dataSource.query(
      `SELECT id, topic, message_key, payload FROM outbox_event WHERE published_at IS NULL ORDER BY id LIMIT $1`,
      [this.batchSize],
    );
    if (rows.length === 0) return 0;
    // Bounded in bytes too, well under Kafka's default 1 MB request and record limits.
    let bytes = 0;
    const cut = rows.findIndex((row) => (bytes += row.payload.length + row.message_key.length) > MAX_BATCH_BYTES);
    if (cut > 0) rows.length = cut;
    const producer = await this.connectedProducer();
    const byTopic = new Map<string, { key: string; value: string }[]>();
    for (const row of rows) {
      const list = byTopic.get(row.topic) ?? [];
      list.push({ key: row.message_key, value: row.payload });
      byTopic.set(row.topic, list);
    }
    await producer.sendBatch({
      acks: -1,
      timeout: 10_000,
      compression: this.compression,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
    await this.dataSource.query(`UPDATE outbox_event SET published_at = now() WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)]);
    if (this.log.enabled('debug')) for (const row of rows) this.log.emit('debug', 'event published', { topic: row.topic, ...traceOf(row.payload) });
    return rows.length;
  }

  private async connectedProducer(): Promise<Producer> {
    if (!this.producer) {
      const producer = this.createProducer();
      await producer.connect();
      this.producer = producer;
    }
    return this.producer;
  }

  private async disconnect(): Promise<void> {
    const producer = this.producer;
    this.producer = null;
    await producer?.disconnect().catch(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }
}

/** What names an event in a log line: its id and type, and the bank's request id when it has one (never `data` itself). */
function traceOf(payload: string): { eventId?: string; type?: string; requestId?: string; activationId?: string } {
  try {
    const event = JSON.parse(payload) as { id?: string; type?: string; data?: { requestId?: unknown; activationId?: unknown } };
    const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
    return { eventId: event.id, type: event.type, requestId: text(event.data?.requestId), activationId: text(event.data?.activationId) };
  } catch {
    return {};
  }
}
