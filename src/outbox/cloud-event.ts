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

export function cloudEvent<T>(type: string, subject: string, data: T, time = new Date()): CloudEvent<T> {
  return { specversion: '1.0', id: randomUUID(), source: EVENT_SOURCE, type, time: time.toISOString(), subject, datacontenttype: 'application/json', data };
}

/** One message for the outbox: where it goes, its key, and the event. */
export interface OutboxMessage {
  topic: string;
  key: string;
  event: CloudEvent<unknown>;
}
