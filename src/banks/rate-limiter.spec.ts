import { RateLimiter } from './rate-limiter';

/** The token bucket on a clock the test moves: no real time passes. */
describe('RateLimiter', () => {
  let now: number;
  let limiter: RateLimiter;
  const takes = (bank: string, perSecond: number, count: number) => Array.from({ length: count }, () => limiter.tryTake(bank, perSecond));

  beforeEach(() => {
    now = 1_000;
    limiter = new RateLimiter(() => now);
  });

  it('allows a burst of one second worth, then refuses', () => {
    expect(takes('TSTR', 3, 5)).toEqual([true, true, true, false, false]);
  });

  it('refills at the rate, in fractions of a token', () => {
    takes('TSTR', 2, 2);
    now += 250; // half a token
    expect(limiter.tryTake('TSTR', 2)).toBe(false);
    now += 250; // the other half
    expect(limiter.tryTake('TSTR', 2)).toBe(true);
    expect(limiter.tryTake('TSTR', 2)).toBe(false);
  });

  it('never holds more than one second worth, however long the bank was idle', () => {
    takes('TSTR', 2, 2);
    now += 60_000;
    expect(takes('TSTR', 2, 3)).toEqual([true, true, false]);
  });

  it('a refused request takes nothing: a bank retrying all the time is still served as the bucket refills', () => {
    takes('TSTR', 1, 1);
    for (let i = 0; i < 9; i++) {
      now += 100;
      expect(limiter.tryTake('TSTR', 1)).toBe(false);
    }
    now += 100;
    expect(limiter.tryTake('TSTR', 1)).toBe(true);
  });

  it('keeps one bucket per bank: one bank at its limit does not hold up another', () => {
    expect(takes('TSTR', 1, 2)).toEqual([true, false]);
    expect(takes('TSTA', 1000, 1000).every(Boolean)).toBe(true);
    expect(limiter.tryTake('TSTR', 1)).toBe(false);
  });

  it('follows a changed limit from a reloaded registry: a lowered one caps what was saved up', () => {
    takes('TSTR', 100, 1);
    expect(takes('TSTR', 2, 3)).toEqual([true, true, false]);
  });
});
