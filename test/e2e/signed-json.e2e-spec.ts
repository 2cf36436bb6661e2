import { Buffer } from 'node:buffer';
import { parseDetachedJws, signDetached } from '../../libs/jws';
import { BankSigningIdentity } from '../../libs/jws/request-signing';
import { TOPICS } from '../../src/kafka/topics';
import { expectContract, expectEventContract, expectOpenApiSchema } from '../support/contracts';
import { localSpelling, newMobile, newNationalId } from '../support/identities';
import { GatewayAnswer, TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * Spec sections 2 and 3 end to end: real HTTP, the real PostgreSQL, the Kafka
 * broker, and a real Kafka consumer reading what the gateway published.
 */
let env: TestEnvironment;
let reader: TopicReader;
let sequence = 0;
const nextRequestId = () => `req-${Date.now()}-${++sequence}`;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations, TOPICS.ops]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

const bank = (): BankSigningIdentity => env.pki.tsta.es256;

async function activate(identity: BankSigningIdentity, body: Record<string, unknown>, requestId = nextRequestId()) {
  const answer = await env.send(identity, { requestId, body });
  return { answer, requestId };
}

async function storedRow(requestId: string, bankCode = 'TSTA') {
  const rows = await env.database.query(`SELECT * FROM activation_request WHERE bank_code = $1 AND request_id = $2`, [bankCode, requestId]);
  return rows;
}

/** The decision is answered, stored, and published on both topics exactly as answered. */
async function expectDecision(answer: GatewayAnswer, requestId: string, expected: { status: 'ACCEPTED' | 'REJECTED'; reason: string | null; nationalId: string; mobile: string; channel?: string; bankCode?: string }) {
  const bankCode = expected.bankCode ?? 'TSTA';
  expect(answer.status).toBe(200);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expect(answer.signatureHeader).toMatchObject({ alg: 'ES256', iss: 'absher-bank-gateway', jti: requestId });
  const body = answer.json;
  expectContract('schemas/http/activation-response.schema.json', body);
  expect(body).toMatchObject({ requestId, bankCode, status: expected.status, reason: expected.reason, channel: expected.channel ?? 'INTERNET_BANKING' });

  const rows = await storedRow(requestId, bankCode);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({
    activation_id: body.activationId,
    national_id: expected.nationalId,
    mobile: expected.mobile,
    status: expected.status,
    reason: expected.reason,
    response_status: 200,
    response_body: answer.text,
  });

  await env.settled(reader);
  const decided = reader.on(TOPICS.activations).filter((r) => r.event.data.requestId === requestId);
  expect(decided).toHaveLength(1);
  const [record] = decided;
  expectEventContract(record.topic, record.key, record.event);
  expect(record.key).toBe(expected.nationalId);
  expect(record.event.type).toBe(expected.status === 'ACCEPTED' ? 'sa.absher.activation.accepted' : 'sa.absher.activation.rejected');
  expect(record.event.subject).toBe(body.activationId);
  expect(record.event.data).toEqual({
    activationId: body.activationId,
    requestId,
    bankCode,
    channel: body.channel,
    nationalId: expected.nationalId,
    mobile: expected.mobile,
    outcome: expected.status,
    reason: expected.reason,
    decidedAt: body.decidedAt,
  });

  const handled = reader.on(TOPICS.ops).filter((r) => r.event.data.activationId === body.activationId);
  expect(handled).toHaveLength(1);
  expectEventContract(handled[0].topic, handled[0].key, handled[0].event);
  expect(handled[0].event.data).toMatchObject({ bankCode, outcome: expected.status, reason: expected.reason, errorCode: null, replayed: false });
  expect(handled[0].raw).not.toContain(expected.nationalId);
  expect(handled[0].raw).not.toContain(expected.mobile.slice(4));
  return body;
}

/** An error: a problem body with the code, nothing stored, no activation event; on the ops stream, one request-handled ERROR with that code. */
async function expectRefused(answer: GatewayAnswer, requestId: string | null, status: number, code: string, bankCode = 'TSTA') {
  expect({ status: answer.status, code: answer.json.code }).toEqual({ status, code });
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  expectContract('schemas/http/problem.schema.json', answer.json);
  expect(String(answer.json.detail).length).toBeGreaterThan(10);
  if (status === 401) expectBoundToNothing(answer);
  if (requestId) {
    if (status !== 401) expect(answer.signatureHeader.jti).toBe(requestId);
    expect(await storedRow(requestId, bankCode)).toHaveLength(0);
    const [handled] = await reader.waitFor((records) => records.some((r) => r.topic === TOPICS.ops && r.event.data.requestId === requestId), `request-handled of ${requestId}`);
    void handled;
    const ops = reader.on(TOPICS.ops).filter((r) => r.event.data.requestId === requestId);
    expect(ops.map((r) => [r.event.type, r.event.data.outcome, r.event.data.errorCode])).toEqual([['sa.absher.gateway.request-handled', 'ERROR', code]]);
    expectEventContract(ops[0].topic, ops[0].key, ops[0].event);
    await env.settled(reader);
    expect(reader.on(TOPICS.activations).filter((r) => r.event.data.requestId === requestId)).toHaveLength(0);
  }
}

/** Spec 3.3: a 401's signature verifies (GatewayAnswer.read checked it) but names no request: no jti, htm, htu. */
function expectBoundToNothing(answer: GatewayAnswer) {
  expect(answer.status).toBe(401);
  expect(answer.signatureHeader).toEqual({ alg: 'ES256', kid: env.pki.gatewayKeyId, iat: expect.any(Number), iss: 'absher-bank-gateway', crit: ['iat', 'iss'] });
}

describe('decisions (spec section 2)', () => {
  it('ACCEPTED: pending registration, same mobile, held by no one else (ES256, mobile spelled 05...)', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const { answer, requestId } = await activate(bank(), { nationalId, mobile: localSpelling(mobile), channel: 'INTERNET_BANKING', customerReference: 'cust-42' });
    await expectDecision(answer, requestId, { status: 'ACCEPTED', reason: null, nationalId, mobile });
    expect((await storedRow(requestId))[0].customer_reference).toBe('cust-42');
  });

  it('ACCEPTED for a resident (iqama) signed with PS256 over phone banking', async () => {
    const nationalId = newNationalId('2');
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const { answer, requestId } = await activate(env.pki.tsta.ps256, { nationalId, mobile: `00${mobile.slice(1)}`, channel: 'PHONE_BANKING' });
    await expectDecision(answer, requestId, { status: 'ACCEPTED', reason: null, nationalId, mobile, channel: 'PHONE_BANKING' });
  });

  it('CHANNEL_NOT_ALLOWED: the bank is not enabled for the channel (checked before the registry)', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const { answer, requestId } = await activate(env.pki.tstb.es256, { nationalId, mobile, channel: 'INTERNET_BANKING' });
    await expectDecision(answer, requestId, { status: 'REJECTED', reason: 'CHANNEL_NOT_ALLOWED', nationalId, mobile, bankCode: 'TSTB' });
  });

  it('NOT_REGISTERED: no registration at all', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    const { answer, requestId } = await activate(bank(), { nationalId, mobile, channel: 'INTERNET_BANKING' });
    await expectDecision(answer, requestId, { status: 'REJECTED', reason: 'NOT_REGISTERED', nationalId, mobile });
  });

  it.each([
    ['CLOSED', 'NOT_REGISTERED'],
    ['SUSPENDED', 'ACCOUNT_SUSPENDED'],
    ['ACTIVE', 'ALREADY_ACTIVE'],
  ])('registration %s gives %s', async (status, reason) => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, status);
    const { answer, requestId } = await activate(bank(), { nationalId, mobile, channel: 'INTERNET_BANKING' });
    await expectDecision(answer, requestId, { status: 'REJECTED', reason, nationalId, mobile });
  });

  it('MOBILE_MISMATCH: the registered mobile differs from the bank’s', async () => {
    const nationalId = newNationalId();
    const registered = newMobile();
    const banks = newMobile();
    await env.register(nationalId, registered, 'PENDING_ACTIVATION');
    const { answer, requestId } = await activate(bank(), { nationalId, mobile: banks, channel: 'INTERNET_BANKING' });
    await expectDecision(answer, requestId, { status: 'REJECTED', reason: 'MOBILE_MISMATCH', nationalId, mobile: banks });
  });

  it('MOBILE_IN_USE: another national ID, not CLOSED, holds the same mobile; a CLOSED holder does not count', async () => {
    const mobile = newMobile();
    const nationalId = newNationalId();
    const holder = newNationalId('2');
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    await env.register(holder, mobile, 'ACTIVE');
    const first = await activate(bank(), { nationalId, mobile, channel: 'INTERNET_BANKING' });
    await expectDecision(first.answer, first.requestId, { status: 'REJECTED', reason: 'MOBILE_IN_USE', nationalId, mobile });

    await env.register(holder, mobile, 'CLOSED');
    const second = await activate(bank(), { nationalId, mobile, channel: 'INTERNET_BANKING' });
    await expectDecision(second.answer, second.requestId, { status: 'ACCEPTED', reason: null, nationalId, mobile });
  });

  it('a newer registration version replaces the old one; an older one is ignored', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'SUSPENDED', 5);
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION', 6);
    const stale = await env.publishRegistration({ nationalId, mobile, status: 'ACTIVE', version: 4 });
    await env.waitForRegistrationsConsumed(stale);
    const [row] = await env.database.query(`SELECT status, version::int AS version FROM registration WHERE national_id = $1`, [nationalId]);
    expect(row).toEqual({ status: 'PENDING_ACTIVATION', version: 6 });
    const { answer, requestId } = await activate(bank(), { nationalId, mobile, channel: 'INTERNET_BANKING' });
    await expectDecision(answer, requestId, { status: 'ACCEPTED', reason: null, nationalId, mobile });
  });
});

describe('idempotency (spec 3.5)', () => {
  it('the same request again gets the stored answer, marked replayed, with no second decision or event', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const requestId = nextRequestId();
    const body = { nationalId, mobile, channel: 'INTERNET_BANKING' };
    const first = await env.send(bank(), { requestId, body });
    await expectDecision(first, requestId, { status: 'ACCEPTED', reason: null, nationalId, mobile });

    // The registry changes in between: the replay must still give the stored answer.
    await env.register(nationalId, mobile, 'ACTIVE');
    const again = await env.send(bank(), { requestId, body });
    expect(again.status).toBe(200);
    expect(again.text).toBe(first.text);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(await storedRow(requestId)).toHaveLength(1);
    await env.settled(reader);
    expect(reader.on(TOPICS.activations).filter((r) => r.event.data.requestId === requestId)).toHaveLength(1);
  });

  it('the same request id with another body is 409 REQUEST_ID_REUSED, with no event', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    const requestId = nextRequestId();
    const first = await env.send(bank(), { requestId, body: { nationalId, mobile, channel: 'INTERNET_BANKING' } });
    expect(first.status).toBe(200);
    const other = await env.send(bank(), { requestId, body: { nationalId, mobile, channel: 'PHONE_BANKING' } });
    expect(other.status).toBe(409);
    expect(other.json.code).toBe('REQUEST_ID_REUSED');
    expectContract('schemas/http/problem.schema.json', other.json);
    expect(await storedRow(requestId)).toHaveLength(1);
    expect((await storedRow(requestId))[0].channel).toBe('INTERNET_BANKING');
    await env.settled(reader);
    expect(reader.on(TOPICS.activations).filter((r) => r.event.data.requestId === requestId)).toHaveLength(1);
  });

  it('the same request id from another bank is a different request', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    const requestId = nextRequestId();
    const a = await env.send(bank(), { requestId, body: { nationalId, mobile, channel: 'PHONE_BANKING' } });
    const b = await env.send(env.pki.tstb.es256, { requestId, body: { nationalId, mobile, channel: 'PHONE_BANKING' } });
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.json.activationId).not.toBe(b.json.activationId);
  });
});

describe('status (GET /v1/activations/{requestId})', () => {
  it('shows the decision to the bank that submitted it, signed', async () => {
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const { answer, requestId } = await activate(bank(), { nationalId, mobile, channel: 'INTERNET_BANKING' });
    const path = `/v1/activations/${requestId}`;
    const status = await env.send(bank(), { method: 'GET', path, requestId: `get-${requestId}` });
    expect(status.status).toBe(200);
    expectContract('schemas/http/activation-response.schema.json', status.json);
    expect(status.json).toEqual({ ...answer.json, completedAt: null });
    expect(status.signatureHeader).toMatchObject({ jti: `get-${requestId}`, htm: 'GET', htu: path });
  });

  it('404 NOT_FOUND for a request id this bank never submitted (even if another bank did)', async () => {
    const { requestId } = await activate(env.pki.tstb.es256, { nationalId: newNationalId(), mobile: newMobile(), channel: 'PHONE_BANKING' });
    const path = `/v1/activations/${requestId}`;
    const answer = await env.send(bank(), { method: 'GET', path, requestId: nextRequestId() });
    expect(answer.status).toBe(404);
    expect(answer.json.code).toBe('NOT_FOUND');
    expectContract('schemas/http/problem.schema.json', answer.json);
  });
});

describe('validation errors (400)', () => {
  const valid = () => ({ nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' });

  it.each<[string, () => Record<string, unknown>, string, RegExp]>([
    ['a national ID failing Luhn', () => ({ ...valid(), nationalId: '1000000007' }), 'INVALID_NATIONAL_ID', /Luhn/],
    ['a national ID starting with 3', () => ({ ...valid(), nationalId: '3000000006' }), 'INVALID_NATIONAL_ID', /start with 1/],
    ['a missing national ID', () => ({ mobile: newMobile(), channel: 'INTERNET_BANKING' }), 'INVALID_NATIONAL_ID', /nationalId is required/],
    ['a landline', () => ({ ...valid(), mobile: '0112345678' }), 'INVALID_MOBILE', /Saudi mobile/],
    ['a numeric mobile', () => ({ ...valid(), mobile: 512345678 }), 'INVALID_MOBILE', /mobile/],
    ['channel ATM (ISO 8583 only)', () => ({ ...valid(), channel: 'ATM' }), 'INVALID_CHANNEL', /ISO 8583/],
    ['an unknown channel', () => ({ ...valid(), channel: 'BRANCH' }), 'INVALID_CHANNEL', /INTERNET_BANKING or PHONE_BANKING/],
    ['an unknown field', () => ({ ...valid(), pin: '1234' }), 'MALFORMED_REQUEST', /unknown field "pin"/],
    ['a customerReference over 64 chars', () => ({ ...valid(), customerReference: 'x'.repeat(65) }), 'MALFORMED_REQUEST', /customerReference/],
    ['a customerReference of 128 code points that looks like 64', () => ({ ...valid(), customerReference: 'a\uFE0F'.repeat(64) }), 'MALFORMED_REQUEST', /1 to 64 characters/],
    ['a customerReference with a NUL', () => ({ ...valid(), customerReference: 'ab\u0000c' }), 'MALFORMED_REQUEST', /control characters/],
  ])('%s', async (_name, body, code, detail) => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, body: body() });
    await expectRefused(answer, requestId, 400, code);
    expect(answer.json.detail).toMatch(detail);
  });

  it.each<[string, Buffer, RegExp]>([
    ['not JSON', Buffer.from('{"nationalId": '), /not JSON/],
    ['a JSON array', Buffer.from('[]'), /JSON object/],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), /UTF-8/],
    ['an empty body', Buffer.alloc(0), /not JSON/],
    ['a body over 16 KiB', Buffer.from(JSON.stringify({ nationalId: '1000000008', mobile: '0512345678', channel: 'INTERNET_BANKING', customerReference: 'x'.repeat(17 * 1024) })), /16 KiB/],
  ])('MALFORMED_REQUEST for %s', async (_name, rawBody, detail) => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, rawBody });
    await expectRefused(answer, requestId, 400, 'MALFORMED_REQUEST');
    expect(answer.json.detail).toMatch(detail);
  });

  it('MALFORMED_REQUEST for a Content-Type other than application/json', async () => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, body: valid(), headers: { 'content-type': 'text/plain' } });
    await expectRefused(answer, requestId, 400, 'MALFORMED_REQUEST');
    expect(answer.json.detail).toMatch(/Content-Type/);
  });
});

describe('authentication errors (401, spec 3.3)', () => {
  const body = () => ({ nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' });

  it('SIGNATURE_MISSING without X-JWS-Signature', async () => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, body: body(), headers: { 'x-jws-signature': '' } });
    await expectRefused(answer, requestId, 401, 'SIGNATURE_MISSING');
  });

  it('SIGNATURE_INVALID when the body is changed by one byte after signing', async () => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), {
      requestId,
      body: body(),
      mutateBody: (bytes) => {
        const changed = Buffer.from(bytes);
        changed[changed.indexOf(Buffer.from('INTERNET'))] = 'i'.charCodeAt(0);
        return changed;
      },
    });
    await expectRefused(answer, requestId, 401, 'SIGNATURE_INVALID');
    expect(answer.json.detail).toMatch(/does not match/);
  });

  it('SIGNATURE_INVALID for whitespace added to the body: the bytes are signed, not the JSON', async () => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, body: body(), mutateBody: (bytes) => Buffer.concat([bytes, Buffer.from(' ')]) });
    await expectRefused(answer, requestId, 401, 'SIGNATURE_INVALID');
  });

  it.each(['none', 'HS256', 'RS256'])('SIGNATURE_INVALID for alg %s', async (alg) => {
    const requestId = nextRequestId();
    const bytes = Buffer.from(JSON.stringify(body()));
    const header = { alg, kid: bank().keyId, iat: Math.floor(Date.now() / 1000), iss: 'TSTA', jti: requestId, htm: 'POST', htu: '/v1/activations', crit: ['iat', 'iss', 'jti', 'htm', 'htu'] };
    const protectedSegment = Buffer.from(JSON.stringify(header)).toString('base64url');
    // A real signature by the bank's key under a valid header, then the header swapped: nothing but alg differs.
    const genuine = signDetached({ ...header, alg: 'ES256' }, bytes, bank().privateKey).split('..')[1];
    const signature = alg === 'none' ? `${protectedSegment}..` : `${protectedSegment}..${genuine}`;
    const answer = await env.send(bank(), { requestId, rawBody: bytes, headers: { 'x-jws-signature': signature } });
    await expectRefused(answer, requestId, 401, 'SIGNATURE_INVALID');
    expect(answer.json.detail).toMatch(alg === 'none' ? /base64url|not accepted/ : /not accepted/);
  });

  it('UNKNOWN_BANK for a bank code not in the registry', async () => {
    const requestId = nextRequestId();
    const answer = await env.send({ ...bank(), bankCode: 'XXXX' }, { requestId, body: body() });
    await expectRefused(answer, requestId, 401, 'UNKNOWN_BANK', 'XXXX');
  });

  it('UNKNOWN_KEY for a kid not registered for that bank (including another bank’s key)', async () => {
    const requestId = nextRequestId();
    const answer = await env.send(env.pki.unregistered, { requestId, body: body() });
    await expectRefused(answer, requestId, 401, 'UNKNOWN_KEY');
    const crossBank = await env.send({ ...env.pki.tstb.es256, bankCode: 'TSTA' }, { requestId: nextRequestId(), body: body() });
    expect(crossBank.json.code).toBe('UNKNOWN_KEY');
  });

  it('CERTIFICATE_NOT_TRUSTED for a certificate from an untrusted CA, and for one without digitalSignature', async () => {
    const requestId = nextRequestId();
    await expectRefused(await env.send(env.pki.untrusted, { requestId, body: body() }), requestId, 401, 'CERTIFICATE_NOT_TRUSTED');
    const usage = await env.send(env.pki.noSigningUsage, { requestId: nextRequestId(), body: body() });
    expect(usage.json.code).toBe('CERTIFICATE_NOT_TRUSTED');
    expect(usage.json.detail).toMatch(/digitalSignature/);
  });

  it('CERTIFICATE_EXPIRED for an expired certificate and for one not yet valid', async () => {
    const requestId = nextRequestId();
    await expectRefused(await env.send(env.pki.expired, { requestId, body: body() }), requestId, 401, 'CERTIFICATE_EXPIRED');
    const future = await env.send(env.pki.notYetValid, { requestId: nextRequestId(), body: body() });
    expect(future.json.code).toBe('CERTIFICATE_EXPIRED');
    expect(future.json.detail).toMatch(/not valid before/);
  });

  it.each([
    ['301 s old', -301],
    ['301 s ahead', 301],
  ])('STALE_REQUEST for iat %s', async (_name, offset) => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, body: body(), overrides: { iat: Math.floor(Date.now() / 1000) + offset } });
    await expectRefused(answer, requestId, 401, 'STALE_REQUEST');
  });

  it('accepts iat 290 s old (inside the window)', async () => {
    const answer = await env.send(bank(), { requestId: nextRequestId(), body: body(), overrides: { iat: Math.floor(Date.now() / 1000) - 290 } });
    expect(answer.status).toBe(200);
  });

  it.each([
    ['iss', { iss: 'TSTB' }, /iss/],
    ['jti', { jti: 'another-request' }, /jti/],
    ['htu', { htu: '/v1/activations/other' }, /htu/],
    ['htm', { htm: 'PUT' }, /htm/],
  ])('SIGNATURE_INVALID when %s does not match the request', async (_name, overrides, detail) => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, body: body(), overrides });
    await expectRefused(answer, requestId, 401, 'SIGNATURE_INVALID');
    expect(answer.json.detail).toMatch(detail);
  });

  it('an unsigned POST carrying a victim’s X-Request-Id gets a 401 bound to nothing, which cannot pass as the victim’s answer; the victim is then served', async () => {
    const victimId = nextRequestId();
    const nationalId = newNationalId();
    const mobile = newMobile();
    await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
    const victimBody = { nationalId, mobile: localSpelling(mobile), channel: 'INTERNET_BANKING' };
    // Someone on the path, with no key: the victim's bank code and request id, no signature.
    const hostile = await env.send(bank(), { requestId: victimId, body: victimBody, headers: { 'x-jws-signature': '' } });
    expect({ status: hostile.status, code: hostile.json.code }).toEqual({ status: 401, code: 'SIGNATURE_MISSING' });
    expectBoundToNothing(hostile);
    // A bank that checks jti = its X-Request-Id (docs/bank-integration.md) never takes it for its answer; the project's strict parser refuses it outright.
    expect(hostile.signatureHeader.jti).not.toBe(victimId);
    const compact = hostile.headers['x-jws-signature'];
    expect(() => parseDetachedJws(compact)).toThrow(/jti/);
    expect(await storedRow(victimId)).toHaveLength(0);

    const genuine = await env.send(bank(), { requestId: victimId, body: victimBody });
    expect(genuine.signatureHeader).toMatchObject({ jti: victimId, htm: 'POST', htu: '/v1/activations', crit: ['iat', 'iss', 'jti', 'htm', 'htu'] });
    await expectDecision(genuine, victimId, { status: 'ACCEPTED', reason: null, nationalId, mobile });
  });

  it('a GET signed for another path is refused', async () => {
    const answer = await env.send(bank(), { method: 'GET', path: '/v1/activations/abc', requestId: nextRequestId(), overrides: { htu: '/v1/activations/xyz' } });
    expect(answer.status).toBe(401);
    expect(answer.json.code).toBe('SIGNATURE_INVALID');
  });
});

describe('rate limits (429)', () => {
  it('RATE_LIMITED with Retry-After once a bank exceeds rateLimitPerSecond; other banks are unaffected', async () => {
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => env.send(env.pki.tstr, { requestId: nextRequestId(), body: { nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' } })),
    );
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(3);
    for (const answer of limited) {
      expect(answer.json.code).toBe('RATE_LIMITED');
      expect(answer.headers['retry-after']).toBe('1');
      expectContract('schemas/http/problem.schema.json', answer.json);
    }
    const other = await env.send(bank(), { requestId: nextRequestId(), body: { nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' } });
    expect(other.status).toBe(200);
  });
});

describe('probes and unknown routes', () => {
  it('health probes answer without authentication, signed', async () => {
    const live = await GatewayAnswer.read(await rawGet('/health/live'), env.pki.gatewayPublicKey, env.pki.gatewayKeyId, 'GET', '/health/live');
    expect(live.json).toEqual({ status: 'ok' });
    const ready = await GatewayAnswer.read(await rawGet('/health/ready'), env.pki.gatewayPublicKey, env.pki.gatewayKeyId, 'GET', '/health/ready');
    expect(ready.status).toBe(200);
    // Ready or not, nothing more on the bank port: the details are on the management port (issue 10, item 8).
    expect(ready.json).toEqual({ status: 'ok' });
    expectOpenApiSchema('HealthStatus', ready.json);
  });

  it('the bank port serves no metrics and no detailed readiness; the management port does, on its own port', async () => {
    const metrics = await GatewayAnswer.read(await rawGet('/metrics'), env.pki.gatewayPublicKey, env.pki.gatewayKeyId, 'GET', '/metrics');
    expect({ status: metrics.status, code: metrics.json.code }).toEqual({ status: 404, code: 'NOT_FOUND' });
    expect(new URL(env.managementUrl).port).not.toBe(new URL(env.baseUrl).port);
    const scrape = await fetch(`${env.managementUrl}/metrics`);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toMatch(/^# HELP absher_gateway_requests_total /m);
    const detailed = (await (await fetch(`${env.managementUrl}/health/ready`)).json()) as { status: string; details: Record<string, unknown> };
    expect(Object.keys(detailed.details).sort()).toEqual(['instance', 'kafka', 'keys', 'lifecycle', 'outbox', 'store']);
  });

  it('an unknown path is a signed 404 problem', async () => {
    const answer = await GatewayAnswer.read(await rawGet('/v2/nothing'), env.pki.gatewayPublicKey, env.pki.gatewayKeyId, 'GET', '/v2/nothing');
    expect(answer.status).toBe(404);
    expect(answer.json.code).toBe('NOT_FOUND');
  });
});

async function rawGet(path: string) {
  const response = await fetch(env.baseUrl + path);
  return { status: response.status, headers: Object.fromEntries(response.headers), body: Buffer.from(await response.arrayBuffer()) };
}
