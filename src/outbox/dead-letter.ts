import { createHash } from 'node:crypto';
import { KafkaMessage } from 'kafkajs';
import { EVENT_TYPES, TOPICS } from '../kafka/topics';
import { cloudEvent, OutboxMessage } from './cloud-event';

/** At most this much of an unusable message is kept: the DLQ must never be what blocks the outbox. */
export const DEAD_LETTER_PAYLOAD_LIMIT = 64 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Text when it is clean UTF-8 without control characters; otherwise `base64:` and the bytes. */
function printable(bytes: Buffer): { text: string; encoding: 'utf8' | 'base64' } {
  try {
    const text = utf8.decode(bytes);
    // eslint-disable-next-line no-control-regex
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) return { text, encoding: 'utf8' };
  } catch {
    // not UTF-8
  }
  return { text: bytes.toString('base64'), encoding: 'base64' };
}

/**
 * A consumed message that could not be used, for `absher.gateway.dlq.v1`,
 * with the reason. Its CloudEvent id is derived from topic, partition and
 * offset, so a batch processed twice (crash, rebalance) dead-letters the same
 * event id twice and consumers de-duplicate it.
 */
export function deadLetter(sourceTopic: string, partition: number, message: KafkaMessage, reason: string): OutboxMessage {
  const value = message.value ?? Buffer.alloc(0);
  const truncated = value.length > DEAD_LETTER_PAYLOAD_LIMIT;
  const payload = printable(truncated ? value.subarray(0, DEAD_LETTER_PAYLOAD_LIMIT) : value);
  const key = message.key ? printable(message.key.subarray(0, 256)) : null;
  const keyText = key ? (key.encoding === 'base64' ? `base64:${key.text}` : key.text) : null;
  const event = cloudEvent(EVENT_TYPES.deadLettered, `${sourceTopic}/${partition}/${message.offset}`, {
    sourceTopic,
    partition,
    offset: message.offset,
    key: keyText,
    reason,
    payload: payload.text,
    payloadEncoding: payload.encoding,
    payloadBytes: value.length,
    payloadSha256: createHash('sha256').update(value).digest('hex'),
    payloadTruncated: truncated,
    deadLetteredAt: new Date().toISOString(),
  });
  event.id = deterministicUuid(`${sourceTopic}/${partition}/${message.offset}`);
  return { topic: TOPICS.deadLetters, key: keyText ?? `${sourceTopic}/${partition}`, event };
}

/** A name-based UUID (version 5 layout, SHA-1 as RFC 9562 asks) in the gateway's own namespace. */
function deterministicUuid(name: string): string {
  const hash = createHash('sha1').update('urn:absher:gateway:dead-letter:').update(name).digest();
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
