import { Channel, DecisionReason } from '../activation/activation.types';
import { ErrorCode } from '../common/gateway-error';
import { EVENT_TYPES, TOPICS } from '../kafka/topics';
import { JsonLogger } from '../logging/json-logger';
import { cloudEvent, OutboxMessage } from '../outbox/cloud-event';
import { GatewayMetrics } from './gateway-metrics';
import { LatencySample } from './latency-sample';
import { RequestHandled, requestHandledEvent } from './request-handled';

const OUTCOMES = ['ACCEPTED', 'REJECTED', 'ERROR'] as const;
const MAX_LATENCY_SAMPLES = 5000;
/** Events waiting for the next flush; past this (a store that hangs during a flood) new ones are dropped and counted. */
const MAX_BUFFERED = 50_000;
/** Rows per insert: three parameters each, well under PostgreSQL's 65,535. */
const INSERT_CHUNK = 5000;

interface Window {
  bankCode: string;
  channel: Channel;
  start: number;
  total: number;
  outcomes: Record<(typeof OUTCOMES)[number], number>;
  reasons: Partial<Record<DecisionReason, number>>;
  errorCodes: Partial<Record<ErrorCode, number>>;
  latencies: LatencySample;
}

/**
 * The ops stream (spec 5.1): one `request-handled` per handled
 * request on every channel, and one `summary` per bank, channel and minute.
 *
 * A decision's request-handled event is written in the decision's own
 * transaction (ActivateAccount); errors and replays are buffered here and
 * written to the outbox in one insert every 200 ms, so a flood of forged
 * requests costs one write per flush, not one per request. Summaries are
 * written when their minute closes. Ops events are not personal data and a
 * crash loses at most the unflushed buffer and the current minute.
 */
export class OpsRecorder {
  private buffer: OutboxMessage[] = [];
  private readonly windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private dropped = 0;
  private readonly log: JsonLogger;

  constructor(
    /** Stores events in the outbox, outside any other transaction (the outbox module's writer). */
    private readonly store: (messages: readonly OutboxMessage[]) => Promise<void>,
    private readonly onWritten: () => void,
    private readonly metrics: GatewayMetrics,
    logger: JsonLogger,
    private readonly clock: () => number = Date.now,
  ) {
    this.log = logger.child('ops');
  }

  start(): void {
    this.timer ??= setInterval(() => {
      if (!this.flushing) void this.flush(false);
    }, 200);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flushing;
    await this.flush(true);
  }

  /** A decision: its event is already stored with it; only counted here. */
  observeDecision(handled: RequestHandled): void {
    this.count(handled);
  }

  /** An error or a replay: counted, and its event written at the next flush. */
  record(handled: Omit<RequestHandled, 'handledAt'>): void {
    const event: RequestHandled = { ...handled, handledAt: new Date(this.clock()).toISOString() };
    this.count(event);
    if (this.buffer.length >= MAX_BUFFERED) {
      if (this.dropped++ % 1000 === 0) this.log.emit('warn', 'ops buffer full; request-handled events dropped', { dropped: this.dropped });
      return;
    }
    this.buffer.push(requestHandledEvent(event));
  }

  private count(handled: RequestHandled): void {
    this.metrics.handled(handled);
    const minute = Math.floor(this.clock() / 60_000) * 60_000;
    const key = `${handled.bankCode}|${handled.channel}|${minute}`;
    let window = this.windows.get(key);
    if (!window) {
      window = { bankCode: handled.bankCode, channel: handled.channel, start: minute, total: 0, outcomes: { ACCEPTED: 0, REJECTED: 0, ERROR: 0 }, reasons: {}, errorCodes: {}, latencies: new LatencySample(MAX_LATENCY_SAMPLES) };
      this.windows.set(key, window);
    }
    window.total++;
    window.outcomes[handled.outcome]++;
    if (handled.reason) window.reasons[handled.reason] = (window.reasons[handled.reason] ?? 0) + 1;
    if (handled.errorCode) window.errorCodes[handled.errorCode] = (window.errorCodes[handled.errorCode] ?? 0) + 1;
    window.latencies.add(handled.latencyMs);
  }

  /** Writes buffered events and the summaries of closed minutes (all of them when `all`); one flush at a time. */
  flush(all: boolean): Promise<void> {
    const run = (this.flushing ?? Promise.resolve()).then(() => this.write(all));
    this.flushing = run.finally(() => {
      if (this.flushing === guarded) this.flushing = null;
    });
    const guarded = this.flushing;
    return this.flushing;
  }

  private async write(all: boolean): Promise<void> {
    const now = this.clock();
    const closed = [...this.windows.entries()].filter(([, w]) => all || w.start + 60_000 <= now);
    const messages = [...this.buffer, ...closed.map(([, w]) => summaryEvent(w))];
    if (messages.length === 0) return;
    this.buffer = [];
    for (const [key] of closed) this.windows.delete(key);
    try {
      for (let i = 0; i < messages.length; i += INSERT_CHUNK) await this.store(messages.slice(i, i + INSERT_CHUNK));
      this.onWritten();
    } catch (error) {
      this.log.emit('warn', 'ops events could not be stored; dropped', { count: messages.length, error: (error as Error).message });
    }
  }
}

function summaryEvent(window: Window): OutboxMessage {
  return {
    topic: TOPICS.ops,
    key: window.bankCode,
    event: cloudEvent(EVENT_TYPES.summary, window.bankCode, {
      bankCode: window.bankCode,
      channel: window.channel,
      windowStart: new Date(window.start).toISOString(),
      windowEnd: new Date(window.start + 60_000).toISOString(),
      total: window.total,
      outcomes: window.outcomes,
      reasons: window.reasons,
      errorCodes: window.errorCodes,
      latencyMs: window.latencies.percentiles(),
    }),
  };
}
