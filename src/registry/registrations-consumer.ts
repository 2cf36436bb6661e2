import { EachBatchPayload, Kafka } from 'kafkajs';
import { structuredValue } from '../kafka/cloud-event-reader';
import { ResilientConsumer } from '../kafka/resilient-consumer';
import { Transactions } from '../database/sql';
import { JsonLogger } from '../logging/json-logger';
import { deadLetter } from '../outbox/dead-letter';
import { appendToOutbox } from '../outbox/outbox.repository';
import { OutboxMessage } from '../outbox/cloud-event';
import { TOPICS } from '../kafka/topics';
import { parseRegistrationUpdate, RegistrationUpdate } from './registration-update';
import { RegistrationReadModel } from './registration-read-model';

export const REGISTRATIONS_GROUP = 'absher-bank-gateway.registrations';

/**
 * Keeps the registration read model (spec 5.2). Each batch is stored in one
 * transaction (versioned upserts; invalid messages go to the outbox for the
 * DLQ in the same transaction) and only then are offsets committed: a crash
 * re-reads, never skips.
 */
export class RegistrationsConsumer extends ResilientConsumer {
  constructor(
    kafka: Kafka,
    private readonly transactions: Transactions,
    private readonly readModel: RegistrationReadModel,
    private readonly onDeadLetters: () => void,
    maxWaitTimeInMs: number,
    logger: JsonLogger,
    onLag?: (topic: string, partition: number, lag: number) => void,
  ) {
    super(kafka, REGISTRATIONS_GROUP, TOPICS.registrations, maxWaitTimeInMs, logger, 'registrations-consumer', onLag);
  }

  protected async handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (!isRunning() || isStale() || batch.messages.length === 0) return;
    const latest = new Map<string, RegistrationUpdate>();
    const dead: OutboxMessage[] = [];
    for (const message of batch.messages) {
      // Structured or binary mode (CloudEvents Kafka binding): the update is read from the structured form.
      const record = structuredValue(message.value, message.headers);
      const parsed = record.ok ? parseRegistrationUpdate(message.key, record.value) : record;
      if (parsed.ok) {
        const known = latest.get(parsed.update.nationalId);
        if (!known || known.version < parsed.update.version) latest.set(parsed.update.nationalId, parsed.update);
      } else {
        dead.push(deadLetter(batch.topic, batch.partition, message, parsed.reason));
      }
    }
    const stored = await this.store([...latest.values()], dead);
    const last = batch.messages[batch.messages.length - 1].offset;
    resolveOffset(last);
    await this.commit(batch.topic, batch.partition, last);
    await heartbeat();
    if (dead.length) {
      this.onDeadLetters();
      this.log.emit('warn', 'invalid registration messages sent to the dead-letter topic', { count: dead.length, partition: batch.partition });
    }
    this.log.emit('debug', 'registrations applied', { received: batch.messages.length, applied: stored, partition: batch.partition });
  }

  /** Returns how many rows changed; updates whose version is not above the stored one change nothing. */
  private store(updates: RegistrationUpdate[], dead: OutboxMessage[]): Promise<number> {
    return this.transactions.run(async (tx) => {
      const changed = await this.readModel.apply(tx, updates);
      await appendToOutbox(tx, dead);
      return changed;
    });
  }
}
