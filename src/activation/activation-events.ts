import { EVENT_TYPES, TOPICS } from '../kafka/topics';
import { cloudEvent, OutboxMessage } from '../outbox/cloud-event';
import type { ReversedActivation } from './activation.repository';
import { ActivationRecord } from './activation.types';

/** What every event on the activations topic says of its activation (spec 5.1), keyed by national ID. */
function activationEvent(type: string, record: Omit<ActivationRecord, 'status' | 'reason'>, data: Record<string, unknown>, time?: Date): OutboxMessage {
  return {
    topic: TOPICS.activations,
    key: record.nationalId,
    event: cloudEvent(
      type,
      record.activationId,
      {
        activationId: record.activationId,
        requestId: record.requestId,
        bankCode: record.bankCode,
        channel: record.channel,
        nationalId: record.nationalId,
        mobile: record.mobile,
        ...data,
      },
      time,
    ),
  };
}

/** sa.absher.activation.accepted / rejected, with what the channel publishes of the request's origin. */
export function decisionEvent(record: ActivationRecord, published: Readonly<Record<string, string>> | undefined): OutboxMessage {
  return activationEvent(
    record.status === 'ACCEPTED' ? EVENT_TYPES.activationAccepted : EVENT_TYPES.activationRejected,
    record,
    { outcome: record.status, reason: record.reason, decidedAt: record.decidedAt.toISOString(), ...published },
    record.decidedAt,
  );
}

/** sa.absher.activation.reversal-advised: the identity core undoes an activation accepted at an ATM. */
export function reversalAdvisedEvent(row: ReversedActivation): OutboxMessage {
  return activationEvent(EVENT_TYPES.reversalAdvised, row, {
    outcome: 'ACCEPTED',
    reason: null,
    decidedAt: row.decidedAt.toISOString(),
    terminalId: row.terminalId,
    stan: row.stan,
    rrn: row.rrn,
    reversedAt: row.reversedAt.toISOString(),
  });
}
