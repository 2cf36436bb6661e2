import { DataSource } from 'typeorm';
import { redactPersonalData } from '../../libs/identity';

export interface ParkedEvent {
  id: string;
  topic: string;
  /** The message key (a national ID on the activations topic): masked for display. */
  key: string;
  type: string | null;
  attempts: number;
  reason: string | null;
  createdAt: string;
  parkedAt: string;
  /** Rows of the same key waiting behind this one. */
  waitingBehind: number;
}

/** The operator's view of the outbox (npm run cli -- outbox ...): rows Kafka kept refusing, and re-queuing them. */
export class OutboxAdmin {
  constructor(private readonly dataSource: DataSource) {}

  async parked(limit = 100): Promise<ParkedEvent[]> {
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
      key: redactPersonalData(String(row.message_key)), // a national ID on the activations topic
      type: (row.type as string | null) ?? null,
      attempts: Number(row.attempts),
      reason: (row.last_error as string | null) ?? null,
      createdAt: new Date(row.created_at as string).toISOString(),
      parkedAt: new Date(row.parked_at as string).toISOString(),
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

  /** Parked rows (these ids, or all) are published again at the relay's next round, with a fresh count of attempts. */
  async requeue(ids: string[] | 'all'): Promise<number> {
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
