/** Latency percentiles in ms, as the ops stream and the live page report them. */
export interface LatencyPercentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/**
 * Latencies of one window: a reservoir sample of at most `capacity`
 * values (memory stays bounded however busy the window) and the exact
 * maximum.
 */
export class LatencySample {
  private readonly values: number[] = [];
  private seen = 0;
  private max = 0;

  constructor(private readonly capacity: number) {}

  add(latencyMs: number): void {
    this.seen++;
    this.max = Math.max(this.max, latencyMs);
    if (this.values.length < this.capacity) this.values.push(latencyMs);
    else {
      const at = Math.floor(Math.random() * this.seen);
      if (at < this.capacity) this.values[at] = latencyMs;
    }
  }

  percentiles(): LatencyPercentiles {
    const sorted = [...this.values].sort((a, b) => a - b);
    const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0);
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: this.max };
  }
}
