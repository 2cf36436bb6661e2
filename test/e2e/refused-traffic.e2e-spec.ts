import { request as httpRequest, Agent } from 'node:http';
import { connect, Socket } from 'node:net';
import { frame, FrameDecoder, IsoFields, unpackMessage } from '../../libs/iso8583';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { measureCpu, processCpu, processesNamedCpu } from '../../tools/bench/cpu';
import { atmActivation, TSTA_MAC_KEY } from '../support/atm-requests';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';

/**
 * Refused traffic costs little and is bounded (issue 10, item 3; acceptance 2):
 * 3,000 wrong-MAC frames over 16 connections, and a run of unsigned POSTs on
 * one connection. Each refusal is counted in memory and written in aggregate;
 * the sample, the log and the connections are bounded by rule; honest traffic
 * is served meanwhile. Latencies are measured and printed, never asserted.
 */
const MAX_MAC_FAILURES = 5; // ISO8583_MAX_MAC_FAILURES, the default
const MAX_AUTH_FAILURES = 20; // HTTP_MAX_AUTH_FAILURES, the default
const SAMPLES_PER_SOURCE_PER_MINUTE = 5; // RefusedTraffic
const LOG_LINES_PER_INTERVAL = 6; // RefusedTraffic: 5 sources and a summary per 10 s
const FLOOD_FRAMES = 3000;
const FLOOD_CONNECTIONS = 16;
/** Between writes of 8 frames: each connection's share goes out in about 5 s, as in the measurement. */
const FLOOD_PAUSE_MS = 200;

let env: TestEnvironment;
let honestAtm: AtmSwitchClient;

beforeAll(async () => {
  env = await TestEnvironment.start({ LOG_LEVEL: 'info' });
  honestAtm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY);
});

afterAll(async () => {
  await honestAtm?.close();
  await env?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function customer() {
  return { nationalId: newNationalId(), mobile: newMobile() };
}

let requestCounter = 0;

/** Honest traffic, one POST and one 0200 at a time, until `until` resolves: every answer checked, latencies kept. */
async function honestTraffic(until: Promise<unknown>): Promise<{ post: number[]; atm: number[] }> {
  const latencies = { post: [] as number[], atm: [] as number[] };
  let done = false;
  void until.finally(() => (done = true));
  while (!done || latencies.post.length < 5) {
    const person = customer();
    let started = performance.now();
    const answer = await env.send(env.pki.tsta.es256, {
      requestId: `honest-${process.pid}-${++requestCounter}`,
      body: { nationalId: person.nationalId, mobile: person.mobile, channel: 'INTERNET_BANKING' },
    });
    latencies.post.push(performance.now() - started);
    expect({ status: answer.status, decision: answer.json.status, reason: answer.json.reason }).toEqual({ status: 200, decision: 'REJECTED', reason: 'NOT_REGISTERED' });
    started = performance.now();
    const atm = await honestAtm.request(atmActivation(customer()));
    latencies.atm.push(performance.now() - started);
    expect({ code: atm.fields[39], mac: atm.macValid }).toEqual({ code: '25', mac: true });
    await sleep(50);
  }
  return latencies;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] * 10) / 10;
}

function ratio(during: number[], quiet: number[]): number {
  return Math.round((percentile(during, 0.5) / percentile(quiet, 0.5)) * 100) / 100;
}

function describeLatency(values: number[]): string {
  return `median ${percentile(values, 0.5)} ms, p95 ${percentile(values, 0.95)} ms (n=${values.length})`;
}

interface FloodSession {
  answers: IsoFields[];
  rawAnswers: Buffer[];
  closedByGateway: boolean;
}

/**
 * One attacking connection's share: frames with a wrong MAC written 8 at a time every 200 ms; when the
 * gateway closes the connection it reconnects and goes on, until its share is written.
 */
async function floodWorker(frames: Buffer[], sessions: FloodSession[]): Promise<void> {
  let next = 0;
  while (next < frames.length) {
    const session: FloodSession = { answers: [], rawAnswers: [], closedByGateway: false };
    sessions.push(session);
    const socket: Socket = await new Promise((resolve, reject) => {
      const opened = connect({ host: '127.0.0.1', port: env.isoPort }, () => resolve(opened));
      opened.once('error', reject);
    });
    const decoder = new FrameDecoder(65535);
    socket.on('data', (chunk: Buffer) => {
      for (const raw of decoder.push(chunk)) {
        session.rawAnswers.push(raw);
        session.answers.push(unpackMessage(raw));
      }
    });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let clientEnded = false;
    socket.once('end', () => (session.closedByGateway = !clientEnded));
    let open = true;
    void closed.then(() => (open = false));
    while (open && next < frames.length) {
      socket.write(Buffer.concat(frames.slice(next, next + 8).map((raw) => frame(raw))));
      next += 8;
      await sleep(FLOOD_PAUSE_MS);
    }
    if (open) {
      clientEnded = true;
      socket.end();
    }
    await closed;
  }
}

/** Log lines of the gateway written from `from` (an index into env.logs) on, parsed. */
function linesSince(from: number): Array<Record<string, unknown>> {
  return env.logs.slice(from).flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** CPU used by the gateway and by PostgreSQL while `step` runs, ms (from /proc, as the bench reads it; null where unreadable). */
async function cpuDuring<T>(step: () => Promise<T>): Promise<{ result: T; ms: number; gatewayMs: number | null; postgresMs: number | null }> {
  const started = performance.now();
  const measured = await measureCpu({ gateway: processCpu(env.gateway?.pid), postgres: processesNamedCpu('postgres') }, async () => ({ requests: 1, result: await step() }));
  return { result: measured.result, ms: performance.now() - started, gatewayMs: measured.cpu.ms.gateway, postgresMs: measured.cpu.ms.postgres };
}

it('3,000 wrong-MAC frames over 16 connections: 63s with no MAC, the connections closed by the rule, bounded rows and log lines, honest POSTs and 0200s served', async () => {
  // Warm up (the first requests compile code paths), then the quiet latencies to compare with, and the CPU an honest pair costs.
  await honestTraffic(sleep(1000));
  const idle = await cpuDuring(() => sleep(2000)); // timers, relay and consumers with no traffic
  const quietBefore = await cpuDuring(() => honestTraffic(sleep(3000)));

  const builder = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY);
  const frames = Array.from({ length: FLOOD_FRAMES }, () => builder.pack(atmActivation(customer(), { terminal: 'FLOODATM' }), 'wrong'));
  await builder.close();
  const logsBefore = env.logs.length;
  const floodStarted = Date.now();
  const sessions: FloodSession[] = [];
  const share = Math.ceil(FLOOD_FRAMES / FLOOD_CONNECTIONS);
  const flood = Promise.all(Array.from({ length: FLOOD_CONNECTIONS }, (_, i) => floodWorker(frames.slice(i * share, (i + 1) * share), sessions)));
  const duringFlood = await cpuDuring(() => honestTraffic(flood));
  await flood;
  const floodMs = Date.now() - floodStarted;
  // Quiet again after the flood: the machine is shared, so quiet is measured on both sides of it.
  const quietAfter = await cpuDuring(() => honestTraffic(sleep(3000)));
  const quiet = { post: [...quietBefore.result.post, ...quietAfter.result.post], atm: [...quietBefore.result.atm, ...quietAfter.result.atm] };
  const during = duringFlood.result;

  // Every answer a 63 with no MAC; no connection got more answers than the rule allows before it was closed.
  const answers = sessions.flatMap((s) => s.answers);
  expect(answers.length).toBeGreaterThan(0);
  expect(new Set(answers.map((a) => `${a[0]}/${a[39]}/${a[64] ?? 'no MAC'}`))).toEqual(new Set(['0210/63/no MAC']));
  const closedByRule = sessions.filter((s) => s.closedByGateway);
  expect(closedByRule.length).toBeGreaterThanOrEqual(FLOOD_CONNECTIONS);
  for (const session of sessions) expect(session.answers.length).toBeLessThanOrEqual(MAX_MAC_FAILURES);
  for (const session of closedByRule) expect(session.answers.length).toBe(MAX_MAC_FAILURES);

  // Nothing decided for the flood's terminal.
  expect(await env.database.query(`SELECT 1 FROM activation_request WHERE terminal_id = 'FLOODATM'`)).toHaveLength(0);
  // Counted in aggregate: every refusal the gateway answered, in one row per minute (and code).
  const counted = await waitForCount(`SELECT coalesce(sum(refused), 0)::int AS n FROM refused_traffic_minute WHERE channel = 'ATM' AND source = '111111' AND code = '63'`, answers.length);
  expect(counted).toBe(answers.length);
  const minutes = (await env.database.query<{ n: number }>(`SELECT count(*)::int AS n FROM refused_traffic_minute WHERE channel = 'ATM' AND source = '111111' AND code = '63'`))[0].n;
  // A bounded sample: at most 5 rows per minute from one source.
  const sampled = (await env.database.query<{ n: number }>(`SELECT count(*)::int AS n FROM atm_refused_message WHERE terminal_id = 'FLOODATM'`))[0].n;
  expect(sampled).toBeGreaterThan(0);
  expect(sampled).toBeLessThanOrEqual(SAMPLES_PER_SOURCE_PER_MINUTE * minutes);

  // A bounded log: at most 6 lines of refused traffic per 10 s interval, and no other warning per frame.
  await sleep(10_500); // the last interval's summary
  const lines = linesSince(logsBefore);
  const refusedLines = lines.filter((l) => l.component === 'refused-traffic');
  const intervals = Math.ceil((Date.now() - floodStarted) / 10_000) + 1;
  expect(refusedLines.length).toBeLessThanOrEqual(LOG_LINES_PER_INTERVAL * intervals);
  const summaries = refusedLines.filter((l) => String(l.message).startsWith('refused traffic in the last'));
  expect(summaries.reduce((sum, l) => sum + Number(l.refused), 0)).toBeGreaterThanOrEqual(answers.length - 5 * intervals);
  expect(summaries.reduce((sum, l) => sum + Number((l.connectionsClosed as { ATM: number }).ATM), 0)).toBe(closedByRule.length);
  const warnings = lines.filter((l) => l.level === 'warn' || l.level === 'error');
  expect(warnings.length).toBeLessThanOrEqual(refusedLines.length + 2);

  // The gateway's CPU per refused frame: what it used during the flood, less its idle rate and what the honest pairs sent meanwhile cost when quiet.
  const idleUsPerMs = idle.gatewayMs === null ? null : idle.gatewayMs / idle.ms;
  const quietGatewayMs = quietBefore.gatewayMs === null || quietAfter.gatewayMs === null ? null : quietBefore.gatewayMs + quietAfter.gatewayMs;
  const perPairUs =
    quietGatewayMs === null || idleUsPerMs === null ? null : ((quietGatewayMs - idleUsPerMs * (quietBefore.ms + quietAfter.ms)) * 1000) / quiet.post.length;
  const perRefusalUs =
    duringFlood.gatewayMs === null || perPairUs === null || idleUsPerMs === null
      ? null
      : Math.round(((duringFlood.gatewayMs - idleUsPerMs * duringFlood.ms) * 1000 - perPairUs * during.post.length) / answers.length);
  console.log(
    [
      `refused-traffic flood: ${FLOOD_FRAMES} wrong-MAC frames over ${FLOOD_CONNECTIONS} connections in ${floodMs} ms`,
      `  answered 63 (no MAC): ${answers.length}; connections closed by the rule: ${closedByRule.length} (of ${sessions.length} opened)`,
      `  rows: refused_traffic_minute ${minutes}, atm_refused_message ${sampled}; log lines: ${lines.length} in all, ${refusedLines.length} of refused traffic`,
      `  honest POST  quiet ${describeLatency(quiet.post)}; during the flood ${describeLatency(during.post)}`,
      `  honest 0200  quiet ${describeLatency(quiet.atm)}; during the flood ${describeLatency(during.atm)}`,
      `  during the flood / quiet, medians: POST ${ratio(during.post, quiet.post)}x, 0200 ${ratio(during.atm, quiet.atm)}x`,
      `  gateway CPU: an honest POST and 0200 ${perPairUs === null ? 'n/a' : Math.round(perPairUs)} µs; a refused frame (with its share of the reconnections) ${perRefusalUs ?? 'n/a'} µs;` +
        ` idle ${idle.gatewayMs ?? 'n/a'} ms per ${Math.round(idle.ms)} ms; during the flood ${duringFlood.gatewayMs ?? 'n/a'} ms in ${floodMs} ms` +
        ` (PostgreSQL ${duringFlood.postgresMs ?? 'n/a'} ms, every database on the machine)`,
    ].join('\n'),
  );
}, 180_000);

it('unsigned POSTs on one connection: 401s, the connection told to close at the limit, counted per source, a bounded sample', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<unknown>();
  const answers: Array<{ status: number; connection: string | undefined }> = [];
  const total = MAX_AUTH_FAILURES * 3;
  for (let i = 0; i < total; i++) {
    const answer = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const body = JSON.stringify({ nationalId: '1000000008', mobile: '0512345678', channel: 'INTERNET_BANKING' });
      const outgoing = httpRequest(`${env.baseUrl}/v1/activations`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'x-bank-id': 'TSTA', 'x-request-id': `unsigned-${i}`, 'content-length': Buffer.byteLength(body) },
      });
      outgoing.on('socket', (socket) => sockets.add(socket));
      outgoing.on('response', (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode!, connection: response.headers.connection }));
      });
      outgoing.on('error', reject);
      outgoing.end(body);
    });
    answers.push(answer);
  }
  agent.destroy();
  expect(new Set(answers.map((a) => a.status))).toEqual(new Set([401]));
  // Every MAX_AUTH_FAILURES-th 401 on a connection closes it; the client opens another.
  const closing = answers.flatMap((a, i) => (a.connection === 'close' ? [i + 1] : []));
  expect(closing).toEqual([MAX_AUTH_FAILURES, 2 * MAX_AUTH_FAILURES, 3 * MAX_AUTH_FAILURES]);
  expect(sockets.size).toBe(3);

  const counted = await waitForCount(`SELECT coalesce(sum(refused), 0)::int AS n FROM refused_traffic_minute WHERE channel = 'HTTP' AND code = 'SIGNATURE_MISSING' AND bank_code = 'TSTA'`, total);
  expect(counted).toBe(total);
  const minutes = (await env.database.query<{ n: number }>(`SELECT count(*)::int AS n FROM refused_traffic_minute WHERE channel = 'HTTP' AND code = 'SIGNATURE_MISSING'`))[0].n;
  const sampled = await env.database.query<{ source_address: string; method: string; request_id: string; reason: string }>(
    `SELECT source_address, method, request_id, reason FROM http_refused_request WHERE code = 'SIGNATURE_MISSING'`,
  );
  expect(sampled.length).toBeGreaterThan(0);
  expect(sampled.length).toBeLessThanOrEqual(SAMPLES_PER_SOURCE_PER_MINUTE * minutes);
  expect(sampled[0]).toMatchObject({ source_address: '127.0.0.1', method: 'POST', request_id: 'unsigned-0', reason: 'the X-JWS-Signature header is required' });

  // The honest bank is served meanwhile.
  const person = customer();
  const honest = await env.send(env.pki.tsta.es256, { requestId: `after-401s-${process.pid}`, body: { nationalId: person.nationalId, mobile: person.mobile, channel: 'INTERNET_BANKING' } });
  expect(honest.status).toBe(200);
}, 60_000);

/** Polls a `SELECT … AS n` until it reaches `expected` (refused traffic is written every 5 s); its last value. */
async function waitForCount(sql: string, expected: number, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [{ n }] = await env.database.query<{ n: number }>(sql);
    if (n >= expected || Date.now() > deadline) return n;
    await sleep(200);
  }
}
