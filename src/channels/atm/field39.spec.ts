import { DECISION_REASONS } from '../../activation/activation.types';
import { ERROR_CODES } from '../../common/gateway-error';
import { reportedErrorCode, responseCodeOf } from './field39';

describe('field 39 (spec 4.2)', () => {
  it('gives every decision reason the code of the spec table, 00 to an acceptance', () => {
    expect(Object.fromEntries(DECISION_REASONS.map((reason) => [reason, responseCodeOf(reason)]))).toEqual({
      NOT_REGISTERED: '25',
      MOBILE_MISMATCH: 'N1',
      ALREADY_ACTIVE: 'N2',
      MOBILE_IN_USE: 'N3',
      ACCOUNT_SUSPENDED: 'N4',
      CHANNEL_NOT_ALLOWED: '58',
    });
    expect(responseCodeOf(null)).toBe('00');
  });

  it('answers the errors the ATM channel raises with the codes of the spec table', () => {
    expect(responseCodeOf('UNKNOWN_BANK')).toBe('58');
    expect(responseCodeOf('MALFORMED_REQUEST')).toBe('30');
    expect(responseCodeOf('INVALID_NATIONAL_ID')).toBe('30');
    expect(responseCodeOf('INVALID_MOBILE')).toBe('30');
    expect(responseCodeOf('UNSUPPORTED_MESSAGE')).toBe('12');
    expect(responseCodeOf('SIGNATURE_INVALID')).toBe('63');
    expect(responseCodeOf('RATE_LIMITED')).toBe('91');
    expect(responseCodeOf('UNAVAILABLE')).toBe('91');
    expect(responseCodeOf('INTERNAL_ERROR')).toBe('96');
  });

  it('reports the channel’s own codes on the ops stream with an error code of the contract', () => {
    expect(reportedErrorCode('UNSUPPORTED_MESSAGE')).toBe('MALFORMED_REQUEST');
    for (const code of ERROR_CODES) expect(reportedErrorCode(code)).toBe(code);
  });
});
