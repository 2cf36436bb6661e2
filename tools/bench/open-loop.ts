import { Agent, request } from 'node:http';
import { connect, Socket } from 'node:net';
import { frame, FrameDecoder, peekFields, retailMac } from '../../libs/iso8583';
import { atmRequestId } from '../../src/channels/atm/atm-exchange';
import { BenchBank, Customer } from './bench-environment';
import { count, isoTemplates, percentile, PreparedRequest, round, TRANSMITTED_AT } from './load';

/**
 * Open-loop load: requests go out on a fixed schedule (request k at
 * start + k / rate) whatever the answers, and each one's latency runs from its
 * *scheduled* time, not from when it actually left. A gateway that slows down
 * does not slow the generator down with it, and the queue that builds up (in
 * the generator, waiting for a connection, or in the gateway) is in the
 * latencies: no coordinated omission. The closed-loop steps (load.ts) answer
 * "how much with so many clients"; these answer "how fast at this rate".
 */

/** An open-loop step's figures; latencies in ms from each request's scheduled send time. */
export interface OpenLoopFigures {
  offeredPerSecond: number;
  /** Requests the schedule called for. */
  scheduled: number;
  /** Requests answered (error answers included): what the CPU per activation is divided by. */
  requests: number;
  /** Answers per second, from the first scheduled send to the last answer. */
  achievedPerSecond: number;
  seconds: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** Answers without a decision (HTTP 429 or 5xx; field 39 91 or 96) and requests lost with their connection. */
  errors: number;
  /** Unanswered `timeoutMs` after their scheduled time: abandoned, and counted in the latencies at that bound. */
  timeouts: number;
  /**
   * How far behind its schedule each request was handed to a socket, ms: the
   * generator's own lag and, over HTTP, the wait for a free connection.
   * Already in the latencies; shown so that a late generator is seen as such.
   */
  sentLateP99: number;
  sentLateMax: number;
  /** Connections opened (HTTP: as many as were needed, up to the cap) and the cap. */
  connections: number;
  maxConnections: number;
  /** HTTP status or field 39, counted. */
  answers: Record<string, number>;
  /** Signed JSON only: ACCEPTED / REJECTED:<reason> / ERROR:<code>, counted. */
  outcomes?: Record<string, number>;
}

/** Answers given later than this after their scheduled time are not waited for. */
export const OPEN_LOOP_TIMEOUT_MS = 10_000;

/** Samples kept of what each step measures, and what follows from them. */
class Tally {
  readonly latencies: number[] = [];
  readonly sentLate: number[] = [];
  readonly answers: Record<string, number> = {};
  errors = 0;
  timeouts = 0;
  lastAnswerAt = 0;

  answered(scheduledAt: number, key: string): void {
    const now = performance.now();
    this.latencies.push(now - scheduledAt);
    this.lastAnswerAt = now;
    count(this.answers, key);
  }

  timedOut(): void {
    this.timeouts++;
    this.latencies.push(OPEN_LOOP_TIMEOUT_MS);
  }

  figures(rate: number, scheduled: number, start: number, connections: number, maxConnections: number): OpenLoopFigures {
    const sorted = Float64Array.from(this.latencies).sort();
    const late = Float64Array.from(this.sentLate).sort();
    const answered = this.latencies.length - this.timeouts;
    const seconds = Math.max(this.lastAnswerAt - start, 1) / 1000;
    return {
      offeredPerSecond: rate,
      scheduled,
      requests: answered,
      achievedPerSecond: Math.round(answered / seconds),
      seconds: round(seconds),
      p50: percentile(sorted, 0.5),
      p95: percentile(sorted, 0.95),
      p99: percentile(sorted, 0.99),
      max: sorted.length ? round(sorted[sorted.length - 1]) : 0,
      errors: this.errors,
      timeouts: this.timeouts,
      sentLateP99: percentile(late, 0.99),
      sentLateMax: late.length ? round(late[late.length - 1]) : 0,
      connections,
      maxConnections,
      answers: this.answers,
    };
  }
}

/**
 * Calls `send(k, scheduledAt)` for k = 0 … count − 1, `rate` per second from
 * now, and resolves with the start once the last is sent. A tick that comes
 * late sends everything due at once, each with its own scheduled time.
 */
function onSchedule(rate: number, scheduled: number, send: (k: number, scheduledAt: number) => void): Promise<number> {
  const interval = 1000 / rate;
  const start = performance.now();
  let k = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (k < scheduled && start + k * interval <= now) {
        send(k, start + k * interval);
        k++;
      }
      // 1 ms ticks: at 4,000/s a few requests leave together, well under the latencies measured.
      if (k < scheduled) setTimeout(tick, 1);
      else resolve(start);
    };
    tick();
  });
}

/** Resolves once `pending()` is 0, polled: the answers or timeouts of what was sent. */
async function drained(pending: () => number): Promise<void> {
  while (pending() > 0) await new Promise((resolve) => setTimeout(resolve, 20));
}

/**
 * Signed JSON, open loop: the prepared (pre-signed) requests, `rate` per
 * second for `durationMs`, over keep-alive connections opened as needed up to
 * `maxConnections`; past that, a request waits in the generator for a free
 * connection, and the wait counts.
 */
export async function runOpenLoopHttp(
  baseUrl: string,
  requests: PreparedRequest[],
  rate: number,
  durationMs: number,
  maxConnections: number,
  /** Called with each request's id and scheduled time (epoch ms), for the request-to-Kafka latency. */
  onScheduled: (requestId: string, at: number) => void = () => undefined,
): Promise<OpenLoopFigures> {
  const scheduled = Math.min(requests.length, Math.round((rate * durationMs) / 1000));
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: maxConnections, maxFreeSockets: maxConnections });
  const sockets = new Set<Socket>();
  const tally = new Tally();
  const outcomes: Record<string, number> = {};
  let open = 0;

  const send = (k: number, scheduledAt: number) => {
    const prepared = requests[k];
    onScheduled(prepared.requestId, performance.timeOrigin + scheduledAt);
    open++;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      done = true;
      open--;
      clearTimeout(timer);
    };
    const outgoing = request({ agent, host: url.hostname, port: url.port, method: 'POST', path: '/v1/activations', headers: prepared.headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        if (done) return;
        finish();
        const status = response.statusCode ?? 0;
        tally.answered(scheduledAt, String(status));
        if (status === 429 || status >= 500) tally.errors++;
        try {
          const answer = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { status?: string; reason?: string | null; code?: string };
          count(outcomes, answer.code ? `ERROR:${answer.code}` : answer.reason ? `${answer.status}:${answer.reason}` : String(answer.status));
        } catch {
          count(outcomes, 'unreadable');
        }
      });
      response.on('error', () => {
        if (done) return;
        finish();
        tally.errors++;
      });
    });
    outgoing.on('socket', (socket: Socket) => {
      sockets.add(socket);
      tally.sentLate.push(performance.now() - scheduledAt);
    });
    outgoing.on('error', () => {
      if (done) return;
      finish();
      tally.errors++;
    });
    timer = setTimeout(
      () => {
        if (done) return;
        finish();
        tally.timedOut();
        outgoing.destroy();
      },
      Math.max(0, scheduledAt + OPEN_LOOP_TIMEOUT_MS - performance.now()),
    );
    outgoing.end(prepared.body);
  };

  const start = await onSchedule(rate, scheduled, send);
  await drained(() => open);
  agent.destroy();
  return { ...tally.figures(rate, scheduled, start, sockets.size, maxConnections), outcomes };
}

/** Open-loop RRNs: `OL` and a number no other open-loop step of this run has used (the closed-loop RRNs begin with hex digits). */
let openLoopSequence = 0;

/**
 * ISO 8583, open loop: 0200s at `rate` per second for `durationMs`, spread
 * round-robin over `connections` connections (connection c is bank c mod
 * banks) and pipelined on them without a window: each goes out at its time,
 * however many are unanswered. The gateway reads at most 64 in flight per
 * connection; past that TCP holds the rest back, and the wait counts.
 * Answers are matched on fields 11 and 37 and their field 39 read, all
 * without unpacking the message.
 */
export async function runOpenLoopIso(
  port: number,
  banks: BenchBank[],
  customers: Customer[],
  rate: number,
  durationMs: number,
  connections: number,
  onScheduled: (requestId: string, at: number) => void = () => undefined,
): Promise<OpenLoopFigures> {
  const scheduled = Math.round((rate * durationMs) / 1000);
  const templates = isoTemplates(banks, customers);
  const tally = new Tally();
  const pending = new Map<string, { scheduledAt: number; timer: NodeJS.Timeout }>();
  const lines = await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
        s.once('error', reject);
      });
      socket.setNoDelay(true);
      const decoder = new FrameDecoder(65535);
      const mine = new Set<string>();
      socket.on('data', (chunk: Buffer) => {
        for (const raw of decoder.push(chunk)) {
          const fields = peekFields(raw, [11, 37, 39])?.fields ?? {};
          const key = `${fields[11]}/${fields[37]}`;
          const waiting = pending.get(key);
          if (!waiting) continue; // timed out already
          pending.delete(key);
          mine.delete(key);
          clearTimeout(waiting.timer);
          const code = fields[39] ?? 'unreadable';
          tally.answered(waiting.scheduledAt, code);
          if (code === '91' || code === '96' || code === 'unreadable') tally.errors++;
        }
      });
      // A connection lost loses what it had in flight.
      const lost = () => {
        for (const key of mine) {
          const waiting = pending.get(key);
          if (!waiting) continue;
          pending.delete(key);
          clearTimeout(waiting.timer);
          tally.errors++;
        }
        mine.clear();
      };
      socket.on('error', lost);
      socket.on('close', lost);
      const bank = banks[c % banks.length];
      return { socket, bank, templates: templates[c % banks.length], mine, terminal: `TO${String(c).padStart(6, '0')}` };
    }),
  );

  const send = (k: number, scheduledAt: number) => {
    const line = lines[k % connections];
    const n = openLoopSequence++;
    const template = line.templates[n % 1000];
    const stan = String((n % 999_999) + 1).padStart(6, '0');
    const rrn = `OL${String(n).padStart(10, '0')}`;
    const message = Buffer.from(template.message);
    message.write(stan, template.stanAt, 'latin1');
    message.write(rrn, template.rrnAt, 'latin1');
    message.write(line.terminal, template.terminalAt, 'latin1');
    retailMac(line.bank.macKey, message.subarray(0, message.length - 8)).copy(message, message.length - 8);
    onScheduled(atmRequestId({ 7: TRANSMITTED_AT, 11: stan, 32: line.bank.acquirerId, 37: rrn, 41: line.terminal }), performance.timeOrigin + scheduledAt);
    if (line.socket.destroyed) {
      tally.errors++;
      return;
    }
    const key = `${stan}/${rrn}`;
    const timer = setTimeout(
      () => {
        if (!pending.delete(key)) return;
        line.mine.delete(key);
        tally.timedOut();
      },
      Math.max(0, scheduledAt + OPEN_LOOP_TIMEOUT_MS - performance.now()),
    );
    pending.set(key, { scheduledAt, timer });
    line.mine.add(key);
    line.socket.write(frame(message));
    tally.sentLate.push(performance.now() - scheduledAt);
  };

  const start = await onSchedule(rate, scheduled, send);
  await drained(() => pending.size);
  for (const line of lines) line.socket.end();
  return tally.figures(rate, scheduled, start, connections, connections);
}
