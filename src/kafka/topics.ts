/** Spec section 5. */
export const TOPICS = {
  activations: 'absher.activations.v1',
  ops: 'absher.gateway.ops.v1',
  registrations: 'absher.registrations.v1',
  activationResults: 'absher.activation-results.v1',
  deadLetters: 'absher.gateway.dlq.v1',
} as const;

export const ALL_TOPICS: readonly string[] = Object.values(TOPICS);

export type TopicName = (typeof TOPICS)[keyof typeof TOPICS];

/** How a topic is created on a real cluster: by `npm run kafka:topics` and the compose job, which runs it. */
export interface TopicSettings {
  partitions: number;
  replicationFactor: number;
  /** Topic-level configuration. */
  config: { 'min.insync.replicas': string; 'cleanup.policy': 'delete' | 'compact'; 'retention.ms'?: string };
}

/** Seven days: how long a topic that carries national IDs and mobiles keeps them, enough for the identity core to recover from an outage. */
export const PERSONAL_DATA_RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * Three replicas, two of them in sync before acks=-1 is answered: one broker
 * can be lost or restarted without losing an acknowledged event or stopping
 * the producers.
 */
const REPLICATED = { replicationFactor: 3, minInSyncReplicas: 2 } as const;

function topic(partitions: number, cleanupPolicy: 'delete' | 'compact', retentionMs?: number): TopicSettings {
  const config: TopicSettings['config'] = { 'min.insync.replicas': String(REPLICATED.minInSyncReplicas), 'cleanup.policy': cleanupPolicy };
  if (retentionMs !== undefined) config['retention.ms'] = String(retentionMs);
  return { partitions, replicationFactor: REPLICATED.replicationFactor, config };
}

/**
 * The one table of topic settings. The spec names the topics but gives no
 * partition counts; these are ours. Keyed by national ID, a topic has tens
 * of millions of keys, so 12 partitions let the identity core and the
 * gateway spread over up to 12 consumers each; keyed by bank code (about a
 * dozen banks), the ops stream could not spread over many more than 6; dead
 * letters are rare. Partitions are fixed for good: adding some later moves
 * keys to other partitions and breaks the order per key. Registrations are
 * the identity core's current state per national ID, so only the latest per
 * key needs keeping (compacted); the rest are event streams (deleted after
 * retention). The decisions and the dead letters carry national IDs and
 * mobiles in clear, so their retention is explicit (7 days), not the
 * cluster's default.
 */
export const TOPIC_SETTINGS: Readonly<Record<TopicName, TopicSettings>> = {
  [TOPICS.activations]: topic(12, 'delete', PERSONAL_DATA_RETENTION_MS),
  [TOPICS.ops]: topic(6, 'delete'),
  [TOPICS.registrations]: topic(12, 'compact'),
  [TOPICS.activationResults]: topic(12, 'delete'),
  [TOPICS.deadLetters]: topic(3, 'delete', PERSONAL_DATA_RETENTION_MS),
};

export const EVENT_TYPES = {
  activationAccepted: 'sa.absher.activation.accepted',
  activationRejected: 'sa.absher.activation.rejected',
  reversalAdvised: 'sa.absher.activation.reversal-advised',
  requestHandled: 'sa.absher.gateway.request-handled',
  summary: 'sa.absher.gateway.summary',
  registrationUpdated: 'sa.absher.registration.updated',
  activationCompleted: 'sa.absher.activation.completed',
  deadLettered: 'sa.absher.gateway.dead-lettered',
  resultNotApplied: 'sa.absher.gateway.result-not-applied',
} as const;
