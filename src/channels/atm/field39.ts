import { DecisionReason } from '../../activation/activation.types';

/**
 * Spec 4.2, field 39. `91` means nothing was decided, try later: the store is
 * unavailable, or the bank is above its `rateLimitPerSecond` (the spec's
 * nearest code; the ATM channel has no 429).
 */
export type ResponseCode = '00' | '25' | 'N1' | 'N2' | 'N3' | 'N4' | '58' | '30' | '12' | '63' | '91' | '96';

export function responseCodeOf(reason: DecisionReason | null): ResponseCode {
  switch (reason) {
    case null:
      return '00';
    case 'NOT_REGISTERED':
      return '25';
    case 'MOBILE_MISMATCH':
      return 'N1';
    case 'ALREADY_ACTIVE':
      return 'N2';
    case 'MOBILE_IN_USE':
      return 'N3';
    case 'ACCOUNT_SUSPENDED':
      return 'N4';
    case 'CHANNEL_NOT_ALLOWED':
      return '58';
  }
}
