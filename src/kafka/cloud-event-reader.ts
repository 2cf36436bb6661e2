/** Reads a consumed CloudEvent (structured mode) of one expected type; says precisely what is wrong otherwise. */
export type ReadEvent = { ok: true; data: Record<string, unknown>; id: string } | { ok: false; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function readCloudEvent(value: Buffer | null, expectedType: string): ReadEvent {
  if (!value || value.length === 0) return { ok: false, reason: 'empty message value' };
  let event: unknown;
  try {
    event = JSON.parse(utf8.decode(value));
  } catch {
    return { ok: false, reason: 'value is not UTF-8 JSON' };
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return { ok: false, reason: 'value is not a JSON object' };
  const e = event as Record<string, unknown>;
  if (e.specversion !== '1.0') return { ok: false, reason: 'not a CloudEvents 1.0 event (specversion)' };
  if (typeof e.id !== 'string' || e.id === '') return { ok: false, reason: 'CloudEvent id is missing' };
  if (e.type !== expectedType) return { ok: false, reason: `unexpected event type ${JSON.stringify(e.type)}` };
  if (typeof e.data !== 'object' || e.data === null || Array.isArray(e.data)) return { ok: false, reason: 'data is missing' };
  return { ok: true, data: e.data as Record<string, unknown>, id: e.id };
}
