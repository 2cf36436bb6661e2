import { readFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { frame, FrameDecoder, IsoFields, parseTlv, retailMac, unpackMessage } from '../../libs/iso8583';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { atmActivation, TSTA_MAC_KEY } from '../support/atm-requests';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';

/**
 * Connection limits of the ISO 8583 listener (issue 10, items 5 and 6): the
 * in-flight cap applied to every frame of one read, the connection-count
 * limits, the unauthenticated timeout, and half-closed switches answered.
 * Each test checks that an honest switch is served meanwhile.
 */
const IN_FLIGHT_CAP = 64; // MAX_IN_FLIGHT_PER_CONNECTION in the listener
const UNAUTHENTICATED_TIMEOUT_MS = 1500;

let env: TestEnvironment;
/** The honest switch: one connection from 127.0.0.1, authenticated by its first 0200, open through every test. */
let honest: AtmSwitchClient;

beforeAll(async () => {
  env = await TestEnvironment.start({
    LOG_LEVEL: 'debug',
    ISO8583_MAX_CONNECTIONS: '5',
    ISO8583_MAX_CONNECTIONS_PER_ADDRESS: '3',
    ISO8583_UNAUTHENTICATED_TIMEOUT_MS: String(UNAUTHENTICATED_TIMEOUT_MS),
  });
  honest = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY);
  await expectHonestServed();
});

/** Every raw switch a test opened is closed after it, passed or failed, so the next starts with the honest one alone. */
const opened: RawSwitch[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => (s.isClosed ? s.closed : s.close())));
  await sleep(200); // the gateway's side of the closes
});

afterAll(async () => {
  await honest?.close();
  await env?.stop();
});

function customer() {
  return { nationalId: newNationalId(), mobile: newMobile() };
}

/** A 0200 on the honest connection is answered with a verified MAC (25: nobody registered). */
async function expectHonestServed(): Promise<void> {
  const answer = await honest.request(atmActivation(customer()));
  expect({ code: answer.fields[39], mac: answer.macValid }).toEqual({ code: '25', mac: true });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A switch on a raw socket: from any loopback address, its write side under the test's control. */
class RawSwitch {
  readonly answers: IsoFields[] = [];
  readonly rawAnswers: Buffer[] = [];
  readonly closed: Promise<number>;
  /** Set when the gateway ended its side (FIN). */
  ended = false;
  private readonly decoder = new FrameDecoder(65535);
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const raw of this.decoder.push(chunk)) {
        this.rawAnswers.push(raw);
        this.answers.push(unpackMessage(raw));
      }
      for (const waiter of this.waiters) waiter();
    });
    socket.on('end', () => (this.ended = true));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve(Date.now())));
  }

  static connect(localAddress = '127.0.0.1'): Promise<RawSwitch> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: env.isoPort, localAddress }, () => {
        const opening = new RawSwitch(socket);
        opened.push(opening);
        resolve(opening);
      });
      socket.once('error', reject);
    });
  }

  get localPort(): number {
    return this.socket.localPort!;
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.closed;
  }

  send(fields: IsoFields): void {
    this.socket.write(frame(honest.pack(fields)));
  }

  /** Resolves once `count` answers have arrived (rejects after `timeoutMs`). */
  async waitForAnswers(count: number, timeoutMs = 15_000): Promise<IsoFields[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length < count) {
      if (Date.now() > deadline || this.isClosed) throw new Error(`${this.answers.length} of ${count} answers ${this.isClosed ? 'before the connection closed' : `within ${timeoutMs} ms`}`);
      await Promise.race([new Promise<void>((resolve) => this.waiters.push(resolve)), sleep(100)]);
      this.waiters = [];
    }
    return this.answers;
  }

  /** A 0200 on this connection, answered 25 with a verified MAC: the connection is served (and authenticated). */
  async activate(): Promise<void> {
    const before = this.answers.length;
    this.send(atmActivation(customer()));
    const [answer] = (await this.waitForAnswers(before + 1)).slice(before);
    expect(answer[39]).toBe('25');
  }

  close(): Promise<number> {
    this.socket.end();
    return this.closed;
  }
}

function echo(stan: string): IsoFields {
  return { 0: '0800', 7: '1123101500', 11: stan, 70: '301' };
}

/** Waits for a log line (they come from the gateway's stdout, a little after what they describe). */
async function waitForLog(match: (entry: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<void> {
  await waitForLogs((entries) => entries.some(match), timeoutMs);
}

/** Waits until the log lines so far, parsed once per look, satisfy `done`. */
async function waitForLogs(done: (entries: Array<Record<string, unknown>>) => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done(logEntries())) {
    if (Date.now() > deadline) throw new Error('log lines not written');
    await sleep(50);
  }
}

function logEntries(): Array<Record<string, unknown>> {
  return env.logs.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** The gateway's name for the connection whose switch side is `localPort` (from its "connected" debug line). */
/** The latest connection from this port: an earlier test's connection may have had the same ephemeral port. */
function connectionOf(localPort: number): string {
  const entry = [...logEntries()].reverse().find((e) => e.message === 'ATM switch connected' && String(e.peer).endsWith(`:${localPort}`));
  if (!entry) throw new Error(`no connection from port ${localPort} in the log`);
  return String(entry.connection);
}

function residentMemoryBytes(): number {
  const status = readFileSync(`/proc/${env.gateway!.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

it('the number of connections is capped, in total and per address; extra ones are closed at once, the others served', async () => {
  // The honest switch holds one of 127.0.0.1's three.
  const local = [await RawSwitch.connect(), await RawSwitch.connect()];
  for (const s of local) await s.activate();
  const overAddress = await RawSwitch.connect();
  overAddress.send(echo('100001'));
  const openedAt = Date.now();
  const overAddressClosedAt = await overAddress.closed;
  expect(overAddressClosedAt - openedAt).toBeLessThan(UNAUTHENTICATED_TIMEOUT_MS);
  expect(overAddress.answers).toEqual([]);
  await waitForLog((e) => e.level === 'warn' && e.limit === 'ISO8583_MAX_CONNECTIONS_PER_ADDRESS');

  // Other addresses fill the total of 5; a sixth connection is closed, whatever its address.
  const others = [await RawSwitch.connect('127.0.0.2'), await RawSwitch.connect('127.0.0.3')];
  for (const s of others) await s.activate();
  const overTotal = await RawSwitch.connect('127.0.0.4');
  overTotal.send(echo('100002'));
  const overTotalOpenedAt = Date.now();
  expect((await overTotal.closed) - overTotalOpenedAt).toBeLessThan(UNAUTHENTICATED_TIMEOUT_MS);
  expect(overTotal.answers).toEqual([]);

  // Those already open keep being served.
  await expectHonestServed();
  for (const s of [...local, ...others]) {
    expect(s.isClosed).toBe(false);
    await s.activate();
  }

  // A connection closed frees its place.
  await others[1].close();
  await sleep(200); // the gateway's side of the close
  const later = await RawSwitch.connect('127.0.0.4');
  await later.activate();
});

it('1,000 0200 frames in one write are all answered, never more than the in-flight cap at once, memory bounded', async () => {
  const requests = Array.from({ length: 1000 }, () => atmActivation(customer()));
  // Packed (1,000 MACs) before connecting: the connection's unauthenticated clock starts when it opens.
  const bytes = Buffer.concat(requests.map((request) => frame(honest.pack(request))));
  const memoryBefore = residentMemoryBytes();
  const flood = await RawSwitch.connect();
  flood.socket.write(bytes);
  // The honest switch is answered while the flood is worked through.
  await expectHonestServed();
  const answers = await flood.waitForAnswers(1000, 120_000);
  const memoryAfter = residentMemoryBytes();
  expect(answers).toHaveLength(1000);
  expect(new Set(answers.map((a) => `${a[11]}/${a[37]}`))).toEqual(new Set(requests.map((r) => `${r[11]}/${r[37]}`)));
  expect(answers.every((a) => a[0] === '0210' && a[39] === '25')).toBe(true);

  // The gateway logs each request as it starts on it and each answer as it is built: replaying those
  // lines (written in order by one process) gives a lower bound of what was in flight at every moment.
  const connection = connectionOf(flood.localPort);
  // 2,000 debug lines reach stdout well after the answers when the machine is busy: give them time.
  await waitForLogs((entries) => entries.filter((e) => e.connection === connection && e.message === 'iso response').length >= 1000, 60_000);
  let inFlight = 0;
  let most = 0;
  let started = 0;
  for (const entry of logEntries()) {
    if (entry.connection !== connection) continue;
    if (entry.message === 'iso request') {
      started++;
      most = Math.max(most, ++inFlight);
    }
    if (entry.message === 'iso response') inFlight--;
  }
  expect(started).toBe(1000);
  // Reaches the cap (the frames of one read wait their turn)…
  expect(most).toBe(IN_FLIGHT_CAP);
  expect(logEntries().some((e) => e.connection === connection && e.message === 'ATM connection at its in-flight cap; reading paused')).toBe(true);
  // …and never goes past it (1,000 frames dispatched at once would show hundreds here).
  expect(most).toBeLessThanOrEqual(IN_FLIGHT_CAP);
  // Nothing of the flood is kept: a few tens of MB at most, not per frame held.
  expect(memoryAfter - memoryBefore).toBeLessThan(100 * 1024 * 1024);
  console.log(`flood: ${answers.length} answers; at most ${most} in flight; RSS ${Math.round(memoryBefore / 2 ** 20)} -> ${Math.round(memoryAfter / 2 ** 20)} MB`);

  await expectHonestServed();
}, 180_000);

it('a connection that only echoes is closed after the unauthenticated timeout; one that sent a MAC-verified 0200 stays', async () => {
  const echoOnly = await RawSwitch.connect();
  const wrongMac = await RawSwitch.connect();
  const verified = await RawSwitch.connect('127.0.0.2');
  const openedAt = Date.now();
  await verified.activate();
  // A 0200 whose MAC does not verify proves nothing either.
  const forged = honest.pack(atmActivation(customer()));
  forged[forged.length - 1] ^= 0xff;
  wrongMac.socket.write(frame(forged));

  let echoes = 0;
  while (!echoOnly.isClosed && Date.now() - openedAt < UNAUTHENTICATED_TIMEOUT_MS + 2000) {
    echoOnly.send(echo(String(200000 + ++echoes)));
    verified.send(echo(String(300000 + echoes)));
    await sleep(250);
  }
  const closedAt = await echoOnly.closed;
  // Its echoes were answered while it lasted, and did not keep it.
  expect(echoOnly.answers.length).toBeGreaterThan(0);
  expect(echoOnly.answers.every((a) => a[0] === '0810' && a[39] === '00')).toBe(true);
  expect(closedAt - openedAt).toBeGreaterThanOrEqual(UNAUTHENTICATED_TIMEOUT_MS - 100);
  expect(closedAt - openedAt).toBeLessThan(UNAUTHENTICATED_TIMEOUT_MS + 1500);
  await wrongMac.closed;
  expect(wrongMac.answers.map((a) => a[39])).toEqual(['63']);
  await waitForLogs((entries) => entries.filter((e) => e.message === 'ATM switch connection sent no MAC-verified message in time; closing it').length >= 2);

  // Well past the timeout, the verified connection and the honest switch are still served.
  await sleep(500);
  expect(verified.isClosed).toBe(false);
  await verified.activate();
  await expectHonestServed();
}, 30_000);

it('a switch that shuts its write side right after its 0200s still gets every 0210, with the stored decision', async () => {
  const registered = customer();
  await env.register(registered.nationalId, registered.mobile, 'PENDING_ACTIVATION');
  const requests = [atmActivation(registered), atmActivation(customer()), atmActivation(customer())];
  const halfClosed = await RawSwitch.connect();
  halfClosed.socket.end(Buffer.concat(requests.map((request) => frame(honest.pack(request)))));
  await expectHonestServed();
  await halfClosed.closed;
  expect(halfClosed.ended).toBe(true); // the gateway closed its side after answering, not reset it
  expect(halfClosed.answers).toHaveLength(3);

  for (const [index, request] of requests.entries()) {
    const position = halfClosed.answers.findIndex((a) => a[11] === request[11] && a[37] === request[37]);
    expect(position).toBeGreaterThanOrEqual(0);
    const answer = halfClosed.answers[position];
    const raw = halfClosed.rawAnswers[position];
    expect(retailMac(TSTA_MAC_KEY, raw.subarray(0, raw.length - 8)).toString('hex')).toBe(answer[64]);
    const [row] = await env.database.query<{ activation_id: string; status: string }>(`SELECT activation_id, status FROM activation_request WHERE stan = $1 AND rrn = $2`, [request[11], request[37]]);
    if (index === 0) {
      expect({ code: answer[39], status: row.status }).toEqual({ code: '00', status: 'ACCEPTED' });
      expect(parseTlv(answer[48]).get('AI')).toBe(row.activation_id);
    } else {
      expect({ code: answer[39], status: row.status }).toEqual({ code: '25', status: 'REJECTED' });
    }
  }
  await expectHonestServed();
});
