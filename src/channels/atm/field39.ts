import { DecisionReason } from '../../activation/activation.types';
import { ErrorCode } from '../../common/gateway-error';

/**
 * Spec 4.2, field 39. `91` means nothing was decided, try later: the store is
 * unavailable, or the bank is above its `rateLimitPerSecond` (the spec's
 * nearest code; the ATM channel has no 429).
 */
export type ResponseCode = '00' | '25' | 'N1' | 'N2' | 'N3' | 'N4' | '58' | '30' | '12' | '63' | '91' | '96';

/**
 * Why the ATM channel answers without a decision: the gateway's error codes,
 * and the channel's own for what only ISO 8583 can get wrong.
 * UNSUPPORTED_MESSAGE: an MTI no handler takes, an 0800 code the contract
 * does not list, a processing code other than the activation's.
 */
export type AtmErrorCode = ErrorCode | 'UNSUPPORTED_MESSAGE';

/**
 * Every error and every decision reason, and its field 39: a new error code
 * or reason does not compile until it has one. The HTTP-only codes cannot
 * arise on this channel; should one, it is something unexpected, 96.
 */
const FIELD_39: Record<AtmErrorCode | DecisionReason, ResponseCode> = {
  NOT_REGISTERED: '25',
  MOBILE_MISMATCH: 'N1',
  ALREADY_ACTIVE: 'N2',
  MOBILE_IN_USE: 'N3',
  ACCOUNT_SUSPENDED: 'N4',
  CHANNEL_NOT_ALLOWED: '58',
  UNKNOWN_BANK: '58',
  MALFORMED_REQUEST: '30',
  INVALID_NATIONAL_ID: '30',
  INVALID_MOBILE: '30',
  UNSUPPORTED_MESSAGE: '12',
  SIGNATURE_MISSING: '63',
  SIGNATURE_INVALID: '63',
  RATE_LIMITED: '91',
  UNAVAILABLE: '91',
  INTERNAL_ERROR: '96',
  INVALID_CHANNEL: '96',
  UNKNOWN_KEY: '96',
  CERTIFICATE_NOT_TRUSTED: '96',
  CERTIFICATE_EXPIRED: '96',
  STALE_REQUEST: '96',
  NOT_FOUND: '96',
  REQUEST_ID_REUSED: '96',
};

/**
 * The channel's own codes as the ops stream records them: its errorCode is
 * the contract's enum (contracts/schemas/common/definitions.schema.json),
 * which has no word for them; an unsupported processing code was, and stays,
 * a MALFORMED_REQUEST there.
 */
const REPORTED_AS: Record<Exclude<AtmErrorCode, ErrorCode>, ErrorCode> = {
  UNSUPPORTED_MESSAGE: 'MALFORMED_REQUEST',
};

/** Field 39 of a decision (null reason: accepted) or of an answer without one. */
export function responseCodeOf(cause: AtmErrorCode | DecisionReason | null): ResponseCode {
  return cause === null ? '00' : FIELD_39[cause];
}

/** The errorCode of the ops stream's request-handled event for an ATM error. */
export function reportedErrorCode(code: AtmErrorCode): ErrorCode {
  return code in REPORTED_AS ? REPORTED_AS[code as keyof typeof REPORTED_AS] : (code as ErrorCode);
}
