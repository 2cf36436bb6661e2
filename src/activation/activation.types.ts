/** The words of spec sections 1 and 2. */
export const CHANNELS = ['ATM', 'INTERNET_BANKING', 'PHONE_BANKING'] as const;
export type Channel = (typeof CHANNELS)[number];

export const DECISION_REASONS = [
  'CHANNEL_NOT_ALLOWED',
  'NOT_REGISTERED',
  'ACCOUNT_SUSPENDED',
  'ALREADY_ACTIVE',
  'MOBILE_MISMATCH',
  'MOBILE_IN_USE',
] as const;
export type DecisionReason = (typeof DECISION_REASONS)[number];

export type Outcome = 'ACCEPTED' | 'REJECTED';

/** What GET shows: the decision, then what the identity core reported (5.3), or a reversal (4.4). */
export type ActivationStatus = Outcome | 'ACTIVATED' | 'FAILED' | 'REVERSED';

export const REGISTRATION_STATUSES = ['PENDING_ACTIVATION', 'ACTIVE', 'SUSPENDED', 'CLOSED'] as const;
export type RegistrationStatus = (typeof REGISTRATION_STATUSES)[number];

export interface Decision {
  outcome: Outcome;
  reason: DecisionReason | null;
}

/** A decision as the use case made it, and as the channels render it. */
export interface ActivationRecord {
  activationId: string;
  requestId: string;
  bankCode: string;
  channel: Channel;
  nationalId: string;
  mobile: string;
  status: ActivationStatus;
  reason: DecisionReason | null;
  decidedAt: Date;
}
