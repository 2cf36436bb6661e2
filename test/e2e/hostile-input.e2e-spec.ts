import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect, Socket } from 'node:net';
import { BankSigningIdentity, signBankRequest } from '../../libs/jws/request-signing';
import { TOPICS } from '../../src/kafka/topics';
import { expectContract } from '../support/contracts';
import { localSpelling, newMobile, newNationalId } from '../support/identities';
import { GatewayAnswer, TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * Issue 5, the HTTP side under hostile input: oversized and endless bodies,
 * deep nesting, invalid UTF-8, oversized headers, a flood of forged
 * signatures, slowloris clients and silent connections. Each gets a clear
 * answer or is cut off by a timeout, the gateway's memory stays bounded, and
 * an honest bank is served throughout.
 *
 * The timeouts are short here (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS)
 * so the cut-offs happen within seconds; nothing asserts on how long anything
 * took: Jest's own test timeout is the only clock.
 */
let env: TestEnvironment;
let reader: TopicReader;
let port: number;
let sequence = 0;
const nextRequestId = () => `hostile-${process.pid}-${++sequence}`;

const PATH = '/v1/activations';
const BODY_LIMIT = 16 * 1024;
const HEADER_LIMIT = 8 * 1024;

beforeAll(async () => {
  env = await TestEnvironment.start({ HTTP_HEADERS_TIMEOUT_MS: '1500', HTTP_REQUEST_TIMEOUT_MS: '3000' });
  port = Number(new URL(env.baseUrl).port);
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.ops]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

const bank = (): BankSigningIdentity => env.pki.tsta.es256;

const honestBody = () => ({ nationalId: newNationalId(), mobile: localSpelling(newMobile()), channel: 'INTERNET_BANKING' });

/** An honest bank's request: answered 200 with a decision (not registered: REJECTED). */
async function expectHonestServed(): Promise<void> {
  const requestId = nextRequestId();
  const answer = await env.send(bank(), { requestId, body: honestBody() });
  expect({ status: answer.status, requestId: answer.json.requestId }).toEqual({ status: 200, requestId });
}

/** A signed 400 MALFORMED_REQUEST problem whose detail says what is wrong. */
function expectMalformed(answer: GatewayAnswer, detail: RegExp): void {
  expect({ status: answer.status, code: answer.json.code }).toEqual({ status: 400, code: 'MALFORMED_REQUEST' });
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  expectContract('schemas/http/problem.schema.json', answer.json);
  expect(answer.json.detail).toMatch(detail);
}

function gatewayAlive(): boolean {
  return env.gateway !== null && env.gateway.exitCode === null && env.gateway.signalCode === null;
}

/** The gateway process's resident set size, in bytes. */
function gatewayRss(): number {
  const status = readFileSync(`/proc/${env.gateway!.pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kib) throw new Error(`no VmRSS in /proc/${env.gateway!.pid}/status`);
  return Number(kib[1]) * 1024;
}

/** A response read off a raw connection. */
interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A client on a bare TCP connection, for what supertest cannot send: headers
 * a byte at a time, endless chunked bodies, silence.
 */
class RawClient {
  private received = Buffer.alloc(0);
  private ended = false;
  /** Resolves when the connection is closed; `byGateway` unless this client destroyed it first. */
  readonly closed: Promise<{ byGateway: boolean }>;
  private destroyedHere = false;
  private readonly waiting = new Set<() => void>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake();
    });
    // A write after the gateway has closed the connection fails with EPIPE/ECONNRESET: that is the point of these tests.
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.wake();
        resolve({ byGateway: !this.destroyedHere });
      }),
    );
  }

  static open(): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  get isOpen(): boolean {
    return !this.ended && !this.socket.destroyed;
  }

  write(bytes: string | Buffer): boolean {
    if (!this.isOpen) return false;
    this.socket.write(bytes);
    return true;
  }

  destroy(): void {
    this.destroyedHere = true;
    this.socket.destroy();
  }

  /** The next complete response (by Content-Length), or what arrived before the connection closed. */
  async answer(): Promise<RawAnswer> {
    for (;;) {
      const parsed = this.parse();
      if (parsed) {
        this.received = this.received.subarray(parsed.length);
        return parsed.answer;
      }
      if (this.ended) throw new Error(`the connection closed without a complete response: ${JSON.stringify(this.received.toString('latin1').slice(0, 300))}`);
      await new Promise<void>((resolve) => this.waiting.add(resolve));
    }
  }

  /** Bytes received after the answers read so far. */
  get unread(): string {
    return this.received.toString('latin1');
  }

  private parse(): { answer: RawAnswer; length: number } | null {
    const end = this.received.indexOf('\r\n\r\n');
    if (end === -1) return null;
    const [statusLine, ...lines] = this.received.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const body = this.received.subarray(end + 4);
    const length = headers['content-length'] === undefined ? null : Number(headers['content-length']);
    if (length === null ? !this.ended : body.length < length) return null;
    const bodyLength = length ?? body.length;
    return { answer: { status: Number(statusLine.split(' ')[1]), headers, body: body.subarray(0, bodyLength).toString('utf8') }, length: end + 4 + bodyLength };
  }

  private wake(): void {
    for (const resolve of this.waiting) resolve();
    this.waiting.clear();
  }
}

/** The request line and headers of a signed POST of `body`, as a bank would send them. */
function signedHead(body: Buffer, requestId: string, extra: Record<string, string> = {}): string {
  const signed = signBankRequest(bank(), { method: 'POST', path: PATH, requestId, body });
  const headers: Record<string, string> = { host: '127.0.0.1', 'content-type': 'application/json', ...signed, ...extra };
  return `POST ${PATH} HTTP/1.1\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`;
}

/** A problem the gateway answered on a raw connection, checked as RFC 9457. */
function problemIn(answer: RawAnswer): Record<string, unknown> {
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(answer.body) as Record<string, unknown>;
  expect(problem).toMatchObject({ status: answer.status });
  expect(typeof problem.title).toBe('string');
  expect(String(problem.detail).length).toBeGreaterThan(10);
  return problem;
}

/** The request-handled events the ops stream carries for a request id. */
const opsFor = (requestId: string) => reader.on(TOPICS.ops).filter((r) => r.event.type === 'sa.absher.gateway.request-handled' && r.event.data.requestId === requestId);

/**
 * What the ops stream must carry, checked once at the end: refused activation
 * requests are handled requests (one request-handled ERROR with their code);
 * what was cut off before a whole request was read is not a handled request.
 */
const expectedOnOps = new Map<string, string>();
const neverRecorded: string[] = [];

describe('bodies over 16 KiB', () => {
  it('a signed body one byte over the limit is 400 MALFORMED_REQUEST; one exactly at the limit is decided', async () => {
    const requestId = nextRequestId();
    const json = JSON.stringify(honestBody());
    const over = await env.send(bank(), { requestId, rawBody: Buffer.from(json.padEnd(BODY_LIMIT + 1, ' ')) });
    expectMalformed(over, /larger than 16 KiB/);
    expect(over.json.requestId).toBe(requestId);
    expectedOnOps.set(requestId, 'MALFORMED_REQUEST');

    const atLimit = nextRequestId();
    const answer = await env.send(bank(), { requestId: atLimit, rawBody: Buffer.from(json.padEnd(BODY_LIMIT, ' ')) });
    expect({ status: answer.status, requestId: answer.json.requestId }).toEqual({ status: 200, requestId: atLimit });
  });

  it('a client that sends all of a 20 KiB body reads the 400, and its connection then serves its next request', async () => {
    // Answered before the body is read; the rest is read and dropped, so the connection carries the next request.
    const client = await RawClient.open();
    const requestId = nextRequestId();
    const big = Buffer.from(JSON.stringify(honestBody()).padEnd(20 * 1024, ' '));
    client.write(signedHead(big, requestId, { 'content-length': String(big.length) }));
    client.write(big);
    const refused = await client.answer();
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'MALFORMED_REQUEST', detail: 'the body is larger than 16 KiB', requestId });
    expectedOnOps.set(requestId, 'MALFORMED_REQUEST');

    const next = nextRequestId();
    const body = Buffer.from(JSON.stringify(honestBody()));
    client.write(signedHead(body, next, { 'content-length': String(body.length) }));
    client.write(body);
    const served = await client.answer();
    expect({ status: served.status, requestId: JSON.parse(served.body).requestId }).toEqual({ status: 200, requestId: next });
    client.destroy();
  });

  it('a client that sends 1 MiB with Connection: close reads the 400 before the gateway closes the connection', async () => {
    const client = await RawClient.open();
    const requestId = nextRequestId();
    const big = Buffer.from(JSON.stringify(honestBody()).padEnd(1024 * 1024, ' '));
    client.write(signedHead(big, requestId, { 'content-length': String(big.length), connection: 'close' }));
    client.write(big);
    const refused = await client.answer();
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'MALFORMED_REQUEST', detail: 'the body is larger than 16 KiB', requestId });
    expectedOnOps.set(requestId, 'MALFORMED_REQUEST');
    expect(await client.closed).toEqual({ byGateway: true });
  });

  it('a Content-Length of 10 GB that is never sent is answered 400 at once, and the request timeout ends the connection', async () => {
    const client = await RawClient.open();
    const requestId = nextRequestId();
    // Signed over an empty body: the size alone must refuse it, before a byte of the body is awaited.
    client.write(signedHead(Buffer.alloc(0), requestId, { 'content-length': String(10 * 1024 ** 3) }));
    const answer = await client.answer();
    // 400, not 408: had the gateway waited for the body, the request timeout would have answered.
    expect(answer.status).toBe(400);
    expect(problemIn(answer)).toMatchObject({ code: 'MALFORMED_REQUEST', detail: expect.stringMatching(/larger than 16 KiB/), requestId });
    expectedOnOps.set(requestId, 'MALFORMED_REQUEST');
    // Closed by the timeout, without a second answer for the same request.
    expect(await client.closed).toEqual({ byGateway: true });
    expect(client.unread).toBe('');
  });

  it('a chunked body that never ends is answered 400 once past 16 KiB, and the request timeout ends the connection', async () => {
    const client = await RawClient.open();
    const requestId = nextRequestId();
    const head = signedHead(Buffer.alloc(0), requestId).replace('\r\n\r\n', '\r\ntransfer-encoding: chunked\r\n\r\n');
    client.write(head);
    const chunk = `400\r\n${'['.repeat(1024)}\r\n`;
    let sent = 0;
    // 10 MiB would follow; the gateway must stop it long before.
    const answered = client.answer();
    let done = false;
    void answered.finally(() => (done = true));
    while (!done && client.isOpen && sent < 10 * 1024 * 1024) {
      client.write(chunk);
      sent += 1024;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const answer = await answered;
    expect(answer.status).toBe(400);
    expect(problemIn(answer)).toMatchObject({ code: 'MALFORMED_REQUEST', detail: expect.stringMatching(/larger than 16 KiB/), requestId });
    expect(sent).toBeLessThan(10 * 1024 * 1024);
    expectedOnOps.set(requestId, 'MALFORMED_REQUEST');
    expect(await client.closed).toEqual({ byGateway: true });
    expect(client.unread).toBe('');
  });

  it('a body shorter than its Content-Length is cut off by the request timeout with 408', async () => {
    const client = await RawClient.open();
    const requestId = nextRequestId();
    const body = Buffer.from(JSON.stringify(honestBody()));
    client.write(signedHead(body, requestId, { 'content-length': String(body.length + 100) }));
    client.write(body);
    const answer = await client.answer();
    expect(answer.status).toBe(408);
    expect(problemIn(answer)).toMatchObject({ type: 'about:blank', title: 'Request Timeout', detail: 'the request body did not arrive within 3000 ms', requestId: null });
    expect(await client.closed).toEqual({ byGateway: true });
    neverRecorded.push(requestId);
    await expectHonestServed();
  });
});

describe('deeply nested JSON (signed, so it reaches the parser)', () => {
  const objectNest = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

  it.each<[string, () => Buffer, RegExp]>([
    ['16,000 unclosed [', () => Buffer.from('['.repeat(16_000)), /not JSON/],
    ['8,000 balanced [ ]', () => Buffer.from(`${'['.repeat(8000)}${']'.repeat(8000)}`), /must be a JSON object/],
    ['a field nested 2,500 objects deep', () => Buffer.from(`{"nationalId":"1000000008","mobile":"0512345678","channel":"INTERNET_BANKING","customerReference":${objectNest(2500)}}`), /customerReference must be a string/],
    ['100,000 [ (over the size limit)', () => Buffer.from('['.repeat(100_000)), /larger than 16 KiB/],
  ])('%s is 400 MALFORMED_REQUEST and the gateway lives on', async (_name, rawBody, detail) => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, rawBody: rawBody() });
    expectMalformed(answer, detail);
    expect(answer.json.requestId).toBe(requestId);
    expectedOnOps.set(requestId, 'MALFORMED_REQUEST');
    expect(gatewayAlive()).toBe(true);
    await expectHonestServed();
  });
});

describe('invalid UTF-8 (signed)', () => {
  const prefix = Buffer.from('{"nationalId":"1000000008","mobile":"0512345678","channel":"INTERNET_BANKING","customerReference":"');
  const suffix = Buffer.from('"}');
  const at = prefix.length;

  it.each<[string, number[], RegExp]>([
    ['a byte that is never UTF-8 (0xFF)', [0x61, 0xff, 0x62], new RegExp(`offset ${at + 1}`)],
    ['a continuation byte with no lead (0x80)', [0x80], new RegExp(`offset ${at}`)],
    ['an overlong "/" (0xC0 0xAF)', [0xc0, 0xaf], new RegExp(`offset ${at}`)],
    ['a UTF-16 surrogate (0xED 0xA0 0x80)', [0x61, 0x62, 0xed, 0xa0, 0x80], new RegExp(`offset ${at + 2}`)],
    ['a sequence cut short (0xE2 0x82 then ")', [0xe2, 0x82], new RegExp(`offset ${at}`)],
  ])('%s is 400 MALFORMED_REQUEST naming where', async (_name, bytes, offset) => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, rawBody: Buffer.concat([prefix, Buffer.from(bytes), suffix]) });
    expectMalformed(answer, /not valid UTF-8/);
    expect(answer.json.detail).toMatch(offset);
    expectedOnOps.set(requestId, 'MALFORMED_REQUEST');
  });
});

describe('headers over 8 KiB', () => {
  async function sendHead(extra: Record<string, string>): Promise<{ answer: RawAnswer; client: RawClient; requestId: string }> {
    const client = await RawClient.open();
    const requestId = nextRequestId();
    const body = Buffer.from(JSON.stringify(honestBody()));
    client.write(signedHead(body, requestId, { 'content-length': String(body.length), ...extra }));
    client.write(body);
    return { answer: await client.answer(), client, requestId };
  }

  it.each<[string, Record<string, string>]>([
    ['one header of 9,000 bytes', { 'x-padding': 'p'.repeat(9000) }],
    ['100 headers of 100 bytes', Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`x-padding-${i}`, 'p'.repeat(100)]))],
  ])('%s is 431 with a problem body, and the connection is closed', async (_name, extra) => {
    const { answer, client, requestId } = await sendHead(extra);
    neverRecorded.push(requestId);
    expect(answer.status).toBe(431);
    expect(problemIn(answer)).toMatchObject({ type: 'about:blank', title: 'Request Header Fields Too Large', status: 431, detail: expect.stringMatching(/8192 bytes/) });
    expect(await client.closed).toEqual({ byGateway: true });
  });

  it('bytes that are not HTTP are 400 MALFORMED_REQUEST, and the connection is closed', async () => {
    const client = await RawClient.open();
    client.write('HELLO GATEWAY\r\n\r\n');
    const answer = await client.answer();
    expect(answer.status).toBe(400);
    const problem = problemIn(answer);
    expectContract('schemas/http/problem.schema.json', problem);
    expect(problem).toMatchObject({ code: 'MALFORMED_REQUEST', detail: expect.stringMatching(/not valid HTTP\/1\.1/) });
    expect(await client.closed).toEqual({ byGateway: true });
  });

  it('headers of about 7 KiB are served', async () => {
    const { answer, client } = await sendHead({ 'x-padding': 'p'.repeat(HEADER_LIMIT - 1200) });
    expect(answer.status).toBe(200);
    client.destroy();
  });
});

describe('a flood of forged signatures', () => {
  it('10,000 forged requests are each 401 SIGNATURE_INVALID; memory stays bounded; an honest bank is served during and after', async () => {
    // Signed with a key that is not TSTA's, under the kid of TSTA's registered certificate:
    // every check passes up to the signature itself.
    const forger: BankSigningIdentity = { bankCode: 'TSTA', keyId: bank().keyId, privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey };
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    const send = (requestId: string, body: Buffer) =>
      new Promise<GatewayAnswer>((resolve, reject) => {
        const headers = { 'content-type': 'application/json', 'content-length': String(body.length), ...signBankRequest(forger, { method: 'POST', path: PATH, requestId, body }) };
        const outgoing = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: PATH, agent, headers }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            GatewayAnswer.read({ status: response.statusCode!, headers: response.headers as Record<string, string>, body: Buffer.concat(chunks) }, env.pki.gatewayPublicKey, env.pki.gatewayKeyId, 'POST', PATH).then(resolve, reject),
          );
        });
        outgoing.on('error', reject);
        outgoing.end(body);
      });

    // 200 forged requests first, so the baseline includes what any traffic costs once (JIT, pools, buffers).
    for (let i = 0; i < 200; i++) await send(nextRequestId(), Buffer.from(JSON.stringify(honestBody())));
    const rssBefore = gatewayRss();

    const total = 10_000;
    const outcomes = new Map<string, number>();
    const sample = nextRequestId();
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const index = next++;
        const requestId = index === 0 ? sample : `forged-${process.pid}-${index}`;
        const answer = await send(requestId, Buffer.from(JSON.stringify(honestBody())));
        const key = `${answer.status} ${answer.json.code}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
    };
    const honestDuring = (async () => {
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        await expectHonestServed();
      }
    })();
    await Promise.all([...Array.from({ length: 32 }, worker), honestDuring]);
    const rssAfter = gatewayRss();
    agent.destroy();

    expect(Object.fromEntries(outcomes)).toEqual({ '401 SIGNATURE_INVALID': total });
    expect(rssAfter - rssBefore).toBeLessThan(150 * 1024 * 1024);
    expect(gatewayAlive()).toBe(true);
    await expectHonestServed();
    // The forged requests are activation requests: each is a handled request (ERROR) on the ops stream.
    expectedOnOps.set(sample, 'SIGNATURE_INVALID');
  }, 120_000);
});

describe('slow and silent clients', () => {
  it('50 slowloris clients (headers a byte at a time) are cut off with 408 while honest clients are served', async () => {
    const slow = await Promise.all(Array.from({ length: 50 }, () => RawClient.open()));
    const requestId = nextRequestId();
    neverRecorded.push(requestId);
    // Headers that would be a complete request, dripped so slowly that they never finish; a byte
    // every 250 ms keeps the connection busy, so only a deadline on the whole headers can end it.
    const head = signedHead(Buffer.from('{}'), requestId, { 'content-length': '2' });
    let offset = 0;
    const drip = setInterval(() => {
      for (const client of slow) client.write(head[offset]);
      offset++;
    }, 250);
    try {
      for (let i = 0; i < 3; i++) await expectHonestServed();
      const answers = await Promise.all(slow.map((client) => client.answer()));
      const closes = await Promise.all(slow.map((client) => client.closed));
      expect(offset).toBeLessThan(head.length);
      expect(new Set(answers.map((answer) => answer.status))).toEqual(new Set([408]));
      expect(problemIn(answers[0])).toMatchObject({ type: 'about:blank', detail: 'the request line and headers did not arrive within 1500 ms' });
      expect(closes.every((close) => close.byGateway)).toBe(true);
    } finally {
      clearInterval(drip);
      for (const client of slow) client.destroy();
    }
    await expectHonestServed();
  });

  it('200 connections that send nothing are closed by the gateway while honest clients are served', async () => {
    const silent = await Promise.all(Array.from({ length: 200 }, () => RawClient.open()));
    try {
      for (let i = 0; i < 3; i++) await expectHonestServed();
      const closes = await Promise.all(silent.map((client) => client.closed));
      expect(closes.every((close) => close.byGateway)).toBe(true);
    } finally {
      for (const client of silent) client.destroy();
    }
    await expectHonestServed();
  });
});

describe('afterwards', () => {
  it('refused activation requests are on the ops stream, what was cut off before a request was read is not, and nothing went wrong inside the gateway', async () => {
    await env.settled(reader);
    for (const [requestId, errorCode] of expectedOnOps) {
      expect({ requestId, handled: opsFor(requestId).map((r) => [r.event.data.outcome, r.event.data.errorCode]) }).toEqual({ requestId, handled: [['ERROR', errorCode]] });
    }
    for (const requestId of neverRecorded) expect({ requestId, handled: opsFor(requestId) }).toEqual({ requestId, handled: [] });
    expect(env.logs.filter((line) => /"level":"error"/.test(line))).toEqual([]);
    expect(gatewayAlive()).toBe(true);
  });
});
