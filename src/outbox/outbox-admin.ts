import { redactPersonalData } from '../../libs/identity';
import { OutboxRepository } from './outbox.repository';

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
