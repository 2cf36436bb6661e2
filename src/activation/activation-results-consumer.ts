import { EachBatchPayload, Kafka } from 'kafkajs';
import { Sql, Transactions } from '../database/sql';
import { structuredValue } from '../kafka/cloud-event-reader';
import { ResilientConsumer } from '../kafka/resilient-consumer';
import { EVENT_TYPES, TOPICS } from '../kafka/topics';
import { JsonLogger } from '../logging/json-logger';
import { cloudEvent, OutboxMessage } from '../outbox/cloud-event';
import { deadLetter } from '../outbox/dead-letter';
import { appendToOutbox } from '../outbox/outbox.repository';
import { ActivationResult, parseActivationResult } from './activation-result';
import { ActivationRepository } from './activation.repository';

export const ACTIVATION_RESULTS_GROUP = 'absher-bank-gateway.activation-results';

/**
 * Results from the identity core (spec 5.3). An accepted activation moves to
 * ACTIVATED or FAILED; a repeated result changes nothing; a result for an
 * activation that was rejected, reversed or already completed otherwise is
 * recorded and reported on the ops stream, not applied; an invalid or unknown
 * one goes to the DLQ. Each batch is stored in one transaction, then offsets
 * are committed.
 */
export class ActivationResultsConsumer extends ResilientConsumer {
  constructor(
    kafka: Kafka,
    private readonly transactions: Transactions,
    private readonly activations: ActivationRepository,
    private readonly onPublished: () => void,
    maxWaitTimeInMs: number,
    logger: JsonLogger,
    onLag?: (topic: string, partition: number, lag: number) => void,
  ) {
    super(kafka, ACTIVATION_RESULTS_GROUP, TOPICS.activationResults, maxWaitTimeInMs, logger, 'activation-results-consumer', onLag);
  }

  protected async handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (!isRunning() || isStale() || batch.messages.length === 0) return;
    const outcomes = { applied: 0, repeated: 0, notApplied: 0, dead: 0 };
    await this.transactions.run(async (db) => {
      const outbox: OutboxMessage[] = [];
      for (const [index, message] of batch.messages.entries()) {
        // A long batch must not cost the group membership (10 s session): keep heart-beating.
        if (index % 100 === 99) await heartbeat();
        // Structured or binary mode (CloudEvents Kafka binding): the result is read from the structured form.
        const record = structuredValue(message.value, message.headers);
        const parsed = record.ok ? parseActivationResult(record.value) : record;
        if (!parsed.ok) {
          outbox.push(deadLetter(batch.topic, batch.partition, message, parsed.reason));
          outcomes.dead++;
          continue;
        }
        const outcome = await this.apply(db, parsed.result, outbox);
        if (outcome === 'UNKNOWN') {
          outbox.push(deadLetter(batch.topic, batch.partition, message, `no activation ${parsed.result.activationId} is known`));
          outcomes.dead++;
        } else outcomes[outcome]++;
      }
      await appendToOutbox(db, outbox);
    });
    const last = batch.messages[batch.messages.length - 1].offset;
    resolveOffset(last);
    await this.commit(batch.topic, batch.partition, last);
    await heartbeat();
    if (outcomes.dead + outcomes.notApplied) this.onPublished();
    this.log.emit(outcomes.dead ? 'warn' : 'debug', 'activation results processed', { partition: batch.partition, ...outcomes });
  }

  private async apply(db: Sql, result: ActivationResult, outbox: OutboxMessage[]): Promise<'applied' | 'repeated' | 'notApplied' | 'UNKNOWN'> {
    const activation = await this.activations.lockForResult(db, result.activationId);
    if (!activation) return 'UNKNOWN';
    if (activation.status === 'ACCEPTED') {
      await this.activations.complete(db, result);
      await this.activations.recordResult(db, result, true, null);
      // The bank's request id, so one search follows a request from HTTP or ISO 8583 through Kafka and back.
      if (this.log.enabled('debug')) this.log.emit('debug', 'activation result applied', { requestId: activation.requestId, activationId: result.activationId, bank: activation.bankCode, result: result.result });
      return 'applied';
    }
    if (activation.status === result.result) return 'repeated'; // at least once from the identity core: the same result again
    const why = activation.status === 'REJECTED' ? 'ACTIVATION_REJECTED' : activation.status === 'REVERSED' ? 'ACTIVATION_REVERSED' : 'ALREADY_COMPLETED';
    if (!(await this.activations.recordResult(db, result, false, why))) return 'repeated';
    outbox.push({
      topic: TOPICS.ops,
      key: activation.bankCode,
      event: cloudEvent(EVENT_TYPES.resultNotApplied, activation.bankCode, {
        activationId: result.activationId,
        bankCode: activation.bankCode,
        channel: activation.channel,
        activationStatus: activation.status,
        result: result.result,
        why,
        completedAt: result.completedAt.toISOString(),
        receivedAt: new Date().toISOString(),
      }),
    });
    this.log.emit('warn', 'activation result not applied', { requestId: activation.requestId, activationId: result.activationId, bank: activation.bankCode, why });
    return 'notApplied';
  }
}
