import { randomUUID } from 'node:crypto';

/** CloudEvents 1.0, structured mode (spec section 5). */
export interface CloudEvent<T = Record<string, unknown>> {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  time: string;
  subject: string;
  datacontenttype: 'application/json';
  data: T;
}

export const EVENT_SOURCE = 'urn:absher:gateway';

/**
 * The CloudEvents Kafka protocol binding, structured mode (section 3.3): the
 * record value is the JSON event and its `content-type` header says so, which
 * is how a CloudEvents SDK consumer tells an event from any other record.
 */
export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8';

/**
 * The headers of every record the gateway publishes. One object, its value
 * already encoded, shared by all records: kafkajs only reads it.
 */
export const STRUCTURED_MODE_HEADERS: Readonly<Record<'content-type', Buffer>> = Object.freeze({ 'content-type': Buffer.from(STRUCTURED_CONTENT_TYPE, 'utf8') });

/** What those headers add to each record (name, value and their two lengths), for the relay's bound on a batch's bytes. */
export const STRUCTURED_MODE_HEADER_BYTES = 2 + 'content-type'.length + STRUCTURED_CONTENT_TYPE.length;

export function cloudEvent<T>(type: string, subject: string, data: T, time = new Date()): CloudEvent<T> {
  return { specversion: '1.0', id: randomUUID(), source: EVENT_SOURCE, type, time: time.toISOString(), subject, datacontenttype: 'application/json', data };
}

/** One message for the outbox: where it goes, its key, and the event. */
export interface OutboxMessage {
  topic: string;
  key: string;
  event: CloudEvent<unknown>;
}
