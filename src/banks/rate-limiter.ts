/**
 * A token bucket per bank: `rateLimitPerSecond` tokens a second, bursts up to
 * one second's worth. In memory, per gateway instance.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();

  constructor(private readonly clock: () => number = () => performance.now()) {}

  tryTake(bankCode: string, perSecond: number): boolean {
    const now = this.clock();
    const bucket = this.buckets.get(bankCode) ?? { tokens: perSecond, updatedAt: now };
    bucket.tokens = Math.min(perSecond, bucket.tokens + ((now - bucket.updatedAt) / 1000) * perSecond);
    bucket.updatedAt = now;
    this.buckets.set(bankCode, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
