import { sign } from 'node:crypto';
import { BankSigningIdentity } from '../../libs/jws/request-signing';
import { isUnbound, verifyResponseSignature } from '../../src/channels/http/response-signer';
import { TOPICS } from '../../src/kafka/topics';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { isAtmRequestKey } from '../../src/activation/request-keys';
import { atmActivation, atmRequestId, TSTA_MAC_KEY } from '../support/atm-requests';
import { expectContract } from '../support/contracts';
import { localSpelling, newMobile, newNationalId } from '../support/identities';
import { GatewayAnswer, TestEnvironment } from '../support/test-environment';

/**
 * Issue 10, items 1 and 10: one signed body has one meaning. A body or
 * protected header that repeats a member, a string with a lone surrogate
 * and a request id without a letter or digit are refused with the exact
 * answer, nothing is stored or published for them, and an honest bank sent
 * alongside each is served. `customerReference: null` means no reference.
 */
let env: TestEnvironment;
let sequence = 0;
const nextRequestId = () => `rules-${process.pid}-${++sequence}`;

beforeAll(async () => {
  env = await TestEnvironment.start();
});

afterAll(async () => {
  await env?.stop();
});

const bank = (): BankSigningIdentity => env.pki.tsta.es256;
const honestBody = () => ({ nationalId: newNationalId(), mobile: localSpelling(newMobile()), channel: 'INTERNET_BANKING' });

async function honestServed(): Promise<void> {
  const requestId = nextRequestId();
  const answer = await env.send(bank(), { requestId, body: honestBody() });
  expect({ status: answer.status, requestId: answer.json.requestId }).toEqual({ status: 200, requestId });
}

/** What was decided, stored and queued for publication under this request id. */
async function storedFor(requestId: string): Promise<{ requests: number; events: number }> {
  const requests = await env.database.query(`SELECT 1 FROM activation_request WHERE bank_code = $1 AND request_id = $2`, [bank().bankCode, requestId]);
  const events = await env.database.query(`SELECT 1 FROM outbox_event WHERE topic = $1 AND (payload::jsonb)->'data'->>'requestId' = $2`, [TOPICS.activations, requestId]);
  return { requests: requests.length, events: events.length };
}

async function expectNothingStored(requestId: string): Promise<void> {
  expect(await storedFor(requestId)).toEqual({ requests: 0, events: 0 });
}

function expectProblem(answer: GatewayAnswer, status: number, code: string, detail: RegExp, secrets: string[] = []): void {
  expect({ status: answer.status, code: answer.json.code }).toEqual({ status, code });
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  expectContract('schemas/http/problem.schema.json', answer.json);
  expect(answer.json.detail).toMatch(detail);
  for (const secret of secrets) expect(answer.text).not.toContain(secret);
}

describe('a body that repeats a member (spec 3.3)', () => {
  const id = () => newNationalId();
  const mobile = () => localSpelling(newMobile());

  it.each([
    ['nationalId, the two readings naming different customers', (a: string, b: string, m: string) => `{"nationalId":"${a}","mobile":"${m}","channel":"INTERNET_BANKING","nationalId":"${b}"}`, /the member "nationalId" appears more than once in \$/],
    ['channel, once spelled with an escape', (a: string, _b: string, m: string) => `{"nationalId":"${a}","mobile":"${m}","channel":"INTERNET_BANKING","\\u0063hannel":"PHONE_BANKING"}`, /the member "channel" appears more than once in \$/],
    ['mobile, the same value twice', (a: string, _b: string, m: string) => `{"nationalId":"${a}","mobile":"${m}","mobile":"${m}","channel":"INTERNET_BANKING"}`, /the member "mobile" appears more than once in \$/],
    ['a member of a nested object', (a: string, _b: string, m: string) => `{"nationalId":"${a}","mobile":"${m}","channel":"INTERNET_BANKING","customerReference":{"x":1,"x":2}}`, /the member "x" appears more than once in \$\.customerReference/],
  ])('%s: 400 MALFORMED_REQUEST naming it, nothing stored, an honest bank served', async (_name, bodyOf, detail) => {
    const [a, b, m] = [id(), id(), mobile()];
    const requestId = nextRequestId();
    const [answer] = await Promise.all([env.send(bank(), { requestId, rawBody: Buffer.from(bodyOf(a, b, m)) }), honestServed()]);
    expectProblem(answer, 400, 'MALFORMED_REQUEST', detail, [a, b, m]);
    expect(answer.json.detail).toMatch(/member names must be unique/);
    await expectNothingStored(requestId);
  });
});

describe('a protected header that repeats a member (spec 3.3)', () => {
  /** Signs like a bank would, but with the protected header written by hand. */
  function signedWithHeader(headerJson: string, body: Buffer): string {
    const protectedSegment = Buffer.from(headerJson).toString('base64url');
    const signature = sign('sha256', Buffer.from(`${protectedSegment}.${body.toString('base64url')}`), { key: bank().privateKey, dsaEncoding: 'ieee-p1363' });
    return `${protectedSegment}..${signature.toString('base64url')}`;
  }

  it.each([
    ['jti', (requestId: string) => `"jti":"other-${requestId}","jti":"${requestId}"`],
    ['alg', (requestId: string) => `"jti":"${requestId}","alg":"none"`],
  ])('repeats %s: 401 SIGNATURE_INVALID naming it, even though the signature is valid; nothing stored', async (member, extra) => {
    const requestId = nextRequestId();
    const body = Buffer.from(JSON.stringify(honestBody()));
    const headerJson = `{"alg":"ES256","kid":"${bank().keyId}","iat":${Math.floor(Date.now() / 1000)},"iss":"${bank().bankCode}",${extra(requestId)},"htm":"POST","htu":"/v1/activations","crit":["iat","iss","jti","htm","htu"]}`;
    const send = fetch(`${env.baseUrl}/v1/activations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-bank-id': bank().bankCode, 'x-request-id': requestId, 'x-jws-signature': signedWithHeader(headerJson, body) },
      body,
    });
    const [response] = await Promise.all([send, honestServed()]);
    const bytes = Buffer.from(await response.arrayBuffer());
    // Signed by the gateway like every answer; a 401 bound to no request (spec 3.3: no jti, htm, htu).
    const signature = response.headers.get('x-jws-signature');
    expect(signature).toBeTruthy();
    expect(isUnbound(await verifyResponseSignature(signature!, bytes, env.pki.gatewayPublicKey))).toBe(true);
    const problem = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    expect({ status: response.status, code: problem.code }).toEqual({ status: 401, code: 'SIGNATURE_INVALID' });
    expect(problem.detail).toContain(`repeats the member "${member}"`);
    await expectNothingStored(requestId);
  });
});

describe('a string with a lone surrogate (issue 10)', () => {
  it.each([
    ['an escaped high surrogate alone', '"ref-\\ud800"', /lone surrogate \\ud800/],
    ['an escaped high surrogate before a non-surrogate escape', '"ref-\\uD800\\u0041"', /lone surrogate \\uD800/],
    ['an escaped low surrogate alone', '"\\udc00-ref"', /lone surrogate \\udc00/],
    ['a lone surrogate in a member name', null, /lone surrogate \\ud83d/],
  ])('%s: 400 MALFORMED_REQUEST, nothing stored, an honest bank served', async (_name, reference, detail) => {
    const requestId = nextRequestId();
    const { nationalId, mobile, channel } = honestBody();
    const text =
      reference === null
        ? `{"nationalId":"${nationalId}","mobile":"${mobile}","channel":"${channel}","\\ud83d":1}`
        : `{"nationalId":"${nationalId}","mobile":"${mobile}","channel":"${channel}","customerReference":${reference}}`;
    const [answer] = await Promise.all([env.send(bank(), { requestId, rawBody: Buffer.from(text) }), honestServed()]);
    expectProblem(answer, 400, 'MALFORMED_REQUEST', detail, [nationalId, mobile]);
    expect(answer.json.detail).toMatch(/strings must be well-formed Unicode/);
    await expectNothingStored(requestId);
  });

  it('a raw surrogate (its UTF-8-like bytes ED A0 80) is not UTF-8: 400 MALFORMED_REQUEST, nothing stored', async () => {
    const requestId = nextRequestId();
    const { nationalId, mobile, channel } = honestBody();
    const text = Buffer.concat([
      Buffer.from(`{"nationalId":"${nationalId}","mobile":"${mobile}","channel":"${channel}","customerReference":"ref-`),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from('"}'),
    ]);
    const [answer] = await Promise.all([env.send(bank(), { requestId, rawBody: text }), honestServed()]);
    expectProblem(answer, 400, 'MALFORMED_REQUEST', /not valid UTF-8/, [nationalId, mobile]);
    await expectNothingStored(requestId);
  });

  it('a well-formed pair (an emoji, escaped and raw) is accepted and stored as sent', async () => {
    const requestId = nextRequestId();
    const { nationalId, mobile, channel } = honestBody();
    const text = `{"nationalId":"${nationalId}","mobile":"${mobile}","channel":"${channel}","customerReference":"ref-\\ud83d\\ude00-😀"}`;
    const answer = await env.send(bank(), { requestId, rawBody: Buffer.from(text) });
    expect(answer.status).toBe(200);
    const [row] = await env.database.query<{ customer_reference: string }>(`SELECT customer_reference FROM activation_request WHERE bank_code = $1 AND request_id = $2`, [bank().bankCode, requestId]);
    expect(row.customer_reference).toBe('ref-😀-😀');
  });
});

describe('a request id with no letter or digit (issue 10)', () => {
  it.each(['.', '..', '-', '...', '._:-'])('X-Request-Id %s: 400 MALFORMED_REQUEST naming X-Request-Id, nothing stored', async (requestId) => {
    const [answer] = await Promise.all([env.send(bank(), { requestId, body: honestBody() }), honestServed()]);
    expectProblem(answer, 400, 'MALFORMED_REQUEST', /^X-Request-Id must be 1-64 characters of \[A-Za-z0-9._:-\], at least one of them a letter or digit$/);
    await expectNothingStored(requestId);
  });

  it.each(['a', '.9', '..x', 'x.'])('X-Request-Id %s (one letter or digit is enough) is served', async (requestId) => {
    // Each test run has a database of its own, so these short ids are fresh.
    const answer = await env.send(bank(), { requestId, body: honestBody() });
    expect({ status: answer.status, requestId: answer.json.requestId }).toEqual({ status: 200, requestId });
  });
});

describe('customerReference: null (issue 10: allowed, the same as absent)', () => {
  it('is accepted, stored as no reference, and the contract says so', async () => {
    const requestId = nextRequestId();
    const body = { ...honestBody(), customerReference: null };
    expectContract('schemas/http/activation-request.schema.json', body);
    const answer = await env.send(bank(), { requestId, body });
    expect(answer.status).toBe(200);
    const [row] = await env.database.query<{ customer_reference: string | null }>(`SELECT customer_reference FROM activation_request WHERE bank_code = $1 AND request_id = $2`, [bank().bankCode, requestId]);
    expect(row.customer_reference).toBeNull();
    // The same queries see an honest request's row and event: the "nothing stored" checks above can fail.
    expect(await storedFor(requestId)).toEqual({ requests: 1, events: 1 });
  });

  it('an empty string is still refused: 400 MALFORMED_REQUEST naming customerReference', async () => {
    const requestId = nextRequestId();
    const answer = await env.send(bank(), { requestId, body: { ...honestBody(), customerReference: '' } });
    expectProblem(answer, 400, 'MALFORMED_REQUEST', /^customerReference must be 1 to 64 characters$/);
    await expectNothingStored(requestId);
  });
});

describe('request ids of the two channels never meet (issue 10, item 4)', () => {
  it("an X-Request-Id in the form of an ATM request key is refused over HTTP; the 0200 whose key it is, sent later, is decided as itself", async () => {
    const customer = { nationalId: newNationalId(), mobile: newMobile() };
    await env.register(customer.nationalId, customer.mobile, 'PENDING_ACTIVATION');
    const fields = atmActivation(customer, { rrnPrefix: 'NSP', terminal: 'NSPATM01' });
    const atmKey = atmRequestId(fields);
    expect(isAtmRequestKey(atmKey)).toBe(true);
    const answer = await env.send(bank(), { requestId: atmKey, body: { ...customer, channel: 'INTERNET_BANKING' } });
    expectProblem(answer, 400, 'MALFORMED_REQUEST', /X-Request-Id must not take the form of an ATM request key/);
    await expectNothingStored(atmKey);
    await honestServed();
    const atm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY);
    try {
      const decided = await atm.request(fields);
      expect({ code: decided.fields[39], mac: decided.macValid }).toEqual({ code: '00', mac: true });
    } finally {
      await atm.close();
    }
    const [row] = await env.database.query<{ channel: string }>(`SELECT channel FROM activation_request WHERE bank_code = $1 AND request_id = $2`, [bank().bankCode, atmKey]);
    expect(row.channel).toBe('ATM');
  });

  it('ids banks use (UUIDs, dates, their own colons) are not mistaken for ATM keys', () => {
    for (const id of ['6f1c2a9e-3b7d-4c55-9a51-0c2f3e4d5a6b', '2026-11-27:000123', 'RJHI:batch:7', '111111:2026112710:12345', 'atm:abc']) expect(isAtmRequestKey(id)).toBe(false);
  });
});
