import { Channel, DecisionReason } from '../activation/activation.types';
import { ErrorCode } from '../common/gateway-error';
import { EVENT_TYPES, TOPICS } from '../kafka/topics';
import { cloudEvent, OutboxMessage } from '../outbox/cloud-event';

/** `data` of sa.absher.gateway.request-handled: no national ID, mobile or PAN. */
export interface RequestHandled {
  bankCode: string;
  channel: Channel;
  requestId: string | null;
  activationId: string | null;
  outcome: 'ACCEPTED' | 'REJECTED' | 'ERROR';
  reason: DecisionReason | null;
  errorCode: ErrorCode | null;
  latencyMs: number;
  subjectHash: string | null;
  handledAt: string;
  replayed: boolean;
}

export function requestHandledEvent(data: RequestHandled): OutboxMessage {
  return { topic: TOPICS.ops, key: data.bankCode, event: cloudEvent(EVENT_TYPES.requestHandled, data.bankCode, data, new Date(data.handledAt)) };
}
