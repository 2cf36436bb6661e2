import { EVENT_TYPES } from '../../kafka/topics';
import { LatencyPercentiles, LatencySample } from '../latency-sample';

/**
 * What the live operations page shows: request-handled events from the ops
 * topic folded into 5-second buckets per bank and channel over the last 15
 * minutes. Pure and bounded: at most WINDOW_MS / BUCKET_MS buckets per
 * series, at most MAX_SERIES series, at most LATENCY_SAMPLES latencies per
 * bucket (reservoir sampled), whatever the traffic.
 */
export const BUCKET_MS = 5_000;
export const WINDOW_MS = 15 * 60_000;
const LATENCY_SAMPLES = 256;
/** Bank codes come from the registry (plus UNKNOWN), so this is never reached honestly; it bounds memory if it were. */
const MAX_SERIES = 500;

export const VIEW_OUTCOMES = ['ACCEPTED', 'REJECTED', 'ERROR'] as const;
export type ViewOutcome = (typeof VIEW_OUTCOMES)[number];

/** The fields of a request-handled event (contracts/schemas/events) the view reads. */
export interface HandledRequest {
  bankCode: string;
  channel: string;
  outcome: ViewOutcome;
  reason: string | null;
  errorCode: string | null;
  latencyMs: number;
  handledAt: number;
}

/** One bucket as the page receives it. */
export interface BucketView {
  start: number;
  total: number;
  outcomes: Record<ViewOutcome, number>;
  /** Rejection reasons and error codes, counted. */
  causes: Record<string, number>;
  latencyMs: LatencyPercentiles;
}

export interface SeriesView {
  bankCode: string;
  channel: string;
  buckets: BucketView[];
}

interface Bucket {
  start: number;
  total: number;
  outcomes: Record<ViewOutcome, number>;
  causes: Record<string, number>;
  latencies: LatencySample;
  /** Computed on demand, dropped when the bucket changes. */
  view: BucketView | null;
}

interface Series {
  bankCode: string;
  channel: string;
  buckets: Map<number, Bucket>;
}

export class OpsView {
  private readonly series = new Map<string, Series>();
  /** Buckets changed since the last takeChanges(), by series key. */
  private changed = new Map<string, Set<number>>();
  private lastEventAt: number | null = null;
  private ignored = 0;

  constructor(private readonly clock: () => number = Date.now) {}

  /** Reads one consumed event value; anything that is not a usable request-handled event is skipped. */
  addEventValue(value: Buffer | null): boolean {
    const handled = parseRequestHandled(value);
    if (!handled) {
      this.ignored++;
      return false;
    }
    return this.add(handled);
  }

  add(handled: HandledRequest): boolean {
    const now = this.clock();
    // Bucketed by when the request was handled, so events delivered late (after a Kafka outage) land where they belong.
    const start = Math.floor(handled.handledAt / BUCKET_MS) * BUCKET_MS;
    if (start < now - WINDOW_MS || start > now + BUCKET_MS) return false;
    const key = `${handled.bankCode}|${handled.channel}`;
    let series = this.series.get(key);
    if (!series) {
      if (this.series.size >= MAX_SERIES) return false;
      series = { bankCode: handled.bankCode, channel: handled.channel, buckets: new Map() };
      this.series.set(key, series);
    }
    let bucket = series.buckets.get(start);
    if (!bucket) {
      bucket = { start, total: 0, outcomes: { ACCEPTED: 0, REJECTED: 0, ERROR: 0 }, causes: {}, latencies: new LatencySample(LATENCY_SAMPLES), view: null };
      series.buckets.set(start, bucket);
    }
    bucket.total++;
    bucket.outcomes[handled.outcome]++;
    const cause = handled.outcome === 'ERROR' ? handled.errorCode : handled.reason;
    if (cause) bucket.causes[cause] = (bucket.causes[cause] ?? 0) + 1;
    bucket.latencies.add(handled.latencyMs);
    bucket.view = null;
    let changed = this.changed.get(key);
    if (!changed) this.changed.set(key, (changed = new Set()));
    changed.add(start);
    this.lastEventAt = Math.max(this.lastEventAt ?? 0, handled.handledAt);
    return true;
  }

  /** Everything in the window: what a page gets when it connects. */
  snapshot(): { serverTime: number; bucketMs: number; windowMs: number; lastEventAt: number | null; ignored: number; series: SeriesView[] } {
    this.expire();
    return { ...this.header(), series: [...this.series.values()].map((s) => this.render(s, [...s.buckets.keys()])) };
  }

  /** Only the buckets changed since the previous call: what connected pages get every second. */
  takeChanges(): { serverTime: number; bucketMs: number; windowMs: number; lastEventAt: number | null; ignored: number; series: SeriesView[] } {
    this.expire();
    const changed = this.changed;
    this.changed = new Map();
    const series: SeriesView[] = [];
    for (const [key, starts] of changed) {
      const s = this.series.get(key);
      if (s) series.push(this.render(s, [...starts].filter((start) => s.buckets.has(start))));
    }
    return { ...this.header(), series };
  }

  private header() {
    return { serverTime: this.clock(), bucketMs: BUCKET_MS, windowMs: WINDOW_MS, lastEventAt: this.lastEventAt, ignored: this.ignored };
  }

  private render(series: Series, starts: number[]): SeriesView {
    const buckets = starts.sort((a, b) => a - b).map((start) => bucketView(series.buckets.get(start)!));
    return { bankCode: series.bankCode, channel: series.channel, buckets };
  }

  private expire(): void {
    const oldest = this.clock() - WINDOW_MS;
    for (const [key, series] of this.series) {
      for (const start of series.buckets.keys()) if (start < oldest) series.buckets.delete(start);
      if (series.buckets.size === 0) this.series.delete(key);
    }
  }
}

function bucketView(bucket: Bucket): BucketView {
  if (!bucket.view) {
    bucket.view = {
      start: bucket.start,
      total: bucket.total,
      outcomes: { ...bucket.outcomes },
      causes: { ...bucket.causes },
      latencyMs: bucket.latencies.percentiles(),
    };
  }
  return bucket.view;
}

const CODE = /^[A-Z0-9_]{1,32}$/;

/** A request-handled CloudEvent's data, or null. Summaries and anything malformed are not request-handled. */
export function parseRequestHandled(value: Buffer | null): HandledRequest | null {
  if (!value || value.length === 0) return null;
  let event: { type?: unknown; data?: Record<string, unknown> };
  try {
    event = JSON.parse(value.toString('utf8'));
  } catch {
    return null;
  }
  if (event?.type !== EVENT_TYPES.requestHandled || typeof event.data !== 'object' || event.data === null) return null;
  const d = event.data;
  const handledAt = typeof d.handledAt === 'string' ? Date.parse(d.handledAt) : NaN;
  if (typeof d.bankCode !== 'string' || !CODE.test(d.bankCode)) return null;
  if (typeof d.channel !== 'string' || !CODE.test(d.channel)) return null;
  if (!VIEW_OUTCOMES.includes(d.outcome as ViewOutcome)) return null;
  if (typeof d.latencyMs !== 'number' || !Number.isFinite(d.latencyMs) || d.latencyMs < 0) return null;
  if (!Number.isFinite(handledAt)) return null;
  const code = (v: unknown) => (typeof v === 'string' && CODE.test(v) ? v : null);
  return { bankCode: d.bankCode, channel: d.channel, outcome: d.outcome as ViewOutcome, reason: code(d.reason), errorCode: code(d.errorCode), latencyMs: d.latencyMs, handledAt };
}
