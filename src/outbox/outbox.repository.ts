import { DataSource } from 'typeorm';
import { Sql } from '../database/sql';
import { OutboxMessage } from './cloud-event';

/** An unpublished event as the relay sends it: the row's id, where it goes, its key, and the exact bytes. */
export interface OutboxRow {
  id: string;
  topic: string;
  key: string;
  payload: string;
  /** Refusals counted against it so far. */
  attempts: number;
}

/** A key (topic and message key) waiting behind its first row, which is not due yet. */
export interface HeldKey {
  topic: string;
  key: string;
  /** The waiting row: rows of the key after it wait too. */
  id: string;
}

/** How much one read of due rows may take. */
export interface DueLimits {
  /** Rows in all. */
  batchSize: number;
  /** Rows from any one slot. */
  perSlot: number;
}

/** What Kafka's refusal of a row leaves on it: its count, the reason, and either its next try or parking. */
export interface Refusal {
  attempts: number;
  reason: string;
  park: boolean;
  retryAfterMs: number;
}

export interface OutboxBacklog {
  count: number;
  oldestAgeSeconds: number;
  parked: number;
}

/** A parked row as stored; its key unmasked (OutboxAdmin masks it for display). */
export interface ParkedRow {
  id: string;
  topic: string;
  key: string;
  type: string | null;
  attempts: number;
  reason: string | null;
  createdAt: Date;
  parkedAt: Date;
  /** Unpublished rows of the same key after it. */
  waitingBehind: number;
}

/**
 * Appends events inside the caller's transaction, so they are stored if and
 * only if the state they describe is. A function rather than a method: every
 * module that writes events calls it with its own transaction.
 */
export async function appendToOutbox(tx: Sql, messages: readonly OutboxMessage[]): Promise<void> {
  if (messages.length === 0) return;
  const values: string[] = [];
  const params: string[] = [];
  messages.forEach((message, i) => {
    values.push(`($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`);
    params.push(message.topic, message.key, JSON.stringify(message.event));
  });
  await tx.query(`INSERT INTO outbox_event (topic, message_key, payload) VALUES ${values.join(', ')}`, params);
}

/**
 * outbox_event: every statement the relay and the operators run on it (rows
 * are appended by appendToOutbox, above). All on the pool: the relay's
 * statements each stand alone, and a row is marked only after Kafka
 * acknowledged it.
 */
export class OutboxRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Unpublished rows of these slots that are due, in id order, leaving out the rows behind a held key.
   *
   * Slot by slot, each an index scan in id order that stops at its limit: one scan over all the slots
   * becomes a bitmap scan, which reads every published row's index entry until vacuum removes it (and
   * marks none dead), tens of milliseconds a batch. The order that matters, per key, is within a slot.
   * Rows behind a held row are left out here, not after the fetch: thousands of them (a topic refused
   * as a whole) must not fill every batch and starve the other keys.
   */
  async due(slots: readonly number[], limits: DueLimits, held: readonly HeldKey[]): Promise<OutboxRow[]> {
    const rows: { id: string; topic: string; message_key: string; payload: string; attempts: number }[] = await this.dataSource.query(
      `SELECT r.id, r.topic, r.message_key, r.payload, r.attempts
         FROM unnest($1::smallint[]) AS s(slot)
         CROSS JOIN LATERAL (
           SELECT id, topic, message_key, payload, attempts FROM outbox_event o
            WHERE o.slot = s.slot AND o.published_at IS NULL AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
              AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[], $6::bigint[]) AS h(topic, message_key, id)
                               WHERE h.topic = o.topic AND h.message_key = o.message_key AND o.id > h.id)
            ORDER BY o.id LIMIT $3) r
        ORDER BY r.id LIMIT $2`,
      [slots, limits.batchSize, limits.perSlot, held.map((h) => h.topic), held.map((h) => h.key), held.map((h) => h.id)],
    );
    return rows.map((row) => ({ id: row.id, topic: row.topic, key: row.message_key, payload: row.payload, attempts: row.attempts }));
  }

  /** The keys of these slots whose first unpublished row is not due yet (retrying later, or parked). */
  async heldKeys(slots: readonly number[]): Promise<HeldKey[]> {
    const rows: { topic: string; message_key: string; id: string }[] = await this.dataSource.query(
      `SELECT topic, message_key, min(id) AS id FROM outbox_event
        WHERE slot = ANY($1::smallint[]) AND published_at IS NULL AND next_attempt_at > now()
        GROUP BY topic, message_key`,
      [slots],
    );
    return rows.map((row) => ({ topic: row.topic, key: row.message_key, id: String(row.id) }));
  }

  /** Kafka acknowledged these rows. */
  async markPublished(ids: readonly string[]): Promise<void> {
    await this.dataSource.query(`UPDATE outbox_event SET published_at = now(), next_attempt_at = NULL WHERE id = ANY($1::bigint[])`, [ids]);
  }

  /** Kafka refused the row for itself: counts the attempt and schedules its retry, or parks it (next_attempt_at 'infinity'). */
  async recordRefusal(id: string, refusal: Refusal): Promise<void> {
    await this.dataSource.query(
      `UPDATE outbox_event SET attempts = $2, last_error = $3,
              parked_at = CASE WHEN $4 THEN now() END,
              next_attempt_at = CASE WHEN $4 THEN 'infinity'::timestamptz ELSE now() + make_interval(secs => $5) END
        WHERE id = $1`,
      [id, refusal.attempts, refusal.reason.slice(0, 500), refusal.park, refusal.retryAfterMs / 1000],
    );
  }

  /**
   * Deletes up to `chunk` published rows older than the retention; returns how many. Only the oldest
   * published rows are looked at (ids follow time), so a table holding a day of traffic is never
   * scanned whole when nothing is old enough yet.
   */
  async prunePublished(retentionSeconds: number, chunk: number): Promise<number> {
    const result = await this.dataSource.query(
      `DELETE FROM outbox_event WHERE id IN (
         SELECT id FROM (SELECT id, created_at FROM outbox_event WHERE published_at IS NOT NULL ORDER BY id LIMIT $2) oldest
          WHERE created_at < now() - make_interval(secs => $1))`,
      [retentionSeconds, chunk],
    );
    // TypeORM answers a bare DELETE with [rows, affected].
    return Array.isArray(result) ? Number(result[1] ?? 0) : 0;
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

  /** Parked rows, oldest first, each with the number of rows of its key waiting behind it. */
  async parked(limit: number): Promise<ParkedRow[]> {
    const rows: Array<Record<string, unknown>> = await this.dataSource.query(
      `SELECT p.id, p.topic, p.message_key, p.attempts, p.last_error, p.created_at, p.parked_at,
              (p.payload::jsonb ->> 'type') AS type,
              (SELECT count(*)::int FROM outbox_event w
                WHERE w.topic = p.topic AND w.message_key = p.message_key AND w.id > p.id AND w.published_at IS NULL) AS waiting
         FROM outbox_event p WHERE p.parked_at IS NOT NULL AND p.published_at IS NULL ORDER BY p.id LIMIT $1`,
      [limit],
    );
    return rows.map((row) => ({
      id: String(row.id),
      topic: String(row.topic),
      key: String(row.message_key),
      type: (row.type as string | null) ?? null,
      attempts: Number(row.attempts),
      reason: (row.last_error as string | null) ?? null,
      createdAt: new Date(row.created_at as string),
      parkedAt: new Date(row.parked_at as string),
      waitingBehind: Number(row.waiting),
    }));
  }

  async parkedCount(): Promise<number> {
    // next_attempt_at is set on parked rows ('infinity'): the condition lets the small partial index of held rows answer.
    const [row] = await this.dataSource.query(
      `SELECT count(*)::int AS parked FROM outbox_event WHERE published_at IS NULL AND next_attempt_at IS NOT NULL AND parked_at IS NOT NULL`,
    );
    return Number(row.parked);
  }

  /** Parked rows (these ids, or all) become due again with a fresh count of attempts; returns how many. */
  async requeue(ids: readonly string[] | 'all'): Promise<number> {
    const result = await this.dataSource.query(
      `WITH requeued AS (
         UPDATE outbox_event SET parked_at = NULL, next_attempt_at = NULL, attempts = 0
          WHERE parked_at IS NOT NULL AND published_at IS NULL AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))
         RETURNING id)
       SELECT count(*)::int AS count FROM requeued`,
      [ids === 'all' ? null : ids],
    );
    return Number(result[0].count);
  }
}
