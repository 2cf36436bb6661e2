import fc from 'fast-check';
import { REGISTRATION_STATUSES } from './activation.types';
import { decide, DecisionFacts } from './decision';

const mobile = '+966512345678';
const pending = { mobile, status: 'PENDING_ACTIVATION' as const };
const base: DecisionFacts = { channelAllowed: true, registration: pending, mobile, mobileHeldByAnother: false };

describe('decide (spec section 2)', () => {
  it.each<[string, Partial<DecisionFacts>, string | null]>([
    ['channel not enabled', { channelAllowed: false }, 'CHANNEL_NOT_ALLOWED'],
    ['no registration', { registration: null }, 'NOT_REGISTERED'],
    ['closed', { registration: { mobile, status: 'CLOSED' } }, 'NOT_REGISTERED'],
    ['suspended', { registration: { mobile, status: 'SUSPENDED' } }, 'ACCOUNT_SUSPENDED'],
    ['active', { registration: { mobile, status: 'ACTIVE' } }, 'ALREADY_ACTIVE'],
    ['other mobile', { registration: { mobile: '+966500000000', status: 'PENDING_ACTIVATION' } }, 'MOBILE_MISMATCH'],
    ['mobile held by another', { mobileHeldByAnother: true }, 'MOBILE_IN_USE'],
    ['pending, same mobile, held by no one else', {}, null],
  ])('%s', (_name, change, reason) => {
    expect(decide({ ...base, ...change })).toEqual({ outcome: reason ? 'REJECTED' : 'ACCEPTED', reason });
  });

  it('the first applicable row wins, in the order of the table', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.option(fc.constantFrom(...REGISTRATION_STATUSES)), fc.boolean(), fc.boolean(), (allowed, status, sameMobile, held) => {
        const facts: DecisionFacts = {
          channelAllowed: allowed,
          registration: status ? { mobile: sameMobile ? mobile : '+966500000000', status } : null,
          mobile,
          mobileHeldByAnother: held,
        };
        const { reason } = decide(facts);
        if (!allowed) return reason === 'CHANNEL_NOT_ALLOWED';
        if (!status || status === 'CLOSED') return reason === 'NOT_REGISTERED';
        if (status === 'SUSPENDED') return reason === 'ACCOUNT_SUSPENDED';
        if (status === 'ACTIVE') return reason === 'ALREADY_ACTIVE';
        if (!sameMobile) return reason === 'MOBILE_MISMATCH';
        return reason === (held ? 'MOBILE_IN_USE' : null);
      }),
      { seed: 7, numRuns: 300 },
    );
  });
});
