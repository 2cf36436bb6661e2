import { Sql } from '../database/sql';
import { OutboxMessage } from './cloud-event';

/**
 * Appends events inside the caller's transaction, so they are stored if and
 * only if the state they describe is.
 */
export async function appendToOutbox(db: Sql, messages: readonly OutboxMessage[]): Promise<void> {
  if (messages.length === 0) return;
  const values: string[] = [];
  const params: string[] = [];
  messages.forEach((message, i) => {
    values.push(`($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`);
    params.push(message.topic, message.key, JSON.stringify(message.event));
  });
  await db.query(`INSERT INTO outbox_event (topic, message_key, payload) VALUES ${values.join(', ')}`, params);
}
