/** Spec section 5. */
export const TOPICS = {
  activations: 'absher.activations.v1',
  ops: 'absher.gateway.ops.v1',
  registrations: 'absher.registrations.v1',
  activationResults: 'absher.activation-results.v1',
  deadLetters: 'absher.gateway.dlq.v1',
} as const;

export const ALL_TOPICS: readonly string[] = Object.values(TOPICS);

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
