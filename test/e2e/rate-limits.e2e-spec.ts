import { IsoFields } from '../../libs/iso8583';
import { AtmAnswer, AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { TOPICS } from '../../src/kafka/topics';
import { atmActivation, atmRequestId, nextStan, TEST_PAN, TSTA_MAC_KEY } from '../support/atm-requests';
import { expectContract, expectEventContract } from '../support/contracts';
import { newMobile, newNationalId } from '../support/identities';
import { GatewayAnswer, TestEnvironment } from '../support/test-environment';
import { TSTR_MAC_KEY } from '../support/test-pki';
import { TopicReader } from '../support/topic-reader';

/**
 * Issue 5: a bank's `rateLimitPerSecond` from BANKS_FILE, on both channels.
 * TSTR may send 2 requests a second, over signed JSON and ISO 8583 alike;
 * TSTA (10,000 a second) sends at the same time and must never be refused.
 */
const TSTR_KEY = Buffer.from(TSTR_MAC_KEY, 'hex');
const TSTR_RATE = 2;

let env: TestEnvironment;
let reader: TopicReader;
let tstaAtm: AtmSwitchClient;
let tstrAtm: AtmSwitchClient;
let sequence = 0;
const nextRequestId = (prefix: string) => `${prefix}-${Date.now()}-${++sequence}`;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations, TOPICS.ops]);
  tstaAtm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY);
  tstrAtm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTR_KEY);
});

afterAll(async () => {
  await tstaAtm?.close();
  await tstrAtm?.close();
  await reader?.stop();
  await env?.stop();
});

const activation0200 = (acquirer: string, nationalId: string, mobile: string): IsoFields => atmActivation({ nationalId, mobile }, { acquirer, rrnPrefix: 'RTL', terminal: 'RTLATM01' });

async function sendJson(identity = env.pki.tstr, body: Record<string, unknown> = { nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' }) {
  const requestId = nextRequestId(identity.bankCode.toLowerCase());
  return { requestId, answer: await env.send(identity, { requestId, body }) };
}

async function sendAtm(client: AtmSwitchClient, request: IsoFields) {
  return { request, requestId: atmRequestId(request), answer: await client.request(request) };
}

function expectEcho(answer: AtmAnswer, request: IsoFields) {
  expect(answer.fields[0]).toBe('0210');
  for (const field of [2, 3, 7, 11, 12, 13, 32, 37, 41]) expect({ field, value: answer.fields[field] }).toEqual({ field, value: request[field] });
}

/**
 * Everything recorded so far is on the ops topic and read. The ops stream
 * buffers errors and writes them every 200 ms, so first a marker error is
 * sent and awaited: the buffer is written in order, so once the marker is
 * stored every earlier refusal is too, and settled() then waits for all of
 * it to be read.
 */
async function opsSettled(): Promise<void> {
  const marker = nextRequestId('marker');
  const answer = await env.send(env.pki.tsta.es256, {
    requestId: marker,
    body: { nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' },
    mutateBody: (body) => Buffer.concat([body, Buffer.from(' ')]),
  });
  expect(answer.json.code).toBe('SIGNATURE_INVALID');
  await reader.waitFor((records) => records.some((r) => r.topic === TOPICS.ops && r.event.data.requestId === marker), 'the marker on the ops topic');
  await env.settled(reader);
}

/** RATE_LIMITED request-handled events, once each (by CloudEvent id). */
function rateLimitedEvents() {
  const events = reader.on(TOPICS.ops).filter((r) => r.event.type === 'sa.absher.gateway.request-handled' && r.event.data.errorCode === 'RATE_LIMITED');
  return [...new Map(events.map((r) => [r.event.id, r])).values()];
}

it('one budget per bank across HTTP and ISO 8583: refusals are 429 and 91, neither decided nor stored, each on the ops stream; another bank is never refused; served again after a second', async () => {
  // TSTA's customers are registered, so anything but 200 ACCEPTED / 00 for them would be a refusal.
  const tstaPeople = Array.from({ length: 8 }, () => ({ nationalId: newNationalId(), mobile: newMobile() }));
  for (const person of tstaPeople) await env.register(person.nationalId, person.mobile, 'PENDING_ACTIVATION');

  // One burst: 6 JSON and 6 ISO 8583 activations from TSTR, and TSTA on both channels at the same time.
  const startedAt = performance.now();
  const [tstrJson, tstrIso, tstaJson, tstaIso] = await Promise.all([
    Promise.all(Array.from({ length: 6 }, () => sendJson())),
    Promise.all(Array.from({ length: 6 }, () => sendAtm(tstrAtm, activation0200('333333', newNationalId(), newMobile())))),
    Promise.all(tstaPeople.slice(0, 4).map((person) => sendJson(env.pki.tsta.es256, { ...person, channel: 'INTERNET_BANKING' }))),
    Promise.all(tstaPeople.slice(4).map((person) => sendAtm(tstaAtm, activation0200('111111', person.nationalId, person.mobile)))),
  ]);
  const burstSeconds = (performance.now() - startedAt) / 1000;

  // TSTA: every request decided, none refused.
  for (const { answer } of tstaJson) expect({ status: answer.status, decision: answer.json.status }).toEqual({ status: 200, decision: 'ACCEPTED' });
  for (const { answer, request } of tstaIso) {
    expectEcho(answer, request);
    expect({ code: answer.fields[39], mac: answer.macValid }).toEqual({ code: '00', mac: true });
  }

  // TSTR over JSON: decided (its customers are not registered) or refused with a problem and Retry-After.
  const jsonRefused = tstrJson.filter(({ answer }) => answer.status === 429);
  const jsonServed = tstrJson.filter(({ answer }) => answer.status !== 429);
  for (const { answer } of jsonRefused) {
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(answer.json.code).toBe('RATE_LIMITED');
    expect(answer.headers['retry-after']).toBe('1');
    expectContract('schemas/http/problem.schema.json', answer.json);
  }
  for (const { answer } of jsonServed) expect({ status: answer.status, reason: answer.json.reason }).toEqual({ status: 200, reason: 'NOT_REGISTERED' });

  // TSTR over ISO 8583: 25 when decided, 91 when refused; every answer echoes and carries a valid MAC.
  const isoRefused = tstrIso.filter(({ answer }) => answer.fields[39] === '91');
  const isoServed = tstrIso.filter(({ answer }) => answer.fields[39] !== '91');
  for (const { answer, request } of tstrIso) {
    expectEcho(answer, request);
    expect(answer.macValid).toBe(true);
  }
  for (const { answer } of isoRefused) expect({ 38: answer.fields[38], 48: answer.fields[48] }).toEqual({ 38: undefined, 48: undefined });
  for (const { answer } of isoServed) expect(answer.fields[39]).toBe('25');

  // Both channels were refused, and together they were served no more than one bucket allows:
  // a full bucket (2) plus what it refills while the burst lasts. This bound holds however slow
  // the machine is; with a bucket per channel, 4 would be served before any refill.
  expect(jsonRefused.length).toBeGreaterThanOrEqual(1);
  expect(isoRefused.length).toBeGreaterThanOrEqual(1);
  expect(jsonServed.length + isoServed.length).toBeLessThanOrEqual(Math.floor(TSTR_RATE * (1 + burstSeconds)));

  // Refused: no row, no refused-message row, no activation event; served: exactly one of each.
  const refusedIds = [...jsonRefused.map((r) => r.requestId), ...isoRefused.map((r) => r.requestId)];
  const servedIds = [...jsonServed.map((r) => r.requestId), ...isoServed.map((r) => r.requestId)];
  const stored = await env.database.query<{ request_id: string }>(`SELECT request_id FROM activation_request WHERE bank_code = 'TSTR'`);
  expect(stored.map((row) => row.request_id).sort()).toEqual([...servedIds].sort());
  expect(await env.database.query(`SELECT 1 FROM atm_refused_message WHERE bank_code = 'TSTR'`)).toHaveLength(0);

  // A second later the bucket holds 2 again: one request on each channel is served.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const again = await sendJson();
  expect({ status: again.answer.status, reason: again.answer.json.reason }).toEqual({ status: 200, reason: 'NOT_REGISTERED' });
  const againIso = await sendAtm(tstrAtm, activation0200('333333', newNationalId(), newMobile()));
  expect({ code: againIso.answer.fields[39], mac: againIso.answer.macValid }).toEqual({ code: '25', mac: true });

  await opsSettled();
  const decided = reader.on(TOPICS.activations).filter((r) => r.event.data.bankCode === 'TSTR');
  expect(decided.map((r) => r.event.data.requestId).sort()).toEqual([...servedIds, again.requestId, againIso.requestId].sort());

  // The ops stream: one RATE_LIMITED error per refusal, on the channel it came in on, and none for TSTA.
  const limited = rateLimitedEvents();
  for (const record of limited) expectEventContract(record.topic, record.key, record.event);
  const seen = (channel: string) =>
    limited
      .filter((r) => r.event.data.channel === channel)
      .map((r) => r.event.data.requestId as string)
      .sort();
  expect(seen('INTERNET_BANKING')).toEqual(jsonRefused.map((r) => r.requestId).sort());
  expect(seen('ATM')).toEqual(isoRefused.map((r) => r.requestId).sort());
  expect(limited.every((r) => r.event.data.bankCode === 'TSTR' && r.key === 'TSTR' && r.event.data.outcome === 'ERROR' && r.event.data.activationId === null)).toBe(true);
  expect(refusedIds.length).toBe(limited.length);
});

it('0800 network messages and 0420 reversals are answered while the bank is refused activations', async () => {
  // An accepted TSTR activation, decided once the bucket has refilled, for the reversal to undo.
  const nationalId = newNationalId();
  const mobile = newMobile();
  await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const original = activation0200('333333', nationalId, mobile);
  const decided = await tstrAtm.request(original);
  expect(decided.fields[39]).toBe('00');

  // One write on one connection, handled in order: activations until the bucket is empty, then an
  // echo and the reversal. Those two come after at least one 91, so the bucket was empty for them.
  const drain = Array.from({ length: 5 }, () => activation0200('333333', newNationalId(), newMobile()));
  const echo: IsoFields = { 0: '0800', 7: '1123101600', 11: nextStan(), 32: '333333', 70: '301' };
  const advice: IsoFields = {
    0: '0420',
    2: TEST_PAN,
    3: '910000',
    7: '1123101630',
    11: nextStan(),
    32: '333333',
    37: original[37],
    41: original[41],
    90: `0200${original[11]}${original[7]}${'333333'.padStart(11, '0')}${'0'.repeat(11)}`,
  };
  const answers = await Promise.all([...drain, echo, advice].map((request) => tstrAtm.request(request)));
  const drained = answers.slice(0, drain.length);
  const [echoAnswer, reversal] = answers.slice(drain.length);
  expect(drained.filter((answer) => answer.fields[39] === '91').length).toBeGreaterThanOrEqual(1);
  expect({ mti: echoAnswer.fields[0], code: echoAnswer.fields[39] }).toEqual({ mti: '0810', code: '00' });
  expect({ mti: reversal.fields[0], code: reversal.fields[39], mac: reversal.macValid }).toEqual({ mti: '0430', code: '00', mac: true });

  // The reversal was carried out, not just answered.
  const [row] = await env.database.query(`SELECT status FROM activation_request WHERE bank_code = 'TSTR' AND request_id = $1`, [atmRequestId(original)]);
  expect(row).toEqual({ status: 'REVERSED' });
  await env.settled(reader);
  expect(reader.on(TOPICS.activations).filter((r) => r.event.type === 'sa.absher.activation.reversal-advised' && r.event.data.rrn === original[37])).toHaveLength(1);
});
