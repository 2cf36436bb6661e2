import { constants, createHash, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { Agent, request } from 'node:http';
import { Kafka, logLevel } from 'kafkajs';
import { connect, Socket } from 'node:net';
import { frame, FrameDecoder, packMessage, peekMessageHead, retailMac, unpackMessage } from '../../libs/iso8583';
import { signBankRequest } from '../../libs/jws/request-signing';
import { derToP1363, p1363ToDer } from '../../libs/jws/ecdsa-signature';
import { atmRequestId } from '../../src/channels/atm/atm-exchange';
import { TOPICS } from '../../src/kafka/topics';
import { BenchBank, Customer, newNationalId } from './bench-environment';

/** Latency figures in ms, and throughput. */
export interface LoadFigures {
  requests: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  /** HTTP status or field 39, counted. */
  answers: Record<string, number>;
  /** ACCEPTED / REJECTED:<reason> / ERROR:<code>, counted. */
  outcomes: Record<string, number>;
  /** Requests answered by each gateway instance, in the order given (several instances only). */
  perInstance?: number[];
}

export function percentile(sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return 0;
  return round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function figures(latencies: number[], seconds: number, answers: Record<string, number>, outcomes: Record<string, number>, perInstance: number[]): LoadFigures {
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    seconds: round(seconds),
    perSecond: Math.round(latencies.length / seconds),
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    answers,
    outcomes,
    ...(perInstance.length > 1 ? { perInstance } : {}),
  };
}

export const count = (map: Record<string, number>, key: string) => (map[key] = (map[key] ?? 0) + 1);

/** How many signatures or verifications node:crypto does per second on one core, for `ms` each. */
export function cryptoRates(ms = 1500): { ps256Verify: number; es256Verify: number; ps256Sign: number; es256Sign: number } {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const input = randomBytes(400);
  const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
  const rsaSignature = sign('sha256', input, { key: rsa.privateKey, ...pss });
  // ES256 as the gateway calls it: a bare KeyObject, r||s converted (libs/jws/ecdsa-signature.ts).
  const ecSignature = derToP1363(sign('sha256', input, ec.privateKey), 32);
  const rate = (operation: () => unknown) => {
    let n = 0;
    const end = performance.now() + ms;
    while (performance.now() < end) for (let i = 0; i < 20; i++, n++) operation();
    return Math.round(n / (ms / 1000));
  };
  return {
    ps256Verify: rate(() => verify('sha256', input, { key: rsa.publicKey, ...pss }, rsaSignature)),
    es256Verify: rate(() => verify('sha256', input, ec.publicKey, p1363ToDer(ecSignature, 32)!)),
    ps256Sign: rate(() => sign('sha256', input, { key: rsa.privateKey, ...pss })),
    es256Sign: rate(() => derToP1363(sign('sha256', input, ec.privateKey), 32)),
  };
}

export interface PreparedRequest {
  requestId: string;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * A realistic mix, each request freshly signed (its own request id, `iat`
 * and signature), alternating PS256 (BNKP) and ES256 (BNKE): 70% a pending
 * customer with the registered mobile (ACCEPTED), 10% an already active one
 * (ALREADY_ACTIVE), 10% another mobile (MOBILE_MISMATCH), 10% not registered.
 * Signed before the clock starts: the signing cost is the generator's,
 * measured apart (`cryptoRates`).
 */
export async function prepareJsonRequests(howMany: number, banks: BenchBank[], customers: Customer[], prefix: string): Promise<PreparedRequest[]> {
  const pending = customers.filter((c) => c.status === 'PENDING_ACTIVATION');
  const active = customers.filter((c) => c.status === 'ACTIVE');
  const prepared: PreparedRequest[] = [];
  for (let i = 0; i < howMany; i++) {
    const roll = i % 10;
    const customer = roll === 7 ? active[i % active.length] : pending[i % pending.length];
    const nationalId = roll === 9 ? newNationalId() : customer.nationalId;
    const mobile = roll === 8 ? `+9665${String(90_000_000 + (i % 9_999_999)).padStart(8, '0')}` : customer.mobile;
    const body = Buffer.from(JSON.stringify({ nationalId, mobile, channel: i % 3 === 0 ? 'PHONE_BANKING' : 'INTERNET_BANKING' }));
    const requestId = `${prefix}-${i}`;
    const bank = banks[i % banks.length];
    const signed = signBankRequest(bank.identity, { method: 'POST', path: '/v1/activations', requestId, body });
    prepared.push({ requestId, body, headers: { ...signed, 'content-type': 'application/json', 'content-length': String(body.length) } });
    // Signing ahead takes seconds: yield now and then, so the topic watcher keeps its Kafka group
    // heartbeats (blocked for longer than its session, it is thrown out and its rejoin delays the
    // next step's events by seconds, which would be counted as request-to-Kafka latency).
    if (i % 200 === 199) await new Promise((resolve) => setImmediate(resolve));
  }
  return prepared;
}

/**
 * `concurrency` clients, each with its own keep-alive connection, sending
 * the prepared requests one after another for `durationMs` (or until they
 * run out).
 *
 * Given several base URLs (gateway instances), it is a round-robin client:
 * each client sends its requests to the instances in turn (client k's j-th
 * request to instance (k + j) mod n), over keep-alive agents of each
 * instance's own.
 */
export async function runHttpLoad(
  baseUrls: string | string[],
  requests: PreparedRequest[],
  concurrency: number,
  durationMs: number,
  onSent: (requestId: string, at: number) => void = () => undefined,
): Promise<LoadFigures> {
  const urls = (Array.isArray(baseUrls) ? baseUrls : [baseUrls]).map((baseUrl) => new URL(baseUrl));
  const agents = urls.map(() => new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency }));
  const perInstance = urls.map(() => 0);
  const latencies: number[] = [];
  const answers: Record<string, number> = {};
  const outcomes: Record<string, number> = {};
  let next = 0;
  const started = performance.now();
  const end = started + durationMs;
  const client = async (_: unknown, k: number) => {
    for (let j = 0; performance.now() < end && next < requests.length; j++) {
      const prepared = requests[next++];
      const instance = (k + j) % urls.length;
      const sentAt = performance.now();
      onSent(prepared.requestId, performance.timeOrigin + sentAt);
      const { status, body } = await post(agents[instance], urls[instance], prepared);
      latencies.push(performance.now() - sentAt);
      perInstance[instance]++;
      count(answers, String(status));
      try {
        const answer = JSON.parse(body) as { status?: string; reason?: string | null; code?: string };
        count(outcomes, answer.code ? `ERROR:${answer.code}` : answer.reason ? `${answer.status}:${answer.reason}` : String(answer.status));
      } catch {
        count(outcomes, 'unreadable');
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (performance.now() - started) / 1000;
  for (const agent of agents) agent.destroy();
  return figures(latencies, seconds, answers, outcomes, perInstance);
}

function post(agent: Agent, url: URL, prepared: PreparedRequest): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ agent, host: url.hostname, port: url.port, method: 'POST', path: '/v1/activations', headers: prepared.headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(prepared.body);
  });
}

/**
 * ATM switches: `connections` TCP connections, each keeping `window`
 * requests in flight (pipelining), the same mix of outcomes as above, for
 * `durationMs`. Fields 7/11/37/41 are unique per request, so none is a
 * duplicate. Given several ports (gateway instances), the connections go to
 * them alternately (connection c to instance c mod n), each instance getting
 * connections of every bank.
 *
 * The generator must not be what is measured: iso_8583 packs and unpacks
 * slowly, so one frame per customer is packed before the clock starts, and
 * each request only patches its STAN and RRN into a copy and MACs it (3DES,
 * microseconds). Answers are matched on STAN and RRN read from the head of
 * the frame; one in 16 is unpacked in full to count field 39.
 */
export async function runIsoLoad(
  ports: number | number[],
  banks: BenchBank[],
  customers: Customer[],
  connections: number,
  window: number,
  durationMs: number,
  runId: string,
  /** Called with the request id the gateway gives each request (its decision carries it on Kafka). */
  onSent: (requestId: string, at: number) => void = () => undefined,
): Promise<LoadFigures> {
  const latencies: number[] = [];
  const answers: Record<string, number> = {};
  const outcomes: Record<string, number> = {};
  const runPrefix = createHash('sha256').update(runId).digest('hex').slice(0, 2).toUpperCase();
  const templates = isoTemplates(banks, customers);
  const instancePorts = Array.isArray(ports) ? ports : [ports];
  const perInstance = instancePorts.map(() => 0);
  let sequence = 0;
  const started = performance.now();
  const end = started + durationMs;
  await Promise.all(
    Array.from({ length: connections }, async (_, connection) => {
      const instance = connection % instancePorts.length;
      // With one instance: bank `connection % banks`, as always; with n, every instance sees every bank.
      const bank = banks[Math.floor(connection / instancePorts.length) % banks.length];
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: instancePorts[instance] }, () => resolve(s));
        s.once('error', reject);
      });
      socket.setNoDelay(true);
      const decoder = new FrameDecoder(65535);
      const waiting = new Map<string, () => void>();
      let answered = 0;
      socket.on('data', (chunk: Buffer) => {
        for (const raw of decoder.push(chunk)) {
          const head = peekMessageHead(raw);
          const key = `${head?.stan}/${head?.rrn}`;
          if (answered++ % 16 === 0) {
            const code = unpackMessage(raw)[39];
            count(answers, code);
          }
          const done = waiting.get(key);
          waiting.delete(key);
          done?.();
        }
      });
      const terminal = `T${runPrefix}${String(connection).padStart(5, '0')}`;
      const lane = async () => {
        while (performance.now() < end) {
          const n = sequence++;
          const template = templates[banks.indexOf(bank)][n % 1000];
          const stan = String((n % 999_999) + 1).padStart(6, '0');
          const rrn = `${runPrefix}${String(n).padStart(10, '0')}`.slice(-12);
          const message = Buffer.from(template.message);
          message.write(stan, template.stanAt, 'latin1');
          message.write(rrn, template.rrnAt, 'latin1');
          message.write(terminal, template.terminalAt, 'latin1');
          retailMac(bank.macKey, message.subarray(0, message.length - 8)).copy(message, message.length - 8);
          const sentAt = performance.now();
          onSent(atmRequestId({ 7: TRANSMITTED_AT, 11: stan, 32: bank.acquirerId, 37: rrn, 41: terminal }), performance.timeOrigin + sentAt);
          await new Promise<void>((resolve) => {
            waiting.set(`${stan}/${rrn}`, resolve);
            socket.write(frame(message));
          });
          latencies.push(performance.now() - sentAt);
          perInstance[instance]++;
          count(outcomes, ['ACCEPTED', 'ACCEPTED', 'ACCEPTED', 'ACCEPTED', 'ACCEPTED', 'ACCEPTED', 'ACCEPTED', 'ALREADY_ACTIVE', 'MOBILE_MISMATCH', 'NOT_REGISTERED'][n % 10]);
        }
      };
      await Promise.all(Array.from({ length: window }, lane));
      socket.end();
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  // Field 39 was read for one answer in 16: scaled to all of them.
  for (const code of Object.keys(answers)) answers[code] *= 16;
  return figures(latencies, seconds, answers, outcomes, perInstance);
}

/** Field 7 of every ISO request. */
export const TRANSMITTED_AT = '1123101500';

/** A packed 0200 with placeholders, and where its STAN, RRN and terminal id sit. */
export interface IsoTemplate {
  message: Buffer;
  stanAt: number;
  rrnAt: number;
  terminalAt: number;
}

/**
 * Templates per bank (in the order of `banks`): 1,000 customers (one
 * national ID is decided one request at a time, so few customers would
 * queue on one another), request kind i % 10 as in the JSON mix.
 */
export function isoTemplates(banks: BenchBank[], customers: Customer[]): IsoTemplate[][] {
  const pending = customers.filter((c) => c.status === 'PENDING_ACTIVATION');
  const active = customers.filter((c) => c.status === 'ACTIVE');
  return banks.map((bank) =>
    Array.from({ length: 1000 }, (_, i) => {
      const roll = i % 10;
      const customer = roll === 7 ? active[i % active.length] : pending[i % pending.length];
      const nationalId = roll === 9 ? newNationalId() : customer.nationalId;
      const mobile = roll === 8 ? '+966599999999' : customer.mobile;
      return isoTemplate(bank, nationalId, mobile);
    }),
  );
}

function isoTemplate(bank: BenchBank, nationalId: string, mobile: string): IsoTemplate {
  const message = packMessage({
    0: '0200',
    2: '4111111111111111',
    3: '910000',
    7: TRANSMITTED_AT,
    11: '987654',
    12: '101500',
    13: '1123',
    32: bank.acquirerId,
    37: 'RRNRRNRRNRRN',
    41: 'TTTTTTTT',
    48: `NI010${nationalId}MN${String(mobile.length).padStart(3, '0')}${mobile}`,
    64: '0000000000000000',
  });
  const text = message.toString('latin1');
  return { message, stanAt: text.indexOf('987654'), rrnAt: text.indexOf('RRNRRNRRNRRN'), terminalAt: text.indexOf('TTTTTTTT') };
}

/**
 * End to end: from the moment the bank's request is sent to the moment its
 * decision is readable on absher.activations.v1 by a consumer (the identity
 * core's view).
 */
export class ActivationTopicWatcher {
  private readonly sentAt = new Map<string, number>();
  private latencies: number[] = [];
  /** When the last message of the topic (any request's) was read. */
  private lastReadAt = performance.now();
  private readonly consumer;

  constructor(brokers: string[]) {
    this.consumer = new Kafka({ clientId: 'bench-identity-core', brokers, logLevel: logLevel.NOTHING }).consumer({
      groupId: `bench-e2e-${process.pid}-${Date.now()}`,
      maxWaitTimeInMs: 20,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
    });
  }

  async start(): Promise<void> {
    const joined = new Promise<void>((resolve) => this.consumer.on(this.consumer.events.GROUP_JOIN, () => resolve()));
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: TOPICS.activations, fromBeginning: false });
    await this.consumer.run({
      eachBatch: async ({ batch }) => {
        this.lastReadAt = performance.now();
        const readAt = performance.timeOrigin + performance.now();
        for (const message of batch.messages) {
          const requestId = /"requestId":"([^"]+)"/.exec(message.value?.toString() ?? '')?.[1];
          const sentAt = requestId ? this.sentAt.get(requestId) : undefined;
          if (sentAt !== undefined) {
            this.latencies.push(readAt - sentAt);
            this.sentAt.delete(requestId!);
          }
        }
      },
    });
    await joined;
  }

  sent(requestId: string, at: number): void {
    this.sentAt.set(requestId, at);
  }

  /**
   * Waits for the events of what was sent (up to 30 s, or until none has
   * come for 3 s: a refused request, such as a 429, has no decision to
   * publish), then returns the latencies and starts afresh.
   */
  async collect(): Promise<{ events: number; missing: number; p50: number; p95: number; p99: number; max: number }> {
    const deadline = performance.now() + 30_000;
    while (this.sentAt.size > 0 && performance.now() < deadline && performance.now() - this.lastReadAt < 3000) await new Promise((resolve) => setTimeout(resolve, 100));
    const sorted = Float64Array.from(this.latencies).sort();
    const result = {
      events: sorted.length,
      missing: this.sentAt.size,
      p50: percentile(sorted, 0.5),
      p95: percentile(sorted, 0.95),
      p99: percentile(sorted, 0.99),
      max: sorted.length ? round(sorted[sorted.length - 1]) : 0,
    };
    this.latencies = [];
    this.sentAt.clear();
    return result;
  }

  /**
   * Waits until no decision has reached the topic for `quietMs` (at most
   * `maxMs`): the outbox relays have published what the last step decided,
   * whichever channel it came through.
   */
  async settle(quietMs = 300, maxMs = 15_000): Promise<void> {
    const deadline = performance.now() + maxMs;
    while (performance.now() - this.lastReadAt < quietMs && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect().catch(() => undefined);
  }
}
