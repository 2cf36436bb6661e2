import { CompressionTypes, Producer } from 'kafkajs';
import { DataSource } from 'typeorm';
import { JsonLogger } from '../logging/json-logger';
import { STRUCTURED_MODE_HEADER_BYTES, STRUCTURED_MODE_HEADERS } from './cloud-event';
import { refusalOf } from './kafka-refusal';
import { RelaySlots } from './relay-slots';

interface PendingRow {
  id: string;
  topic: string;
  message_key: string;
  payload: string;
  attempts: number;
}

const MAX_BATCH_BYTES = 512 * 1024;
/** How often slots are rebalanced, held keys re-read and published rows pruned. */
const ROUND_MS = 1000;
const IDLE_POLL_MS = 1000;
const PRUNE_EVERY_MS = 10_000;
const PRUNE_CHUNK = 5000;
const MAX_RETRY_DELAY_MS = 300_000;

export interface OutboxBacklog {
  count: number;
  oldestAgeSeconds: number;
  parked: number;
}

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
  /** Keys (topic and key) waiting behind a row that is not due yet, with that row's id. */
  private held = new Map<string, bigint>();
  private readonly log: JsonLogger;

  constructor(
    private readonly dataSource: DataSource,
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
  async backlog(): Promise<OutboxBacklog> {
    const [row] = await this.dataSource.query(
      `SELECT count(*) FILTER (WHERE parked_at IS NULL)::int AS count,
              count(*) FILTER (WHERE parked_at IS NOT NULL)::int AS parked,
              coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0)::float AS age
         FROM outbox_event WHERE published_at IS NULL`,
    );
    return { count: row.count, oldestAgeSeconds: row.age, parked: row.parked };
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
    const held = new Map<string, bigint>();
    if (slots.length) {
      const rows: Array<{ topic: string; message_key: string; id: string }> = await this.dataSource.query(
        `SELECT topic, message_key, min(id) AS id FROM outbox_event
          WHERE slot = ANY($1::smallint[]) AND published_at IS NULL AND next_attempt_at > now()
          GROUP BY topic, message_key`,
        [slots],
      );
      for (const row of rows) held.set(heldKey(row.topic, row.message_key), BigInt(row.id));
    }
    this.held = held;
  }

  /** Deletes published rows older than the retention, a chunk at a time so no statement runs long. */
  private async prune(): Promise<void> {
    let removed = 0;
    for (;;) {
      // Only the oldest published rows are looked at (ids follow time), so a table holding a day of
      // traffic is never scanned whole when nothing is old enough yet.
      const result = await this.dataSource.query(
        `DELETE FROM outbox_event WHERE id IN (
           SELECT id FROM (SELECT id, created_at FROM outbox_event WHERE published_at IS NOT NULL ORDER BY id LIMIT $2) oldest
            WHERE created_at < now() - make_interval(secs => $1))`,
        [this.policy.retentionSeconds, PRUNE_CHUNK],
      );
      const count = Array.isArray(result) ? Number(result[1] ?? 0) : 0;
      removed += count;
      if (count < PRUNE_CHUNK || this.stopping) break;
    }
    if (removed) this.log.emit('info', 'published outbox rows pruned', { removed, retentionSeconds: this.policy.retentionSeconds });
  }

  private async publishBatch(): Promise<number> {
    const slots = this.slots.current;
    if (slots.length === 0) return 0;
    // Rows behind a held row are left out here, not after the fetch: thousands of them (a topic
    // refused as a whole) must not fill every batch and starve the other keys.
    const held = [...this.held].map(([key, id]) => [...key.split('\u0000'), id.toString()]);
    // Slot by slot, each an index scan in id order that stops at its limit: one scan over all the
    // slots becomes a bitmap scan, which reads every published row's index entry until vacuum removes
    // it (and marks none dead), tens of milliseconds a batch. The order that matters, per key, is
    // within a slot; a slot's share of a batch is bounded so one busy slot cannot fill it.
    const perSlot = Math.min(this.batchSize, Math.max(64, Math.ceil((2 * this.batchSize) / slots.length)));
    const rows: PendingRow[] = await this.dataSource.query(
      `SELECT r.id, r.topic, r.message_key, r.payload, r.attempts
         FROM unnest($1::smallint[]) AS s(slot)
         CROSS JOIN LATERAL (
           SELECT id, topic, message_key, payload, attempts FROM outbox_event o
            WHERE o.slot = s.slot AND o.published_at IS NULL AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
              AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[], $6::bigint[]) AS h(topic, message_key, id)
                               WHERE h.topic = o.topic AND h.message_key = o.message_key AND o.id > h.id)
            ORDER BY o.id LIMIT $3) r
        ORDER BY r.id LIMIT $2`,
      [slots, this.batchSize, perSlot, held.map((h) => h[0]), held.map((h) => h[1]), held.map((h) => h[2])],
    );
    if (rows.length === 0) return 0;
    // Bounded in bytes too, well under Kafka's default 1 MB request and record limits.
    let bytes = 0;
    const cut = rows.findIndex((row) => (bytes += row.payload.length + row.message_key.length + STRUCTURED_MODE_HEADER_BYTES) > MAX_BATCH_BYTES);
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
  private async publishAroundRefusals(producer: Producer, rows: PendingRow[]): Promise<number> {
    let published = 0;
    const deferred: Array<{ row: PendingRow; reason: string }> = [];
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
        if (failedKeys.has(row.message_key)) continue;
        try {
          await this.send(producer, [row]);
          await this.markPublished([row]);
          published++;
        } catch (error) {
          const refusal = refusalOf(error);
          if (!refusal) throw error;
          failedKeys.add(row.message_key);
          deferred.push({ row, reason: refusal.reason });
        }
      }
    }
    await this.defer(deferred);
    return published + deferred.length; // both made progress: go on without the idle pause
  }

  /** Counts an attempt on each row, and schedules its retry or parks it. */
  private async defer(rows: Array<{ row: PendingRow; reason: string }>): Promise<void> {
    if (rows.length === 0) return;
    const parked: string[] = [];
    for (const { row, reason } of rows) {
      const attempts = row.attempts + 1;
      const park = attempts >= this.policy.maxAttempts;
      const delayMs = Math.min(this.policy.baseDelayMs * 2 ** (attempts - 1), MAX_RETRY_DELAY_MS);
      await this.dataSource.query(
        `UPDATE outbox_event SET attempts = $2, last_error = $3,
                parked_at = CASE WHEN $4 THEN now() END,
                next_attempt_at = CASE WHEN $4 THEN 'infinity'::timestamptz ELSE now() + make_interval(secs => $5) END
          WHERE id = $1`,
        [row.id, attempts, reason.slice(0, 500), park, delayMs / 1000],
      );
      this.held.set(heldKey(row.topic, row.message_key), BigInt(row.id));
      if (park) parked.push(row.id);
    }
    const topics = [...new Set(rows.map(({ row }) => row.topic))];
    this.log.emit('warn', 'Kafka refused outbox rows; retrying them later', { rows: rows.length, topics, reason: rows[0].reason });
    if (parked.length) this.log.emit('error', 'outbox rows parked after their attempts; re-queue with "npm run cli -- outbox requeue"', { ids: parked.slice(0, 20), count: parked.length });
  }

  /** Each row's payload is a JSON CloudEvent: published in the Kafka binding's structured mode, the same header on every record. */
  private async send(producer: Producer, rows: PendingRow[]): Promise<void> {
    await producer.sendBatch({
      acks: -1,
      timeout: 10_000,
      compression: this.compression,
      topicMessages: groupBy(rows, (row) => row.topic).map((group) => ({ topic: group[0].topic, messages: group.map((row) => ({ key: row.message_key, value: row.payload, headers: STRUCTURED_MODE_HEADERS })) })),
    });
  }

  private async markPublished(rows: PendingRow[]): Promise<void> {
    await this.dataSource.query(`UPDATE outbox_event SET published_at = now(), next_attempt_at = NULL WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)]);
    if (this.held.size) {
      for (const row of rows) if (this.held.get(heldKey(row.topic, row.message_key)) === BigInt(row.id)) this.held.delete(heldKey(row.topic, row.message_key));
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

function firstOfEachKey(rows: PendingRow[]): PendingRow[] {
  const seen = new Set<string>();
  return rows.filter((row) => !seen.has(row.message_key) && seen.add(row.message_key));
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
