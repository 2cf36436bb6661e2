/**
 * A token bucket per bank: `perSecond` tokens a second, bursts up to one
 * second's worth. A refused request takes nothing, so a bank that keeps
 * retrying is served again as soon as the bucket refills. In memory: the
 * shared budget below uses it only while the store cannot be reached.
 */
export class TokenBucket {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();

  constructor(private readonly clock: () => number = () => performance.now()) {}

  tryTake(bankCode: string, perSecond: number): boolean {
    const now = this.clock();
    const bucket = this.buckets.get(bankCode) ?? { tokens: perSecond, updatedAt: now };
    const tokens = Math.min(perSecond, bucket.tokens + ((now - bucket.updatedAt) / 1000) * perSecond);
    // A refusal leaves the bucket as it was: refilling from one elapsed span, not a sum of tiny ones,
    // keeps floating-point error from adding up while a bank retries in a tight loop.
    if (tokens < 1) return false;
    this.buckets.set(bankCode, { tokens: tokens - 1, updatedAt: now });
    return true;
  }
}

/** The deployment-wide budget of each bank, from which instances lease tokens in blocks (RateBudgetRepository in the store). */
export interface RateBudget {
  /** Takes up to `wanted` whole tokens from the bank's budget; says how many, and what was there before. */
  lease(bankCode: string, perSecond: number, wanted: number): Promise<{ granted: number; available: number }>;
}

/** Leased tokens not spent within this are dropped, so an instance never sits on budget it does not use. */
const LEASE_TTL_MS = 1000;
/** A lease asks for this share of a second's budget (at least one token): about 20 leases a second per busy bank, whatever the instance count. */
const BLOCK_FRACTION = 0.05;
/** A request waits for at most this many leases (each one statement) before it is refused. */
const MAX_LEASE_ROUNDS = 8;
/** After the store failed to answer a lease, the local fallback is used this long before asking again. */
const FALLBACK_MS = 1000;

interface LocalLease {
  tokens: number;
  expiresAt: number;
  /** The budget was found empty: refuse without asking until about a block has refilled. */
  emptyUntil: number;
  fallbackUntil: number;
  waiting: number;
  leasing: Promise<void> | null;
}

/**
 * A bank's `rateLimitPerSecond` for the whole deployment, however many
 * instances serve it: each instance spends tokens leased from the shared
 * budget in small blocks, so the store is asked about twenty times a second
 * per busy bank, not once per request. Leased tokens expire after a second,
 * so a dead instance takes at most one block with it. Signed JSON and ISO
 * 8583 spend the same budget, because the registry gives the rate to the
 * bank. A refused request takes nothing.
 *
 * When the store cannot answer, each instance falls back to its share of
 * the rate (rate / live instances) in memory, and asks again a second later.
 */
export class RateLimiter {
  private readonly leases = new Map<string, LocalLease>();
  private readonly fallback: TokenBucket;

  constructor(
    private readonly budget: RateBudget,
    private readonly liveInstances: () => number,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.fallback = new TokenBucket(clock);
  }

  async tryTake(bankCode: string, perSecond: number): Promise<boolean> {
    const lease = this.leaseOf(bankCode);
    // Refused only when the shared budget was found empty: requests that queued behind a slow lease and
    // found its block spent ask again, so a busy instance is not held below the rate by its own queue.
    for (let round = 0; round < MAX_LEASE_ROUNDS; round++) {
      const now = this.clock();
      if (lease.tokens >= 1 && now < lease.expiresAt) {
        lease.tokens--;
        return true;
      }
      if (now < lease.fallbackUntil) return this.fallback.tryTake(bankCode, perSecond / Math.max(1, this.liveInstances()));
      if (now < lease.emptyUntil) return false;
      lease.waiting++;
      lease.leasing ??= this.renew(bankCode, perSecond, lease).finally(() => (lease.leasing = null));
      try {
        await lease.leasing;
      } finally {
        lease.waiting--;
      }
    }
    return false;
  }

  private leaseOf(bankCode: string): LocalLease {
    let lease = this.leases.get(bankCode);
    if (!lease) {
      lease = { tokens: 0, expiresAt: 0, emptyUntil: 0, fallbackUntil: 0, waiting: 0, leasing: null };
      this.leases.set(bankCode, lease);
    }
    return lease;
  }

  private async renew(bankCode: string, perSecond: number, lease: LocalLease): Promise<void> {
    // One turn of the event loop first, so requests arriving together are counted in one lease.
    await new Promise((resolve) => setImmediate(resolve));
    const block = Math.max(1, Math.ceil(perSecond * BLOCK_FRACTION));
    const wanted = Math.min(Math.ceil(perSecond), Math.max(block, lease.waiting));
    try {
      const { granted, available } = await this.budget.lease(bankCode, perSecond, wanted);
      const now = this.clock();
      lease.tokens = (now < lease.expiresAt ? lease.tokens : 0) + granted;
      lease.expiresAt = now + LEASE_TTL_MS;
      // Found short: the budget holds `available - granted` (under one token, or under what was wanted);
      // wait until a block has refilled rather than asking on every request.
      if (granted < wanted) lease.emptyUntil = now + (Math.max(0, block - (available - granted)) / perSecond) * 1000;
    } catch {
      lease.fallbackUntil = this.clock() + FALLBACK_MS;
    }
  }
}
