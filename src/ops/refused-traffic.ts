import { redactPersonalData } from '../../libs/identity';
import { JsonLogger } from '../logging/json-logger';
import { RefusedTrafficStore } from './refused-traffic.repository';

export type RefusedChannel = 'ATM' | 'HTTP';

/** What is kept of a refused ISO 8583 message: no PAN, no field 48. */
export interface AtmRefusalSample {
  mti: string;
  acquirerId: string | null;
  stan: string | null;
  rrn: string | null;
  terminalId: string | null;
}

/** What is kept of a refused HTTP request: the request id only when it is well formed. */
export interface HttpRefusalSample {
  method: string;
  requestId: string | null;
}

export type Refusal = {
  /** ATM: the acquirer id of field 32 (or `-`); HTTP: the client's address. */
  source: string;
  /** The bank the traffic named, when the gateway knows it. */
  bankCode: string | null;
  /** ATM: field 39 (`63`, `58`, `30`); HTTP: the problem code. */
  code: string;
  /** Why, in a few words; kept to 200 characters, personal data masked. */
  reason: string;
} & ({ channel: 'ATM'; sample: AtmRefusalSample } | { channel: 'HTTP'; sample: HttpRefusalSample });

export interface RefusedTrafficSettings {
  /** Sample rows written per minute by this instance, all sources together. */
  samplesPerMinute: number;
  /** Rows older than this are deleted (counts and samples). */
  retentionDays: number;
}

/** Sample rows per minute from one source: a single noisy source cannot fill the sample. */
const SAMPLES_PER_SOURCE_PER_MINUTE = 5;
/** Distinct (minute, channel, source, bank, code) counters held between flushes; the rest are counted under OTHER_SOURCES. */
const MAX_COUNTERS = 1000;
export const OTHER_SOURCES = '(other sources)';
const FLUSH_INTERVAL_MS = 5_000;
export const LOG_INTERVAL_MS = 10_000;
/** Sources logged line by line in one log interval; the rest only in its summary. */
const SOURCES_LOGGED_PER_INTERVAL = 5;
const PRUNE_INTERVAL_MS = 3_600_000;

interface Counter {
  minute: number;
  channel: RefusedChannel;
  source: string;
  bankCode: string;
  code: string;
  refused: number;
}

interface SourceInInterval {
  channel: RefusedChannel;
  source: string;
  bankCode: string | null;
  refused: number;
}

/**
 * Refused traffic: messages and requests that proved nothing (a wrong or
 * missing MAC, a failed signature check, an unknown acquirer, an unreadable
 * frame). Each costs a few map updates in memory, never a write or a log
 * line of its own:
 * - counted per minute, channel, source, bank and code, and written as one
 *   upsert per counter every 5 s (`refused_traffic_minute`);
 * - a bounded sample with reasons: at most `samplesPerMinute` rows a minute
 *   per instance, 5 of them per source (`atm_refused_message`,
 *   `http_refused_request`);
 * - logged as the first refusal of each of the first 5 sources in a 10 s
 *   interval, then one summary line for the interval: at most 6 lines per
 *   10 s, whatever the flood;
 * - pruned after `retentionDays`.
 * A store that is down delays the counts (kept, bounded) and loses samples.
 */
export class RefusedTraffic {
  private counters = new Map<string, Counter>();
  private atmSamples: (AtmRefusalSample & { bankCode: string | null; code: string; reason: string; at: Date })[] = [];
  private httpSamples: (HttpRefusalSample & { source: string; bankCode: string | null; code: string; reason: string; at: Date })[] = [];
  private sampleMinute = 0;
  private samplesThisMinute = 0;
  private readonly samplesBySource = new Map<string, number>();
  private interval = new Map<string, SourceInInterval>();
  private intervalRefused = 0;
  private intervalLines = 0;
  private intervalClosed = { ATM: 0, HTTP: 0 };
  private flushTimer: NodeJS.Timeout | null = null;
  private logTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private storeProblemLogged = false;
  private readonly log: JsonLogger;

  constructor(
    private readonly store: RefusedTrafficStore,
    private readonly settings: RefusedTrafficSettings,
    logger: JsonLogger,
    private readonly clock: () => number = Date.now,
  ) {
    this.log = logger.child('refused-traffic');
  }

  start(): void {
    this.flushTimer ??= setInterval(() => void this.flush(), FLUSH_INTERVAL_MS).unref();
    this.logTimer ??= setInterval(() => this.summarise(), LOG_INTERVAL_MS).unref();
    // First a minute after start (not every instance pruning at once on a rolling restart), then hourly.
    this.pruneTimer ??= setTimeout(() => {
      void this.prune();
      this.pruneTimer = setInterval(() => void this.prune(), PRUNE_INTERVAL_MS).unref();
    }, 60_000).unref();
  }

  async stop(): Promise<void> {
    for (const timer of [this.flushTimer, this.logTimer]) if (timer) clearInterval(timer);
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    this.flushTimer = this.logTimer = this.pruneTimer = null;
    this.summarise();
    await this.flush();
  }

  /** One refused message or request: counted, maybe sampled, maybe logged. Synchronous and cheap by design. */
  refuse(refusal: Refusal): void {
    const now = this.clock();
    const minute = Math.floor(now / 60_000) * 60_000;
    this.count(minute, refusal.channel, refusal.source, refusal.bankCode ?? '', refusal.code, 1);
    this.sample(minute, now, refusal);
    this.intervalRefused++;
    const sourceKey = `${refusal.channel}|${refusal.source}|${refusal.bankCode ?? ''}`;
    const seen = this.interval.get(sourceKey);
    if (seen) {
      seen.refused++;
      return;
    }
    if (this.interval.size < MAX_COUNTERS) this.interval.set(sourceKey, { channel: refusal.channel, source: refusal.source, bankCode: refusal.bankCode, refused: 1 });
    if (this.intervalLines >= SOURCES_LOGGED_PER_INTERVAL) return;
    this.intervalLines++;
    this.log.emit('warn', refusal.channel === 'ATM' ? 'ISO 8583 message refused' : 'HTTP request refused', {
      channel: refusal.channel,
      source: refusal.source,
      bank: refusal.bankCode,
      code: refusal.code,
      reason: refusal.reason,
      ...refusal.sample,
      note: `further refusals from this source are summarised every ${LOG_INTERVAL_MS / 1000} s`,
    });
  }

  /** A connection closed for its refusals (ISO8583_MAX_MAC_FAILURES, HTTP_MAX_AUTH_FAILURES): counted in the summary. */
  connectionClosed(channel: RefusedChannel): void {
    this.intervalClosed[channel]++;
  }

  private count(minute: number, channel: RefusedChannel, source: string, bankCode: string, code: string, refused: number): void {
    let key = `${minute}|${channel}|${source}|${bankCode}|${code}`;
    let counter = this.counters.get(key);
    if (!counter && this.counters.size >= MAX_COUNTERS) {
      [source, bankCode] = [OTHER_SOURCES, ''];
      key = `${minute}|${channel}|${source}|${bankCode}|${code}`;
      counter = this.counters.get(key);
    }
    if (!counter) {
      counter = { minute, channel, source: source.slice(0, 64), bankCode, code, refused: 0 };
      this.counters.set(key, counter);
    }
    counter.refused += refused;
  }

  private sample(minute: number, now: number, refusal: Refusal): void {
    if (minute !== this.sampleMinute) {
      this.sampleMinute = minute;
      this.samplesThisMinute = 0;
      this.samplesBySource.clear();
    }
    if (this.samplesThisMinute >= this.settings.samplesPerMinute) return;
    const sourceKey = `${refusal.channel}|${refusal.source}`;
    const fromSource = this.samplesBySource.get(sourceKey) ?? 0;
    if (fromSource >= SAMPLES_PER_SOURCE_PER_MINUTE) return;
    this.samplesBySource.set(sourceKey, fromSource + 1);
    this.samplesThisMinute++;
    const common = { bankCode: refusal.bankCode, code: refusal.code, reason: redactPersonalData(refusal.reason.slice(0, 200)), at: new Date(now) };
    if (refusal.channel === 'ATM') this.atmSamples.push({ ...refusal.sample, ...common });
    else this.httpSamples.push({ ...refusal.sample, source: refusal.source, ...common });
  }

  /** One line for the interval when there was more than the lines already written said. */
  private summarise(): void {
    const closed = this.intervalClosed.ATM + this.intervalClosed.HTTP;
    const logged = Math.min(this.interval.size, this.intervalLines);
    if (this.intervalRefused > logged || closed > 0) {
      const top = [...this.interval.values()].sort((a, b) => b.refused - a.refused).slice(0, 5);
      this.log.emit('warn', `refused traffic in the last ${LOG_INTERVAL_MS / 1000} s`, {
        refused: this.intervalRefused,
        sources: this.interval.size,
        top: top.map((s) => ({ channel: s.channel, source: s.source, bank: s.bankCode, refused: s.refused })),
        connectionsClosed: this.intervalClosed,
      });
    }
    this.interval = new Map();
    this.intervalRefused = 0;
    this.intervalLines = 0;
    this.intervalClosed = { ATM: 0, HTTP: 0 };
  }

  /** Counts and samples to the store; one flush at a time. */
  flush(): Promise<void> {
    const run = (this.flushing ?? Promise.resolve()).then(() => this.write());
    const guarded: Promise<void> = run.finally(() => {
      if (this.flushing === guarded) this.flushing = null;
    });
    this.flushing = guarded;
    return guarded;
  }

  private async write(): Promise<void> {
    const counters = [...this.counters.values()];
    const atm = this.atmSamples;
    const http = this.httpSamples;
    if (counters.length === 0 && atm.length === 0 && http.length === 0) return;
    this.counters = new Map();
    this.atmSamples = [];
    this.httpSamples = [];
    try {
      await this.store.addCounts(counters);
      await this.store.addAtmSamples(atm);
      await this.store.addHttpSamples(http);
      this.storeProblemLogged = false;
    } catch (error) {
      // Counts wait for the next flush (merged, still bounded); samples are only samples.
      for (const c of counters) this.count(c.minute, c.channel, c.source, c.bankCode, c.code, c.refused);
      if (!this.storeProblemLogged) this.log.emit('error', 'could not record refused traffic; counts kept for the next try, samples dropped', { error });
      this.storeProblemLogged = true;
    }
  }

  private async prune(): Promise<void> {
    const days = this.settings.retentionDays;
    try {
      await this.store.pruneOlderThan(days);
    } catch (error) {
      this.log.emit('warn', 'could not prune refused traffic; trying again in an hour', { error });
    }
  }
}

/**
 * The failures of one connection within a sliding window: `record()` says when the connection has
 * reached its limit (ISO8583_MAX_MAC_FAILURES, HTTP_MAX_AUTH_FAILURES). Keeps at most `limit` times.
 */
export class FailureWindow {
  private readonly times: number[] = [];

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** One more failure now; true when `limit` of them fall within the window. */
  record(now = Date.now()): boolean {
    this.times.push(now);
    if (this.times.length > this.limit) this.times.shift();
    return this.times.length >= this.limit && now - this.times[0] <= this.windowMs;
  }
}
