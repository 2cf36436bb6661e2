/**
 * A token bucket per bank: `rateLimitPerSecond` tokens a second, bursts up to
 * one second's worth. In memory, per gateway instance. One bucket per bank
 * whatever the channel: signed JSON and ISO 8583 activations spend the same
 * budget, because the registry gives the rate to the bank. A refused request
 * takes nothing, so a bank that keeps retrying is served again as soon as
 * the bucket refills.
 */
export class RateLimiter {
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
