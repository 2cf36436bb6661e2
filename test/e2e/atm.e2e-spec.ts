import { IsoFields, parseTlv, frame, packMessage } from '../../libs/iso8583';
import { AtmAnswer, AtmSwitchClient, matchKey } from '../../libs/iso8583/atm-switch-client';
import { TOPICS } from '../../src/kafka/topics';
import { atmRequestId } from '../support/atm-requests';
import { expectEventContract } from '../support/contracts';
import { localSpelling, newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/** Spec section 4 end to end: real TCP to the running gateway, real PostgreSQL, the Kafka broker. */
const TSTA_KEY = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
const TSTB_KEY = Buffer.from('FEDCBA98765432100123456789ABCDEF', 'hex');
const PAN = '4111111111111111';

let env: TestEnvironment;
let reader: TopicReader;
let atm: AtmSwitchClient;
let stanCounter = 100000 + Math.floor(Math.random() * 800000);

beforeAll(async () => {
  env = await TestEnvironment.start({ LOG_LEVEL: 'debug' });
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations, TOPICS.ops]);
  atm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_KEY);
});

afterAll(async () => {
  await atm?.close();
  await reader?.stop();
  await env?.stop();
});

function activation(nationalId: string, mobile: string, overrides: IsoFields = {}): IsoFields {
  const stan = String(++stanCounter).padStart(6, '0');
  return {
    0: '0200',
    2: PAN,
    3: '910000',
    7: '1123101500',
    11: stan,
    12: '101500',
    13: '1123',
    32: '111111',
    37: `RRN${stan}000`,
    41: 'ATM00042',
    48: `NI010${nationalId}MN${String(mobile.length).padStart(3, '0')}${mobile}`,
    ...overrides,
  };
}

/** Field 90 of a reversal naming `request`: original MTI, STAN, field 7, acquirer (zero-padded to 11), forwarding institution. */
function originalElements(request: IsoFields, acquirer = '111111'): string {
  return `0200${request[11]}${request[7]}${acquirer.padStart(11, '0')}${'0'.repeat(11)}`;
}

async function rowsFor(request: IsoFields) {
  return env.database.query(`SELECT * FROM activation_request WHERE stan = $1 AND rrn = $2`, [request[11], request[37]]);
}

function expectEcho(answer: AtmAnswer, request: IsoFields) {
  expect(answer.fields[0]).toBe('0210');
  for (const field of [2, 3, 7, 11, 12, 13, 32, 37, 41]) expect({ field, value: answer.fields[field] }).toEqual({ field, value: request[field] });
}

/** Spec 4.3: a 63 answers a message that proved nothing, so it carries no MAC: no field 64/128, the MAC bit clear. */
function expectNoMac(answer: AtmAnswer) {
  const secondary = (answer.raw[4] & 0x80) !== 0;
  const macBit = secondary ? answer.raw[19] & 0x01 : answer.raw[11] & 0x01;
  expect({ f64: answer.fields[64], f128: answer.fields[128], macBit, macValid: answer.macValid, macExpected: answer.macExpected }).toEqual({
    f64: undefined,
    f128: undefined,
    macBit: 0,
    macValid: null,
    macExpected: false,
  });
}

describe('field 39 for each outcome (spec 4.2)', () => {
  it('00: accepted, with 38, the activation id in 48, a valid MAC; stored and published with terminal, STAN, RRN', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const request = activation(nationalId, localSpelling(mobile));
    const answer = await atm.request(request);
    expectEcho(answer, request);
    expect(answer.fields[39]).toBe('00');
    expect(answer.macValid).toBe(true);
    const activationId = parseTlv(answer.fields[48]).get('AI')!;
    expect(activationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.fields[38]).toHaveLength(6);
    const [row] = await rowsFor(request);
    expect(row).toMatchObject({ activation_id: activationId, channel: 'ATM', status: 'ACCEPTED', terminal_id: 'ATM00042', stan: request[11], rrn: request[37], acquirer_id: '111111', mobile });
    expect(row.pan_hash).toMatch(/^[0-9a-f]{64}$/);
    await env.settled(reader);
    const [event] = reader.on(TOPICS.activations).filter((r) => r.event.data.activationId === activationId);
    expectEventContract(event.topic, event.key, event.event);
    expect(event.event.data).toMatchObject({ channel: 'ATM', outcome: 'ACCEPTED', terminalId: 'ATM00042', stan: request[11], rrn: request[37], bankCode: 'TSTA' });
  });

  it.each([
    ['25', 'NOT_REGISTERED', null],
    ['25', 'NOT_REGISTERED', 'CLOSED'],
    ['N4', 'ACCOUNT_SUSPENDED', 'SUSPENDED'],
    ['N2', 'ALREADY_ACTIVE', 'ACTIVE'],
  ])('%s: %s (registration %s)', async (code, reason, status) => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    if (status) await env.register(nationalId, mobile, status);
    const request = activation(nationalId, mobile);
    const answer = await atm.request(request);
    expect({ code: answer.fields[39], mac: answer.macValid, ai: answer.fields[48] }).toEqual({ code, mac: true, ai: undefined });
    expect((await rowsFor(request))[0]).toMatchObject({ status: 'REJECTED', reason });
  });

  it('N1: mobile mismatch; N3: mobile in use', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    expect((await atm.request(activation(nationalId, newMobile()))).fields[39]).toBe('N1');
    const other = newNationalId('2');
    const shared = newMobile();
    await env.register(other, newMobile(), 'PENDING_ACTIVATION');
    await env.register(newNationalId(), shared, 'ACTIVE');
    await env.register(other, shared, 'PENDING_ACTIVATION');
    expect((await atm.request(activation(other, shared))).fields[39]).toBe('N3');
  });

  it('58: a bank without the ATM channel (decided CHANNEL_NOT_ALLOWED, published); an unknown acquirer (not decided)', async () => {
    const tstb = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTB_KEY);
    try {
      const request = activation(newNationalId(), newMobile(), { 32: '222222' });
      const answer = await tstb.request(request);
      expect({ code: answer.fields[39], mac: answer.macValid }).toEqual({ code: '58', mac: true });
      expect((await rowsFor(request))[0]).toMatchObject({ bank_code: 'TSTB', status: 'REJECTED', reason: 'CHANNEL_NOT_ALLOWED' });
    } finally {
      await tstb.close();
    }
    const unknown = activation(newNationalId(), newMobile(), { 32: '999999' });
    const answer = await atm.request(unknown);
    expect(answer.fields[39]).toBe('58');
    expect(await rowsFor(unknown)).toHaveLength(0);
  });

  it.each([
    ['a national ID failing Luhn', (r: IsoFields) => ({ ...r, 48: 'NI0101000000007MN0100512345678' })],
    ['a landline', (r: IsoFields) => ({ ...r, 48: r[48].replace(/MN.*/, 'MN0100112345678') })],
    ['a broken TLV', (r: IsoFields) => ({ ...r, 48: 'NI0201000000008' })],
    ['field 48 missing', (r: IsoFields) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== '48'))],
  ])('30: %s', async (_name, change) => {
    const request = change(activation(newNationalId(), newMobile())) as IsoFields;
    const answer = await atm.request(request);
    expect({ code: answer.fields[39], mac: answer.macValid }).toEqual({ code: '30', mac: true });
    expect(await rowsFor(request)).toHaveLength(0);
  });

  it('12: an unsupported processing code, and an unsupported MTI', async () => {
    const request = activation(newNationalId(), newMobile(), { 3: '000000' });
    expect((await atm.request(request)).fields[39]).toBe('12');
    const authorisation = await atm.request({ 0: '0100', 7: '1123101500', 11: '777001', 32: '111111', 37: 'RRN777001000' });
    expect(authorisation.fields).toMatchObject({ 0: '0110', 39: '12' });
  });

  it.each(['wrong', 'missing'] as const)('63: MAC %s; recorded as refused, not decided, not published', async (mode) => {
    const nationalId = newNationalId();
    const request = activation(nationalId, newMobile());
    const answer = await atm.request(request, mode);
    expect(answer.fields[39]).toBe('63');
    expectNoMac(answer);
    expect(await rowsFor(request)).toHaveLength(0);
    // Sampled in memory and written within 5 s.
    const refused = await env.waitForRows(`SELECT * FROM atm_refused_message WHERE stan = $1`, [request[11]], 1, 'the refused message');
    expect(refused).toMatchObject([{ response_code: '63', bank_code: 'TSTA', mti: '0200', reason: mode === 'wrong' ? 'MAC does not verify' : 'MAC (field 64) missing' }]);
    await env.settled(reader);
    expect(reader.records.some((r) => r.raw.includes(nationalId))).toBe(false);
  });

  it('91: the store refusing connections; nothing accepted', async () => {
    if (env.database.kind !== 'postgresql') return;
    const request = activation(newNationalId(), newMobile());
    await env.database.admin(`ALTER DATABASE ${env.database.name} ALLOW_CONNECTIONS false`);
    let answer: AtmAnswer;
    try {
      await env.database.admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${env.database.name}' AND pid <> pg_backend_pid()`);
      answer = await atm.request(request);
    } finally {
      await env.database.admin(`ALTER DATABASE ${env.database.name} ALLOW_CONNECTIONS true`);
    }
    expect({ code: answer.fields[39], mac: answer.macValid }).toEqual({ code: '91', mac: true });
    expect(await rowsFor(request)).toHaveLength(0);
  });
});

describe('no authenticated answer to an unproven message (issue 10, spec 4.3)', () => {
  it('an all-zero MAC 0200 and 0420 with chosen 7/11/37/41 get 63 with no MAC; nothing decided or published; an honest 0200 meanwhile gets 00 with a valid MAC', async () => {
    const victimNationalId = newNationalId();
    const victimMobile = newMobile();
    await env.register(victimNationalId, victimMobile, 'PENDING_ACTIVATION');
    // The fields a switch's genuine request will carry, chosen by someone on the path who holds no key.
    const chosen = activation(victimNationalId, localSpelling(victimMobile), { 7: '1127093000', 11: '654321', 37: 'RRN654321VIC', 41: 'ATMVICTM' });
    const forged = packMessage({ ...chosen, 64: '0000000000000000' });
    const advice: IsoFields = { 0: '0420', 2: PAN, 3: '910000', 7: '1127093001', 11: '654322', 32: '111111', 37: chosen[37], 41: chosen[41], 90: originalElements(chosen), 128: '0000000000000000' };
    const honestNationalId = newNationalId();
    const honestMobile = newMobile();
    await env.register(honestNationalId, honestMobile, 'PENDING_ACTIVATION');
    const honest = activation(honestNationalId, honestMobile);

    const [decline, reversal, served] = await Promise.all([
      atm.send(forged, matchKey(chosen)),
      atm.send(packMessage(advice), matchKey(advice)),
      atm.request(honest),
    ]);
    expect({ mti: decline.fields[0], code: decline.fields[39], 7: decline.fields[7], 11: decline.fields[11], 37: decline.fields[37], 41: decline.fields[41] }).toEqual({
      mti: '0210',
      code: '63',
      7: chosen[7],
      11: chosen[11],
      37: chosen[37],
      41: chosen[41],
    });
    expectNoMac(decline);
    expect({ mti: reversal.fields[0], code: reversal.fields[39] }).toEqual({ mti: '0430', code: '63' });
    expectNoMac(reversal);
    expect({ code: served.fields[39], mac: served.macValid }).toEqual({ code: '00', mac: true });

    // Recorded as refused; not decided, not published.
    expect(await rowsFor(chosen)).toHaveLength(0);
    const refused = await env.waitForRows(`SELECT mti, response_code, reason FROM atm_refused_message WHERE rrn = $1 ORDER BY mti`, [chosen[37]], 2, 'the refused messages');
    expect(refused).toEqual([
      { mti: '0200', response_code: '63', reason: 'MAC does not verify' },
      { mti: '0420', response_code: '63', reason: 'MAC does not verify' },
    ]);
    await env.settled(reader);
    expect(reader.records.some((r) => r.raw.includes(victimNationalId))).toBe(false);
    expect(reader.on(TOPICS.activations).filter((r) => r.event.data.rrn === chosen[37])).toHaveLength(0);

    // The switch's genuine request with those fields is then decided as if nothing had happened.
    const genuine = await atm.request(chosen);
    expect({ code: genuine.fields[39], mac: genuine.macValid }).toEqual({ code: '00', mac: true });
  });
});

describe('network management (0800)', () => {
  it.each(['001', '301', '002'])('70 = %s is answered 0810 with 00', async (code) => {
    const answer = await atm.request({ 0: '0800', 7: '1123101500', 11: String(++stanCounter), 70: code });
    expect(answer.fields).toMatchObject({ 0: '0810', 39: '00', 70: code });
  });
});

describe('duplicates and reversals (spec 4.4)', () => {
  it('a repeated 0200 gets the original 0210; nothing decided or published twice', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const request = activation(nationalId, mobile);
    const first = await atm.request(request);
    await env.register(nationalId, mobile, 'ACTIVE'); // would now be N2 if decided again
    const again = await atm.request(request);
    expect(again.raw.equals(first.raw)).toBe(true);
    expect(await rowsFor(request)).toHaveLength(1);
    await env.settled(reader);
    expect(reader.on(TOPICS.activations).filter((r) => r.event.data.stan === request[11] && r.event.data.rrn === request[37])).toHaveLength(1);
  });

  it('0420 for an accepted activation: 0430 with 00, REVERSED, reversal-advised published once (a 0421 repeat adds nothing)', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const request = activation(nationalId, mobile);
    const decided = await atm.request(request);
    expect(decided.fields[39]).toBe('00');
    const original = originalElements(request);
    const advice = (mti: string): IsoFields => ({ 0: mti, 2: PAN, 3: '910000', 7: '1123101530', 11: String(++stanCounter), 32: '111111', 37: request[37], 41: request[41], 90: original });
    const reversal = await atm.request(advice('0420'));
    expect({ mti: reversal.fields[0], code: reversal.fields[39], mac: reversal.macValid, macField: Boolean(reversal.fields[128]) }).toEqual({ mti: '0430', code: '00', mac: true, macField: true });
    const repeat = await atm.request(advice('0421'));
    expect(repeat.fields[39]).toBe('00');
    expect((await rowsFor(request))[0]).toMatchObject({ status: 'REVERSED' });
    await env.settled(reader);
    const reversals = reader.on(TOPICS.activations).filter((r) => r.event.type === 'sa.absher.activation.reversal-advised' && r.event.data.rrn === request[37]);
    expect(reversals).toHaveLength(1);
    expectEventContract(reversals[0].topic, reversals[0].key, reversals[0].event);
    expect(reversals[0].key).toBe(nationalId);
  });

  it('a 0420 applies only to an activation that came from an ATM: one decided over HTTP under the same key (as stored before HTTP ids of that form were refused) is left alone', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const request = activation(nationalId, mobile);
    const httpRequestId = `ib-${Date.now()}-${++stanCounter}`;
    const decided = await env.send(env.pki.tsta.es256, { requestId: httpRequestId, body: { nationalId, mobile, channel: 'INTERNET_BANKING' } });
    expect(decided.json.status).toBe('ACCEPTED');
    const atmKey = atmRequestId(request);
    await env.database.query(`UPDATE activation_request SET request_id = $1 WHERE bank_code = 'TSTA' AND request_id = $2`, [atmKey, httpRequestId]);
    const reversal = await atm.request({ 0: '0420', 2: PAN, 3: '910000', 7: '1123101530', 11: String(++stanCounter), 32: '111111', 37: request[37], 41: request[41], 90: originalElements(request) });
    expect({ mti: reversal.fields[0], code: reversal.fields[39] }).toEqual({ mti: '0430', code: '00' }); // always 00 (spec 4.4)
    const [row] = await env.database.query(`SELECT status, reversed_at FROM activation_request WHERE bank_code = 'TSTA' AND request_id = $1`, [atmKey]);
    expect(row).toEqual({ status: 'ACCEPTED', reversed_at: null });
    const [pending] = await env.database.query(`SELECT count(*)::int AS count FROM atm_pending_reversal WHERE bank_code = 'TSTA' AND request_id = $1`, [atmKey]);
    expect(pending.count).toBe(0);
    await env.settled(reader);
    expect(reader.on(TOPICS.activations).filter((r) => r.event.type === 'sa.absher.activation.reversal-advised' && r.event.data.activationId === decided.json.activationId)).toHaveLength(0);
  });

  it('a reversal after the identity core reported ACTIVATED is still recorded and published', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const request = activation(nationalId, mobile);
    const decided = await atm.request(request);
    const activationId = parseTlv(decided.fields[48]).get('AI')!;
    const sent = await env.publishResult({ activationId, result: 'ACTIVATED', reason: null, completedAt: new Date().toISOString() }, nationalId);
    await env.waitForConsumed('absher-bank-gateway.activation-results', TOPICS.activationResults, sent);
    expect((await rowsFor(request))[0].status).toBe('ACTIVATED');
    const original = originalElements(request);
    const reversal = await atm.request({ 0: '0420', 2: PAN, 3: '910000', 7: '1123101530', 11: String(++stanCounter), 32: '111111', 37: request[37], 41: request[41], 90: original });
    expect(reversal.fields[39]).toBe('00');
    expect((await rowsFor(request))[0].status).toBe('REVERSED');
    await env.settled(reader);
    expect(reader.on(TOPICS.activations).filter((r) => r.event.type === 'sa.absher.activation.reversal-advised' && r.event.data.activationId === activationId)).toHaveLength(1);
  });

  it('a reversal that overtakes its own 0200 is applied when the 0200 is accepted', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const request = activation(nationalId, mobile);
    const original = originalElements(request);
    const early = await atm.request({ 0: '0420', 2: PAN, 3: '910000', 7: '1123101530', 11: String(++stanCounter), 32: '111111', 37: request[37], 41: request[41], 90: original });
    expect(early.fields[39]).toBe('00');
    const late = await atm.request(request);
    expect(late.fields[39]).toBe('00');
    expect((await rowsFor(request))[0].status).toBe('REVERSED');
    await env.settled(reader);
    const events = reader.on(TOPICS.activations).filter((r) => r.event.data.rrn === request[37]).map((r) => r.event.type);
    expect(events).toEqual(['sa.absher.activation.accepted', 'sa.absher.activation.reversal-advised']);
  });

  it('an acquirer sent with leading zeros is the same acquirer for duplicates and reversals', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const request = activation(nationalId, mobile);
    expect((await atm.request(request)).fields[39]).toBe('00');
    const original = originalElements(request, '00111111');
    expect((await atm.request({ 0: '0420', 2: PAN, 3: '910000', 7: '1123101530', 11: String(++stanCounter), 32: '111111', 37: request[37], 41: request[41], 90: original })).fields[39]).toBe('00');
    expect((await rowsFor(request))[0].status).toBe('REVERSED');
  });

  it('0420 for an unknown original is still answered 0430 with 00', async () => {
    const answer = await atm.request({ 0: '0420', 2: PAN, 3: '910000', 7: '1123101530', 11: String(++stanCounter), 32: '111111', 37: 'NOSUCHRRN001', 41: 'ATM00042', 90: `0200999999112310000000000111111${'0'.repeat(11)}` });
    expect({ mti: answer.fields[0], code: answer.fields[39] }).toEqual({ mti: '0430', code: '00' });
  });
});

describe('transport (spec 4.1)', () => {
  const key = (fields: IsoFields) => `${fields[11]}/${fields[37] ?? ''}`;

  it('a frame written byte by byte is reassembled and answered', async () => {
    const client = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_KEY);
    try {
      const request = activation(newNationalId(), newMobile());
      const answer = client.awaitAnswer(key(request));
      for (const byte of frame(client.pack(request))) {
        client.writeRaw(Buffer.from([byte]));
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect((await answer).fields[39]).toBe('25');
    } finally {
      await client.close();
    }
  });

  it('ten messages in one write are ten answers', async () => {
    const client = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_KEY);
    try {
      const requests = Array.from({ length: 10 }, () => activation(newNationalId(), newMobile()));
      const answers = requests.map((request) => client.awaitAnswer(key(request)));
      client.writeRaw(Buffer.concat(requests.map((request) => frame(client.pack(request)))));
      expect((await Promise.all(answers)).map((a) => a.fields[39])).toEqual(Array(10).fill('25'));
    } finally {
      await client.close();
    }
  });

  it('a length header announcing more than the maximum closes that connection, and only that one', async () => {
    const client = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_KEY);
    client.writeRaw(Buffer.from([0xff, 0xff, 0x30, 0x32]));
    await client.closed;
    // The log is written asynchronously: the line may follow the close by a moment.
    await env.waitForLog((line) => line.includes('impossible frame length'));
    expect((await atm.request(activation(newNationalId(), newMobile()))).fields[39]).toBe('25');
  });

  it('a frame that cannot be read is answered 30 with no MAC when its MTI and STAN can be read (its own MAC could not be checked, though field 32 names a known acquirer), else the connection is closed', async () => {
    const client = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_KEY);
    const request = activation(newNationalId(), newMobile());
    const raw = client.pack(request);
    raw.write('!!', raw.indexOf(Buffer.from('NI010'))); // a broken TLV length... and an invalid character in field 48's length
    const broken = Buffer.concat([raw.subarray(0, raw.indexOf(Buffer.from(request[37]))), Buffer.from('x')]);
    const answer = client.awaitAnswer(`${request[11]}/`);
    client.writeRaw(frame(broken));
    const malformed = await answer;
    expect(malformed.fields).toMatchObject({ 0: '0210', 11: request[11], 32: '111111', 39: '30' });
    // No MAC field, the MAC bit clear (the switch client's rule expects MACs on a 30, so its macExpected is not asked here).
    expect({ f64: malformed.fields[64], macBit: malformed.raw[11] & 0x01, macValid: malformed.macValid }).toEqual({ f64: undefined, macBit: 0, macValid: null });
    client.writeRaw(frame(Buffer.from('this is not ISO 8583 at all')));
    await client.closed;
  });

  it('50 connections at once, each with requests in flight', async () => {
    const clients = await Promise.all(Array.from({ length: 50 }, () => AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_KEY)));
    try {
      const answers = await Promise.all(
        clients.flatMap((client) => Array.from({ length: 4 }, () => client.request(activation(newNationalId(), newMobile())))),
      );
      expect(answers).toHaveLength(200);
      expect(answers.every((a) => a.fields[39] === '25' && a.macValid === true)).toBe(true);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

describe('one use case for both channels', () => {
  it('the same national ID over ATM and signed JSON gets the same decision and the same event shape', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'SUSPENDED');
    const overAtm = activation(nationalId, mobile);
    expect((await atm.request(overAtm)).fields[39]).toBe('N4');
    const overJson = await env.send(env.pki.tsta.es256, { requestId: `json-${overAtm[11]}`, body: { nationalId, mobile, channel: 'INTERNET_BANKING' } });
    expect(overJson.json).toMatchObject({ status: 'REJECTED', reason: 'ACCOUNT_SUSPENDED' });
    await env.settled(reader);
    const events = reader.on(TOPICS.activations).filter((r) => r.event.data.nationalId === nationalId);
    expect(events).toHaveLength(2);
    const [atmEvent, jsonEvent] = [events.find((e) => e.event.data.channel === 'ATM')!, events.find((e) => e.event.data.channel === 'INTERNET_BANKING')!];
    const common = (data: Record<string, unknown>) => Object.keys(data).filter((k) => !['terminalId', 'stan', 'rrn'].includes(k)).sort();
    expect(common(atmEvent.event.data)).toEqual(common(jsonEvent.event.data));
    expect({ ...atmEvent.event.data, activationId: 0, requestId: 0, decidedAt: 0, channel: 0, terminalId: 0, stan: 0, rrn: 0 }).toEqual({
      ...jsonEvent.event.data,
      activationId: 0,
      requestId: 0,
      decidedAt: 0,
      channel: 0,
      terminalId: 0,
      stan: 0,
      rrn: 0,
    });
    expect(atmEvent.event.type).toBe(jsonEvent.event.type);
  });
});

describe('the PAN is never in clear', () => {
  it('not in any log line (debug level), stored row or event', async () => {
    await env.settled(reader);
    const tables = ['activation_request', 'atm_refused_message', 'outbox_event', 'registration', 'bank'];
    for (const table of tables) {
      const rows = await env.database.query(`SELECT * FROM ${table}`);
      expect({ table, leaked: JSON.stringify(rows).includes(PAN) }).toEqual({ table, leaked: false });
    }
    await env.waitForLog((line) => line.includes('iso request'));
    expect(env.logs.filter((line) => line.includes(PAN))).toEqual([]);
    expect(reader.records.filter((r) => r.raw.includes(PAN))).toEqual([]);
  });
});
