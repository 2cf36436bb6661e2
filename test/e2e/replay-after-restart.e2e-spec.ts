import { frame, IsoFields, parseTlv } from '../../libs/iso8583';
import { AtmSwitchClient, matchKey } from '../../libs/iso8583/atm-switch-client';
import { signBankRequest } from '../../libs/jws/request-signing';
import { TOPICS } from '../../src/kafka/topics';
import { newMobile, newNationalId } from '../support/identities';
import { GatewayAnswer, TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * Issue 5: the replay cache is the store, so it survives a restart. A request
 * captured on the wire and sent again, byte for byte, after the gateway has
 * restarted gets the answer stored the first time; nothing is decided again.
 * The registrations change in between, so a second decision would differ.
 */
const TSTA_KEY = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
const PATH = '/v1/activations';

let env: TestEnvironment;
let reader: TopicReader;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations, TOPICS.ops]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

/** A request as a bank put it on the wire: exact body bytes and headers, signed once. */
interface CapturedRequest {
  requestId: string;
  body: Buffer;
  headers: Record<string, string>;
}

function capture(body: Record<string, unknown>): CapturedRequest {
  const requestId = `replay-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const bytes = Buffer.from(JSON.stringify(body));
  const signed = signBankRequest(env.pki.tsta.es256, { method: 'POST', path: PATH, requestId, body: bytes });
  return { requestId, body: bytes, headers: { 'content-type': 'application/json', ...signed } };
}

/** Sends the captured bytes and headers as they are, to whichever gateway is running now. */
async function resend(captured: CapturedRequest, body: Buffer = captured.body): Promise<GatewayAnswer> {
  const response = await fetch(env.baseUrl + PATH, { method: 'POST', headers: captured.headers, body });
  const answer = { status: response.status, headers: Object.fromEntries(response.headers), body: Buffer.from(await response.arrayBuffer()) };
  return GatewayAnswer.read(answer, env.pki.gatewayPublicKey, env.pki.gatewayKeyId, 'POST', PATH);
}

/** Sends raw frame bytes on a new connection and returns the answer matched on 11 and 37. */
async function sendFrame(raw: Buffer, fields: IsoFields) {
  const client = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_KEY);
  try {
    const answer = client.awaitAnswer(matchKey(fields));
    client.writeRaw(frame(raw));
    return await answer;
  } finally {
    await client.close();
  }
}

it.each([
  ['stopped (SIGTERM) and started again', () => env.stopGateway()],
  ['killed (SIGKILL) and started again', () => env.killGateway()],
])('a captured request re-sent after the gateway was %s gets the stored answer, on both channels; decided once; a changed body is refused', async (_how, stop: () => Promise<unknown>) => {
  // Signed JSON: an ACCEPTED decision, captured.
  const jsonPerson = { nationalId: newNationalId(), mobile: newMobile() };
  await env.register(jsonPerson.nationalId, jsonPerson.mobile, 'PENDING_ACTIVATION');
  const json = capture({ ...jsonPerson, channel: 'INTERNET_BANKING' });
  const first = await resend(json);
  expect(first.status).toBe(200);
  expect(first.json).toMatchObject({ requestId: json.requestId, status: 'ACCEPTED', reason: null });
  expect(first.headers['idempotent-replayed']).toBeUndefined();

  // ISO 8583: an accepted 0200, the exact frame captured.
  const atmPerson = { nationalId: newNationalId(), mobile: newMobile() };
  await env.register(atmPerson.nationalId, atmPerson.mobile, 'PENDING_ACTIVATION');
  const stan = String(100000 + Math.floor(Math.random() * 800000));
  const fields: IsoFields = {
    0: '0200', 2: '4111111111111111', 3: '910000', 7: '1123101500', 11: stan, 12: '101500', 13: '1123', 32: '111111', 37: `RPL${stan}000`, 41: 'RPLATM01',
    48: `NI010${atmPerson.nationalId}MN013${atmPerson.mobile}`,
  };
  const switchClient = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_KEY);
  const frameBytes = switchClient.pack(fields);
  await switchClient.close();
  const firstIso = await sendFrame(frameBytes, fields);
  expect({ code: firstIso.fields[39], mac: firstIso.macValid }).toEqual({ code: '00', mac: true });
  const atmActivationId = parseTlv(firstIso.fields[48]).get('AI');

  // Decided again, both would now be ALREADY_ACTIVE (N2).
  await env.register(jsonPerson.nationalId, jsonPerson.mobile, 'ACTIVE');
  await env.register(atmPerson.nationalId, atmPerson.mobile, 'ACTIVE');

  await stop();
  await env.startGateway();

  // The same bytes and headers (same JWS, same iat, still inside the 300 s window): the stored answer.
  const replayed = await resend(json);
  expect(replayed.status).toBe(200);
  expect(replayed.headers['idempotent-replayed']).toBe('true');
  expect(replayed.text).toBe(first.text);
  expect(replayed.json).toMatchObject({ activationId: first.json.activationId, status: 'ACCEPTED', decidedAt: first.json.decidedAt });

  // The same frame on a new connection: the original 0210, byte for byte (same 38, same activation id in 48, same MAC).
  const replayedIso = await sendFrame(frameBytes, fields);
  expect(replayedIso.raw.equals(firstIso.raw)).toBe(true);
  expect({ 38: replayedIso.fields[38], 39: replayedIso.fields[39], ai: parseTlv(replayedIso.fields[48]).get('AI') }).toEqual({ 38: firstIso.fields[38], 39: '00', ai: atmActivationId });

  // The captured request with its body changed after signing: refused, whatever the store holds.
  const changedBody = Buffer.from(json.body.toString('utf8').replace('INTERNET_BANKING', 'PHONE_BANKING'));
  const tampered = await resend(json, changedBody);
  expect({ status: tampered.status, code: tampered.json.code }).toEqual({ status: 401, code: 'SIGNATURE_INVALID' });
  // The captured frame with field 48 changed and the old MAC: 63, the MAC does not cover it.
  const changedFrame = Buffer.from(frameBytes.toString('latin1').replace(atmPerson.mobile, newMobile()), 'latin1');
  expect(changedFrame.equals(frameBytes)).toBe(false);
  const tamperedIso = await sendFrame(changedFrame, fields);
  expect(tamperedIso.fields[39]).toBe('63');

  // One row each, unchanged, and one activation event each.
  const rows = await env.database.query(`SELECT request_id, activation_id, status, channel FROM activation_request WHERE national_id = ANY($1) ORDER BY channel`, [
    [jsonPerson.nationalId, atmPerson.nationalId],
  ]);
  expect(rows).toEqual([
    { request_id: `111111:${fields[7]}:${fields[11]}:${fields[37]}:${fields[41]}`, activation_id: atmActivationId, status: 'ACCEPTED', channel: 'ATM' },
    { request_id: json.requestId, activation_id: first.json.activationId, status: 'ACCEPTED', channel: 'INTERNET_BANKING' },
  ]);
  await env.settled(reader);
  const decided = reader.on(TOPICS.activations).filter((r) => [jsonPerson.nationalId, atmPerson.nationalId].includes(r.event.data.nationalId as string));
  expect(decided.map((r) => [r.event.type, r.event.data.activationId]).sort()).toEqual(
    [
      ['sa.absher.activation.accepted', atmActivationId],
      ['sa.absher.activation.accepted', first.json.activationId],
    ].sort(),
  );
  // The replays are on the ops stream as replays of the stored decisions (written within 200 ms of answering).
  const activationIds = [atmActivationId, first.json.activationId];
  const isReplay = (r: { topic: string; event: { data: Record<string, unknown> } }) =>
    r.topic === TOPICS.ops && r.event.data.replayed === true && activationIds.includes(r.event.data.activationId as string);
  await reader.waitFor((records) => records.filter(isReplay).length >= 2, 'two replayed request-handled events');
  await env.settled(reader);
  const replays = reader.records.filter(isReplay);
  expect(replays.map((r) => [r.event.data.channel, r.event.data.activationId, r.event.data.outcome]).sort()).toEqual(
    [
      ['ATM', atmActivationId, 'ACCEPTED'],
      ['INTERNET_BANKING', first.json.activationId, 'ACCEPTED'],
    ].sort(),
  );
});
