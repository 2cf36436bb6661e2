import { Decision, RegistrationStatus } from './activation.types';

export interface DecisionFacts {
  channelAllowed: boolean;
  /** The registration of the requested national ID, if any. */
  registration: { mobile: string; status: RegistrationStatus } | null;
  /** The E.164 mobile the bank holds. */
  mobile: string;
  /** Whether a registration of another national ID, not CLOSED, holds that mobile. */
  mobileHeldByAnother: boolean;
}

/** Spec section 2: the first row that applies decides. */
export function decide(facts: DecisionFacts): Decision {
  if (!facts.channelAllowed) return { outcome: 'REJECTED', reason: 'CHANNEL_NOT_ALLOWED' };
  const registration = facts.registration;
  if (!registration || registration.status === 'CLOSED') return { outcome: 'REJECTED', reason: 'NOT_REGISTERED' };
  if (registration.status === 'SUSPENDED') return { outcome: 'REJECTED', reason: 'ACCOUNT_SUSPENDED' };
  if (registration.status === 'ACTIVE') return { outcome: 'REJECTED', reason: 'ALREADY_ACTIVE' };
  if (registration.mobile !== facts.mobile) return { outcome: 'REJECTED', reason: 'MOBILE_MISMATCH' };
  if (facts.mobileHeldByAnother) return { outcome: 'REJECTED', reason: 'MOBILE_IN_USE' };
  return { outcome: 'ACCEPTED', reason: null };
}
