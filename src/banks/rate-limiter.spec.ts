import { RateBudget, RateLimiter, TokenBucket } from './rate-limiter';

/** The token bucket on a clock the test moves: no real time passes. */
describe('TokenBucket', () => {
  let now: number;
  let limiter: TokenBucket;
  const takes = (bank: string, perSecond: number, count: number) => Array.from({ length: count }, () => limiter.tryTake(bank, perSecond));

  beforeEach(() => {
    now = 1_000;
    limiter = new TokenBucket(() => now);
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

/** A budget shared by several limiters (instances), refilled on the same test clock: what RateBudgetRepository does in SQL. */
class SharedBudget implements RateBudget {
  leases = 0;
  failing = false;
  private tokens = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly clock: () => number) {}
  async lease(bankCode: string, perSecond: number, wanted: number) {
    if (this.failing) throw new Error('store unavailable');
    this.leases++;
    const now = this.clock();
    const row = this.tokens.get(bankCode) ?? { tokens: perSecond, at: now };
    const available = Math.min(perSecond, row.tokens + ((now - row.at) / 1000) * perSecond);
    const granted = Math.min(wanted, Math.floor(available));
    this.tokens.set(bankCode, { tokens: available - granted, at: now });
    return { granted, available };
  }
}

describe('RateLimiter: one budget for every instance', () => {
  let now: number;
  let budget: SharedBudget;
  let instances: RateLimiter[];

  beforeEach(() => {
    now = 1_000;
    budget = new SharedBudget(() => now);
    instances = [0, 1, 2].map(() => new RateLimiter(budget, () => 3, () => now));
  });

  it('three instances offered three times the rate for ten seconds accept about the rate, not three times it', async () => {
    let accepted = 0;
    for (let tick = 0; tick < 3000; tick++) {
      now += 10 / 3; // 300 requests a second, spread over the instances in turn
      if (await instances[tick % 3].tryTake('TSTR', 100)) accepted++;
    }
    // The first second's burst plus ten seconds of refill.
    expect(accepted).toBeGreaterThanOrEqual(950);
    expect(accepted).toBeLessThanOrEqual(1100);
  });

  it('asks the shared budget for blocks, not once per request', async () => {
    for (let i = 0; i < 100; i++) await instances[0].tryTake('TSTA', 1000);
    expect(budget.leases).toBeLessThanOrEqual(3);
  });

  it('all the traffic on one instance gets the whole rate: no fixed share per instance', async () => {
    let accepted = 0;
    for (let tick = 0; tick < 1000; tick++) {
      now += 5;
      if (await instances[0].tryTake('TSTR', 100)) accepted++;
    }
    expect(accepted).toBeGreaterThanOrEqual(550); // 100 burst + 5 s x 100/s, less at most a block
  });

  it('an empty budget is not asked again on every refused request', async () => {
    for (let i = 0; i < 100; i++) await instances[0].tryTake('TSTR', 10);
    const leases = budget.leases;
    for (let i = 0; i < 100; i++) expect(await instances[0].tryTake('TSTR', 10)).toBe(false);
    expect(budget.leases).toBe(leases);
  });

  it('falls back to its share in memory while the store is away', async () => {
    budget.failing = true;
    const answers = [];
    for (let i = 0; i < 60; i++) answers.push(await instances[0].tryTake('TSTR', 90));
    expect(answers.filter(Boolean).length).toBe(30); // 90 / 3 instances: a burst of 30
  });

  it('requests that queue behind a slow lease are served while the budget holds tokens: refused only when it is empty', async () => {
    const shared = new SharedBudget(() => performance.now());
    const slow: RateBudget = { lease: async (...args) => (await new Promise((resolve) => setTimeout(resolve, 20)), shared.lease(...args)) };
    const limiter = new RateLimiter(slow, () => 3);
    const answers = await Promise.all(Array.from({ length: 150 }, () => limiter.tryTake('TSTR', 100)));
    // The budget starts with a second's worth: 100 of the 150 at once, not a block or two.
    expect(answers.filter(Boolean).length).toBeGreaterThanOrEqual(95);
    expect(answers.filter(Boolean).length).toBeLessThanOrEqual(105);
  });
});
