import { CompressionTypes, Producer } from 'kafkajs';
import { JsonLogger } from '../logging/json-logger';
import { STRUCTURED_MODE_HEADER_BYTES, STRUCTURED_MODE_HEADERS } from './cloud-event';
import { refusalOf } from './kafka-refusal';
import { HeldKey, OutboxBacklog, OutboxRepository, OutboxRow } from './outbox.repository';
import { RelaySlots } from './relay-slots';

const MAX_BATCH_BYTES = 512 * 1024;
/** How often slots are rebalanced, held keys re-read and published rows pruned. */
const ROUND_MS = 1000;
const IDLE_POLL_MS = 1000;
const PRUNE_EVERY_MS = 10_000;
const PRUNE_CHUNK = 5000;
const MAX_RETRY_DELAY_MS = 300_000;

export interface OutboxRetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  retentionSeconds: number;
}

/**
 * Publishes the outbox to Kafka and marks what Kafka acknowledged, for the
 * relay slots this instance owns (RelaySlots): every key maps to one slot and
 * each slot has one owner, so across any number of instances every event is
 * published once while all are healthy, and per key in id order.
 *
 * Crash safety: rows are marked only after Kafka acknowledged them (acks=-1),
 * so a crash or a failover between the two re-publishes them (at least once;
 * consumers de-duplicate on the CloudEvent id). While Kafka is away it
 * retries the whole batch with back-off and counts nothing against the rows.
 *
 * A row Kafka refuses for itself (its topic is unknown, the record too
 * large…) is retried later with growing delays and, after its attempts,
 * parked with the reason. Until it is published or re-queued, later rows of
 * its key wait behind it (order per key holds); other keys flow on.
 */
export class OutboxRelay {
  private producer: Producer | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  private wake: (() => void) | null = null;
  /** Set by notify() and cleared before each read: a commit seen while a batch was read is not slept through. */
  private notified = false;
  private lastError: string | null = null;
  private lastRound = 0;
  private lastPrune = 0;
  /** Keys (topic and key) waiting behind a row that is not due yet, by heldKey(), with that row's id. */
  private held = new Map<string, HeldKey>();
  private readonly log: JsonLogger;

  constructor(
    private readonly outbox: OutboxRepository,
    private readonly slots: RelaySlots,
    private readonly createProducer: () => Producer,
    private readonly batchSize: number,
    /** KAFKA_COMPRESSION: a per-batch setting in kafkajs, so it travels with the relay rather than the producer. */
    private readonly compression: CompressionTypes,
    private readonly policy: OutboxRetryPolicy,
    logger: JsonLogger,
    private readonly onSlotsChanged: (slots: number[]) => void = () => undefined,
  ) {
    this.log = logger.child('outbox-relay');
    this.slots.onOutboxWritten(() => this.notify());
  }

  start(): void {
    if (!this.running) this.running = this.loop();
  }

  /** Something was committed to the outbox: publish now rather than at the next poll. */
  notify(): void {
    this.notified = true;
    this.wake?.();
  }

  get producerConnected(): boolean {
    return this.producer !== null && this.lastError === null;
  }

  /** The slots this instance publishes now. */
  get ownedSlots(): number[] {
    return this.slots.current;
  }

  /** The whole outbox, whoever's slots: what waits, how old the oldest is, and what is parked. */
  backlog(): Promise<OutboxBacklog> {
    return this.outbox.backlog();
  }

  /** Publishes what is left of its slots (up to `flushTimeoutMs`), then lets its slots go and stops. */
  async stop(flushTimeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    this.notify();
    if (this.running) {
      await Promise.race([this.running, new Promise((resolve) => setTimeout(resolve, flushTimeoutMs).unref())]);
    }
    this.running = null;
    await this.slots.releaseAll();
    this.onSlotsChanged([]);
    await this.disconnect();
  }

  private async loop(): Promise<void> {
    let backoffMs = 100;
    for (;;) {
      await this.roundIfDue();
      let published = 0;
      try {
        this.notified = false;
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
        // Woken at once by a commit (this instance's, or any instance's through NOTIFY): the poll is a backstop.
        await this.sleep(IDLE_POLL_MS, true);
      }
    }
  }

  /** Between batches, about once a second: slots, the keys held behind a refused row, and pruning. */
  private async roundIfDue(): Promise<void> {
    const now = Date.now();
    if (now - this.lastRound < ROUND_MS) return;
    this.lastRound = now;
    const before = this.slots.current.join(',');
    if (!this.stopping) await this.slots.rebalance();
    const owned = this.slots.current;
    if (owned.join(',') !== before) this.onSlotsChanged(owned);
    try {
      await this.readHeldKeys(owned);
      // Any instance may prune; the owner of slot 0 does, so it is done once.
      if (owned.includes(0) && now - this.lastPrune >= PRUNE_EVERY_MS) {
        this.lastPrune = now;
        await this.prune();
      }
    } catch (error) {
      this.log.emit('warn', 'outbox housekeeping failed', { error: (error as Error).message });
    }
  }

  private async readHeldKeys(slots: number[]): Promise<void> {
    const held = new Map<string, HeldKey>();
    if (slots.length) {
      for (const row of await this.outbox.heldKeys(slots)) held.set(heldKey(row.topic, row.key), row);
    }
    this.held = held;
  }

  /** Deletes published rows older than the retention, a chunk at a time so no statement runs long. */
  private async prune(): Promise<void> {
    let removed = 0;
    for (;;) {
      const count = await this.outbox.prunePublished(this.policy.retentionSeconds, PRUNE_CHUNK);
      removed += count;
      if (count < PRUNE_CHUNK || this.stopping) break;
    }
    if (removed) this.log.emit('info', 'published outbox rows pruned', { removed, retentionSeconds: this.policy.retentionSeconds });
  }

  private async publishBatch(): Promise<number> {
    const slots = this.slots.current;
    if (slots.length === 0) return 0;
    // A slot's share of a batch is bounded so one busy slot cannot fill it.
    const perSlot = Math.min(this.batchSize, Math.max(64, Math.ceil((2 * this.batchSize) / slots.length)));
    const rows = await this.outbox.due(slots, { batchSize: this.batchSize, perSlot }, [...this.held.values()]);
    if (rows.length === 0) return 0;
    // Bounded in bytes too, well under Kafka's default 1 MB request and record limits.
    let bytes = 0;
    const cut = rows.findIndex((row) => (bytes += row.payload.length + row.key.length + STRUCTURED_MODE_HEADER_BYTES) > MAX_BATCH_BYTES);
    if (cut > 0) rows.length = cut;
    const producer = await this.connectedProducer();
    try {
      await this.send(producer, rows);
    } catch (error) {
      if (!refusalOf(error)) throw error;
      return this.publishAroundRefusals(producer, rows);
    }
    await this.markPublished(rows);
    return rows.length;
  }

  /**
   * Kafka refused something in the batch for itself: publish topic by topic,
   * and within a topic whose records (not the topic) were refused, row by
   * row, so only the refused rows wait. A topic that is refused as a whole
   * defers the first row of each of its keys; the rest wait behind them.
   */
  private async publishAroundRefusals(producer: Producer, rows: OutboxRow[]): Promise<number> {
    let published = 0;
    const deferred: Array<{ row: OutboxRow; reason: string }> = [];
    for (const group of groupBy(rows, (row) => row.topic)) {
      try {
        await this.send(producer, group);
        await this.markPublished(group);
        published += group.length;
        continue;
      } catch (error) {
        const refusal = refusalOf(error);
        if (!refusal) throw error;
        if (refusal.scope === 'topic') {
          for (const row of firstOfEachKey(group)) deferred.push({ row, reason: refusal.reason });
          continue;
        }
      }
      const failedKeys = new Set<string>();
      for (const row of group) {
        if (failedKeys.has(row.key)) continue;
        try {
          await this.send(producer, [row]);
          await this.markPublished([row]);
          published++;
        } catch (error) {
          const refusal = refusalOf(error);
          if (!refusal) throw error;
          failedKeys.add(row.key);
          deferred.push({ row, reason: refusal.reason });
        }
      }
    }
    await this.defer(deferred);
    return published + deferred.length; // both made progress: go on without the idle pause
  }

  /** Counts an attempt on each row, and schedules its retry or parks it. */
  private async defer(rows: Array<{ row: OutboxRow; reason: string }>): Promise<void> {
    if (rows.length === 0) return;
    const parked: string[] = [];
    for (const { row, reason } of rows) {
      const attempts = row.attempts + 1;
      const park = attempts >= this.policy.maxAttempts;
      const delayMs = Math.min(this.policy.baseDelayMs * 2 ** (attempts - 1), MAX_RETRY_DELAY_MS);
      await this.outbox.recordRefusal(row.id, { attempts, reason, park, retryAfterMs: delayMs });
      this.held.set(heldKey(row.topic, row.key), { topic: row.topic, key: row.key, id: row.id });
      if (park) parked.push(row.id);
    }
    const topics = [...new Set(rows.map(({ row }) => row.topic))];
    this.log.emit('warn', 'Kafka refused outbox rows; retrying them later', { rows: rows.length, topics, reason: rows[0].reason });
    if (parked.length) this.log.emit('error', 'outbox rows parked after their attempts; re-queue with "npm run cli -- outbox requeue"', { ids: parked.slice(0, 20), count: parked.length });
  }

  /** Each row's payload is a JSON CloudEvent: published in the Kafka binding's structured mode, the same header on every record. */
  private async send(producer: Producer, rows: OutboxRow[]): Promise<void> {
    await producer.sendBatch({
      acks: -1,
      timeout: 10_000,
      compression: this.compression,
      topicMessages: groupBy(rows, (row) => row.topic).map((group) => ({ topic: group[0].topic, messages: group.map((row) => ({ key: row.key, value: row.payload, headers: STRUCTURED_MODE_HEADERS })) })),
    });
  }

  private async markPublished(rows: OutboxRow[]): Promise<void> {
    await this.outbox.markPublished(rows.map((row) => row.id));
    if (this.held.size) {
      for (const row of rows) if (this.held.get(heldKey(row.topic, row.key))?.id === row.id) this.held.delete(heldKey(row.topic, row.key));
    }
    if (this.log.enabled('debug')) for (const row of rows) this.log.emit('debug', 'event published', { topic: row.topic, ...traceOf(row.payload) });
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

  /** `idle`: a commit noticed since the last read ends it before it starts (a back-off waits regardless). */
  private sleep(ms: number, idle = false): Promise<void> {
    if (idle && this.notified) return Promise.resolve();
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

function heldKey(topic: string, key: string): string {
  return `${topic}\u0000${key}`;
}

/** Groups in first-seen order, keeping each group's order. */
function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): T[][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return [...groups.values()];
}

function firstOfEachKey(rows: OutboxRow[]): OutboxRow[] {
  const seen = new Set<string>();
  return rows.filter((row) => !seen.has(row.key) && seen.add(row.key));
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
