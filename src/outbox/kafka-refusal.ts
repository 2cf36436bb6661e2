/**
 * Kafka errors that are about what was sent rather than about Kafka being
 * reachable: retrying the same record soon will not help, and other records
 * must not wait for it. Everything else (connections, timeouts, leaders
 * moving, replicas missing) is an outage: the whole batch is retried and no
 * row is blamed, so an outage never parks anything.
 */
const TOPIC_REFUSALS = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'INVALID_TOPIC_EXCEPTION', 'TOPIC_AUTHORIZATION_FAILED']);
const RECORD_REFUSALS = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP', 'POLICY_VIOLATION']);

export interface KafkaRefusal {
  /** `topic`: the topic as a whole is refused; `record`: something about the records. */
  scope: 'topic' | 'record';
  /** Kafka's error type and message, to store with the row (never the record itself). */
  reason: string;
}

/** The refusal inside a kafkajs error (retries and aggregates are unwrapped), or null for an outage. */
export function refusalOf(error: unknown, depth = 0): KafkaRefusal | null {
  if (!error || typeof error !== 'object' || depth > 5) return null;
  const candidate = error as { type?: unknown; message?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown };
  if (typeof candidate.type === 'string') {
    const scope = TOPIC_REFUSALS.has(candidate.type) ? 'topic' : RECORD_REFUSALS.has(candidate.type) ? 'record' : null;
    if (scope) return { scope, reason: `${candidate.type}: ${String(candidate.message ?? '')}` };
  }
  const inner = [candidate.cause, candidate.originalError, ...(Array.isArray(candidate.errors) ? candidate.errors : [])];
  for (const nested of inner) {
    const found = refusalOf(nested, depth + 1);
    if (found) return found;
  }
  return null;
}
