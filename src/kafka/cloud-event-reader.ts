import type { IHeaders } from 'kafkajs';

/**
 * Reading consumed CloudEvents as the CloudEvents Kafka protocol binding
 * (v1.0.2) lays them out, in either content mode:
 * - structured: the value is the JSON event; `content-type` is
 *   `application/cloudevents+json`, or absent (what producers that predate
 *   the binding send, accepted as before);
 * - binary: the value is the event's `data`, its attributes are the `ce_*`
 *   headers, and `content-type` is the data's media type (JSON here).
 * Every refusal says precisely what is wrong, for the dead-letter topic.
 */

/** A CloudEvent of one expected type, read; or why it could not be. */
export type ReadEvent = { ok: true; data: Record<string, unknown>; id: string } | { ok: false; reason: string };

/** A record's value as a structured-mode event; or why the record is not a CloudEvent the gateway reads. */
export type StructuredValue = { ok: true; value: Buffer | null } | { ok: false; reason: string };

type Refusal = { ok: false; reason: string };
type EventObject = { ok: true; event: Record<string, unknown> } | Refusal;

const utf8 = new TextDecoder('utf-8', { fatal: true });

const CONTENT_TYPE = 'content-type';
const ATTRIBUTE_HEADER_PREFIX = 'ce_';
/** CloudEvents attribute names: lower-case letters and digits (spec 3.1.1). */
const ATTRIBUTE_NAME = /^[a-z0-9]+$/;
/** Attributes the binary mode must carry (CloudEvents 1.0, REQUIRED attributes). */
const REQUIRED_ATTRIBUTES = ['specversion', 'id', 'source', 'type'] as const;

/**
 * Reads a consumed record as a CloudEvent of `expectedType`, in structured
 * mode, or in binary mode when its `headers` say so. Without headers it is
 * read as structured mode.
 */
export function readCloudEvent(value: Buffer | null, expectedType: string, headers?: IHeaders): ReadEvent {
  const mode = modeOf(headers);
  if (typeof mode !== 'string') return mode;
  const read = mode === 'binary' ? binaryEvent(value, headers!) : structuredEvent(value);
  return read.ok ? checkEvent(read.event, expectedType) : read;
}

/**
 * The record's value as a structured-mode event, for readers of structured
 * values: a structured record's own value, untouched (no JSON work); a
 * binary one's attributes and data put together as one JSON event. A
 * binary record that is not a well-formed event is refused here.
 */
export function structuredValue(value: Buffer | null, headers: IHeaders | undefined): StructuredValue {
  const mode = modeOf(headers);
  if (typeof mode !== 'string') return mode;
  if (mode === 'structured') return { ok: true, value };
  const read = binaryEvent(value, headers!);
  return read.ok ? { ok: true, value: Buffer.from(JSON.stringify(read.event), 'utf8') } : read;
}

/**
 * Binding section 3.1: a `content-type` of the CloudEvents media type means
 * structured mode, anything else binary mode. A record with neither
 * `content-type` nor any `ce_` header is taken as structured mode.
 */
function modeOf(headers: IHeaders | undefined): 'structured' | 'binary' | Refusal {
  if (!headers) return 'structured';
  const contentType = header(headers, CONTENT_TYPE);
  if (!contentType.ok) return contentType;
  if (contentType.value === undefined) return Object.keys(headers).some((name) => name.startsWith(ATTRIBUTE_HEADER_PREFIX)) ? 'binary' : 'structured';
  const mediaType = mediaTypeOf(contentType.value);
  if (mediaType === 'application/cloudevents+json') return 'structured';
  if (mediaType.startsWith('application/cloudevents-batch')) return { ok: false, reason: `batched CloudEvents (content-type ${quoted(contentType.value)}) are not accepted: one event per record` };
  if (mediaType.startsWith('application/cloudevents')) return { ok: false, reason: `unsupported CloudEvents format (content-type ${quoted(contentType.value)}): only JSON is read` };
  return 'binary';
}

function structuredEvent(value: Buffer | null): EventObject {
  if (!value || value.length === 0) return { ok: false, reason: 'empty message value' };
  let event: unknown;
  try {
    event = JSON.parse(utf8.decode(value));
  } catch {
    return { ok: false, reason: 'value is not UTF-8 JSON' };
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return { ok: false, reason: 'value is not a JSON object' };
  return { ok: true, event: event as Record<string, unknown> };
}

/** Binding section 3.2: attributes from the `ce_` headers, `datacontenttype` from `content-type`, `data` from the value. */
function binaryEvent(value: Buffer | null, headers: IHeaders): EventObject {
  const event: Record<string, unknown> = {};
  for (const name of Object.keys(headers)) {
    if (!name.startsWith(ATTRIBUTE_HEADER_PREFIX)) continue;
    const attribute = name.slice(ATTRIBUTE_HEADER_PREFIX.length);
    // Not an attribute name (nor `data`, which is the value): not the binding's, left alone.
    if (!ATTRIBUTE_NAME.test(attribute) || attribute === 'data') continue;
    const read = header(headers, name);
    if (!read.ok) return read;
    if (read.value !== undefined) event[attribute] = read.value;
  }
  for (const attribute of REQUIRED_ATTRIBUTES) {
    if (event[attribute] === undefined || event[attribute] === '') return { ok: false, reason: `binary-mode CloudEvent without the header ${ATTRIBUTE_HEADER_PREFIX}${attribute}` };
  }
  const contentType = header(headers, CONTENT_TYPE);
  if (!contentType.ok) return contentType;
  if (contentType.value !== undefined) {
    const mediaType = mediaTypeOf(contentType.value);
    if (mediaType !== 'application/json' && !/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+\+json$/.test(mediaType)) {
      return { ok: false, reason: `binary-mode data is not JSON (content-type ${quoted(contentType.value)})` };
    }
    event.datacontenttype = contentType.value;
  }
  if (!value || value.length === 0) return { ok: false, reason: 'binary-mode CloudEvent without data (empty message value)' };
  try {
    event.data = JSON.parse(utf8.decode(value));
  } catch {
    return { ok: false, reason: 'binary-mode data is not UTF-8 JSON' };
  }
  return { ok: true, event };
}

function checkEvent(e: Record<string, unknown>, expectedType: string): ReadEvent {
  if (e.specversion !== '1.0') return { ok: false, reason: 'not a CloudEvents 1.0 event (specversion)' };
  if (typeof e.id !== 'string' || e.id === '') return { ok: false, reason: 'CloudEvent id is missing' };
  if (e.type !== expectedType) return { ok: false, reason: `unexpected event type ${JSON.stringify(e.type)}` };
  if (typeof e.data !== 'object' || e.data === null || Array.isArray(e.data)) return { ok: false, reason: 'data is missing' };
  return { ok: true, data: e.data as Record<string, unknown>, id: e.id };
}

/** One header's text: absent (or null) is undefined; a repeated header or one that is not UTF-8 is refused. */
function header(headers: IHeaders, name: string): { ok: true; value: string | undefined } | Refusal {
  const raw = headers[name];
  if (raw === undefined || raw === null) return { ok: true, value: undefined };
  if (Array.isArray(raw)) return { ok: false, reason: `header ${name} appears ${raw.length} times` };
  if (typeof raw === 'string') return { ok: true, value: raw };
  try {
    return { ok: true, value: utf8.decode(raw) };
  } catch {
    return { ok: false, reason: `header ${name} is not UTF-8` };
  }
}

/** The media type without its parameters, lower case: `Application/JSON; charset=utf-8` is `application/json`. */
function mediaTypeOf(contentType: string): string {
  return contentType.split(';', 1)[0].trim().toLowerCase();
}

/** A header value in a reason: quoted, and short (it comes from the producer). */
function quoted(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}
