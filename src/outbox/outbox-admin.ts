import { redactPersonalData } from '../../libs/identity';
import { OutboxRepository, ParkedRow } from './outbox.repository';

/** A parked row as the operator sees it: its key masked (a national ID on the activations topic), times as ISO 8601. */
export type ParkedEvent = Omit<ParkedRow, 'createdAt' | 'parkedAt'> & { createdAt: string; parkedAt: string };

/** The operator's view of the outbox (npm run cli -- outbox ...): rows Kafka kept refusing, and re-queuing them. */
export class OutboxAdmin {
  constructor(private readonly outbox: OutboxRepository) {}

  async parked(limit = 100): Promise<ParkedEvent[]> {
    const rows = await this.outbox.parked(limit);
    return rows.map((row) => ({
      ...row,
      key: redactPersonalData(row.key), // a national ID on the activations topic
      createdAt: row.createdAt.toISOString(),
      parkedAt: row.parkedAt.toISOString(),
    }));
  }

  parkedCount(): Promise<number> {
    return this.outbox.parkedCount();
  }

  /** Parked rows (these ids, or all) are published again at the relay's next round, with a fresh count of attempts. */
  requeue(ids: string[] | 'all'): Promise<number> {
    return this.outbox.requeue(ids);
  }
}
