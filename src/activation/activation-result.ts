import { readCloudEvent } from '../kafka/cloud-event-reader';
import { EVENT_TYPES } from '../kafka/topics';

/** `sa.absher.activation.completed` (spec 5.3). */
export interface ActivationResult {
  activationId: string;
  result: 'ACTIVATED' | 'FAILED';
  reason: string | null;
  completedAt: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function parseActivationResult(value: Buffer | null): { ok: true; result: ActivationResult } | { ok: false; reason: string } {
  const event = readCloudEvent(value, EVENT_TYPES.activationCompleted);
  if (!event.ok) return event;
  const data = event.data;
  if (typeof data.activationId !== 'string' || !UUID.test(data.activationId)) return { ok: false, reason: 'data.activationId must be a UUID' };
  if (data.result !== 'ACTIVATED' && data.result !== 'FAILED') return { ok: false, reason: 'data.result must be ACTIVATED or FAILED' };
  if (data.reason !== null && (typeof data.reason !== 'string' || data.reason.length > 200)) return { ok: false, reason: 'data.reason must be null or a string of at most 200 characters' };
  const completedAt = typeof data.completedAt === 'string' ? new Date(data.completedAt) : new Date(NaN);
  if (Number.isNaN(completedAt.getTime())) return { ok: false, reason: 'data.completedAt must be a date-time' };
  return { ok: true, result: { activationId: data.activationId.toLowerCase(), result: data.result, reason: (data.reason as string | null) ?? null, completedAt } };
}
