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

/** Every latency on the ops stream: milliseconds to 0.01. */
export function latencyMs(elapsedMs: number): number {
  return Math.round(elapsedMs * 100) / 100;
}

/** The record of a request answered with a decision, new or replayed (when it was handled is the recorder's, or the decision's). */
export function decisionHandled(d: {
  bankCode: string;
  channel: Channel;
  requestId: string;
  activationId: string;
  outcome: 'ACCEPTED' | 'REJECTED';
  reason: DecisionReason | null;
  subjectHash: string;
  elapsedMs: number;
  replayed: boolean;
}): Omit<RequestHandled, 'handledAt'> {
  return {
    bankCode: d.bankCode,
    channel: d.channel,
    requestId: d.requestId,
    activationId: d.activationId,
    outcome: d.outcome,
    reason: d.outcome === 'ACCEPTED' ? null : d.reason,
    errorCode: null,
    latencyMs: latencyMs(d.elapsedMs),
    subjectHash: d.subjectHash,
    replayed: d.replayed,
  };
}

/** The record of a request answered without a decision: refused, malformed, limited, or the store away. */
export function errorHandled(e: { bankCode: string; channel: Channel; requestId: string | null; errorCode: ErrorCode; elapsedMs: number }): Omit<RequestHandled, 'handledAt'> {
  return {
    bankCode: e.bankCode,
    channel: e.channel,
    requestId: e.requestId,
    activationId: null,
    outcome: 'ERROR',
    reason: null,
    errorCode: e.errorCode,
    latencyMs: latencyMs(e.elapsedMs),
    subjectHash: null,
    replayed: false,
  };
}

export function requestHandledEvent(data: RequestHandled): OutboxMessage {
  return { topic: TOPICS.ops, key: data.bankCode, event: cloudEvent(EVENT_TYPES.requestHandled, data.bankCode, data, new Date(data.handledAt)) };
}
