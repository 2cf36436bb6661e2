import { createPublicKey, KeyObject } from 'node:crypto';
import { maskMobile, maskNationalId, redactPersonalData } from '../../libs/identity';
import { BankSigningIdentity, signBankRequest } from '../../libs/jws/request-signing';
import { CertificateInfo, withinValidity } from '../../libs/pki';
import { isUnbound, verifyResponseSignature } from '../../src/channels/http/response-signer';
import { anotherMobile, CustomerRole, freshMobile, freshNationalId, localSpelling, TestCustomer, TestCustomers } from './customers';
import { JsonChannel } from './options';
import { CaseOutcome } from './report';

const ACTIVATIONS = '/v1/activations';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface JsonTarget {
  baseUrl: string;
  identity: BankSigningIdentity;
  certificate: CertificateInfo;
  channel: JsonChannel;
  /** The gateway's response-signing certificate and id; null when not given (signatures not checked). */
  gateway: { certificate: CertificateInfo; issuer: string } | null;
  timeoutMs: number;
  /** Makes this run's request ids unique, so a re-run is never a replay of the last one. */
  runTag: string;
}

type SignatureCheck = { state: 'verified' } | { state: 'not checked' } | { state: 'invalid'; problem: string };

/** What came back, with the exact bytes: the gateway's signature covers them. */
type Answer =
  | { ok: true; status: number; text: string; body: Record<string, unknown>; replayed: boolean; signature: SignatureCheck }
  | { ok: false; error: string };

interface Exchange {
  method: 'POST' | 'GET';
  path: string;
  requestId: string;
  body?: Buffer;
  /** Signs with this `iat` instead of now. */
  iat?: number;
  /** Sent instead of `body` after `body` was signed. */
  tampered?: Buffer;
}

/** What a bank can do about each error code the gateway gives a request the kit believes is right. */
const HINTS: Record<string, string> = {
  UNKNOWN_BANK: 'the gateway does not know this bank code: check --bank, or ask the operator whether the bank is registered',
  UNKNOWN_KEY: 'no certificate with this kid is registered for the bank: send the certificate (and its kid, in the header above) with the onboarding request',
  CERTIFICATE_NOT_TRUSTED: 'the registered certificate does not chain to the gateway\'s trust anchors, or lacks the digitalSignature key usage: have it issued by the CA the operator named',
  CERTIFICATE_EXPIRED: 'the registered certificate is outside its validity period: register a current one',
  SIGNATURE_INVALID: 'the signature did not verify: is --key the private key of --cert?',
  STALE_REQUEST: 'this machine\'s clock is more than 300 s from the gateway\'s: synchronise it (NTP) and run again',
  RATE_LIMITED: 'the bank\'s rate limit was reached: run again when no other traffic is sent under this bank code',
  UNAVAILABLE: 'the gateway\'s store was unavailable: run again later, or tell the operator',
};

export async function runJsonCases(target: JsonTarget, customers: TestCustomers, customersGiven: boolean): Promise<CaseOutcome[]> {
  const outcomes: CaseOutcome[] = [];
  let sequence = 0;
  const nextRequestId = () => `conf-${target.runTag}-${String(++sequence).padStart(2, '0')}`;
  const bodyFor = (customer: TestCustomer, mobile = localSpelling(customer.mobile), reference = `conformance ${target.runTag}`) =>
    Buffer.from(JSON.stringify({ nationalId: customer.nationalId, mobile, channel: target.channel, customerReference: reference }));
  const who = (customer: TestCustomer, mobile = customer.mobile) => `${maskNationalId(customer.nationalId)}, ${maskMobile(mobile)}`;

  outcomes.push(keyAndCertificate(target));

  // J2: a valid request needs no registration: a fresh national ID is decided NOT_REGISTERED.
  const unregistered = customers.notRegistered ?? { nationalId: freshNationalId(), mobile: freshMobile() };
  const first = { method: 'POST' as const, path: ACTIVATIONS, requestId: nextRequestId(), body: bodyFor(unregistered) };
  const firstAnswer = await exchange(target, first);
  outcomes.push(
    judge(target, 'J2', 'valid signed request (national ID with no registration): authenticated, decided, answer signed', first, who(unregistered), '200 REJECTED / NOT_REGISTERED for this bank, channel and request id', firstAnswer, (answer) =>
      decisionProblems(target, answer, first.requestId, 'REJECTED', 'NOT_REGISTERED'),
    ),
  );

  // J3-J7: one outcome of spec 2 each, for the customers the operator registered.
  const outcomeCases: [string, CustomerRole, string, 'ACCEPTED' | 'REJECTED', string | null, boolean][] = [
    ['J3', 'accepted', 'pending registration, same mobile (sent as 05...)', 'ACCEPTED', null, false],
    ['J4', 'mobileMismatch', 'pending registration, the bank holds another mobile', 'REJECTED', 'MOBILE_MISMATCH', true],
    ['J5', 'alreadyActive', 'registration already ACTIVE', 'REJECTED', 'ALREADY_ACTIVE', false],
    ['J6', 'suspended', 'registration SUSPENDED', 'REJECTED', 'ACCOUNT_SUSPENDED', false],
    ['J7', 'mobileInUse', 'mobile held by another registration', 'REJECTED', 'MOBILE_IN_USE', false],
  ];
  let accepted: { exchange: Exchange; answer: Answer; outcome: CaseOutcome } | null = null;
  for (const [id, role, title, status, reason, otherMobile] of outcomeCases) {
    const customer = customers[role];
    const expected = `200 ${status}${reason ? ` / ${reason}` : ''}`;
    if (!customer) {
      outcomes.push(skipped(id, title, expected, customersGiven ? `no "${role}" customer in --customers` : 'no test customer given (--customers)', true));
      continue;
    }
    const mobile = otherMobile ? anotherMobile(customer.mobile) : customer.mobile;
    const sent = { method: 'POST' as const, path: ACTIVATIONS, requestId: nextRequestId(), body: bodyFor(customer, localSpelling(mobile)) };
    const answer = await exchange(target, sent);
    const outcome = judge(target, id, title, sent, who(customer, mobile), expected, answer, (a) => decisionProblems(target, a, sent.requestId, status, reason));
    outcomes.push(outcome);
    if (role === 'accepted') accepted = { exchange: sent, answer, outcome };
  }

  // Replays and status queries use the accepted request when there is one (its status can move on), the first otherwise.
  const base = accepted ?? { exchange: first, answer: firstAnswer, outcome: outcomes[1] };
  const baseName = base.outcome.id;
  /** A replay or status of a request that was not answered right proves nothing: such a case fails with its cause named. */
  const dependent = (outcome: CaseOutcome): CaseOutcome =>
    base.outcome.result === 'PASS' ? outcome : { ...outcome, result: 'FAIL', problems: [...outcome.problems, `${baseName} failed, so this cannot be checked`] };
  const replay = { ...base.exchange };
  const replayAnswer = await exchange(target, replay);
  const sameAnswer = replayAnswer.ok && base.answer.ok && replayAnswer.text === base.answer.text && replayAnswer.status === base.answer.status;
  const replayed = judge(target, 'J8', `the ${baseName} request again, re-signed (idempotent replay)`, replay, '', `the ${baseName} answer byte for byte, with Idempotent-Replayed: true`, replayAnswer, (answer) => {
    const problems: string[] = [];
    if (!sameAnswer) problems.push(`not the ${baseName} answer`);
    if (!answer.ok || !answer.replayed) problems.push('no Idempotent-Replayed: true header');
    return problems;
  });
  if (replayAnswer.ok) replayed.actual += sameAnswer ? `; the same body as ${baseName}'s` : `; not the body of ${baseName}'s`;
  outcomes.push(dependent(replayed));

  const reuse = { ...base.exchange, body: Buffer.from(base.exchange.body!.toString().replace(`conformance ${target.runTag}`, `conformance ${target.runTag} changed`)) };
  outcomes.push(judge(target, 'J9', `the ${baseName} request id with another body`, reuse, '', '409 REQUEST_ID_REUSED', await exchange(target, reuse), (a) => problemProblems(a, 409, 'REQUEST_ID_REUSED')));

  // Signature and freshness cases use a fresh national ID: if the gateway wrongly decided one, no test customer is touched.
  const tamperedFor = { nationalId: freshNationalId(), mobile: freshMobile() };
  const signedBody = bodyFor(tamperedFor, localSpelling(tamperedFor.mobile), 'conformance-a');
  const tampered = { method: 'POST' as const, path: ACTIVATIONS, requestId: nextRequestId(), body: signedBody, tampered: Buffer.from(signedBody.toString().replace('conformance-a', 'conformance-b')) };
  outcomes.push(judge(target, 'J10', 'body changed by one byte after signing', tampered, who(tamperedFor), '401 SIGNATURE_INVALID, signed bound to no request (no jti, htm, htu)', await exchange(target, tampered), (a) => problemProblems(a, 401, 'SIGNATURE_INVALID')));

  const staleFor = { nationalId: freshNationalId(), mobile: freshMobile() };
  const stale = { method: 'POST' as const, path: ACTIVATIONS, requestId: nextRequestId(), body: bodyFor(staleFor), iat: Math.floor(Date.now() / 1000) - 600 };
  outcomes.push(judge(target, 'J11', 'signed 600 s ago (iat)', stale, who(staleFor), '401 STALE_REQUEST, signed bound to no request (no jti, htm, htu)', await exchange(target, stale), (a) => problemProblems(a, 401, 'STALE_REQUEST')));

  const status = { method: 'GET' as const, path: `${ACTIVATIONS}/${base.exchange.requestId}`, requestId: nextRequestId() };
  // An accepted activation may since have been completed by the identity core (5.3).
  const statuses = accepted ? ['ACCEPTED', 'ACTIVATED', 'FAILED'] : ['REJECTED'];
  const statusAnswer = await exchange(target, status);
  const current = judge(target, 'J12', `status of the ${baseName} request (GET)`, status, '', `200 ${statuses.join(' or ')}, same activation id`, statusAnswer, (answer) => {
    if (!answer.ok) return [];
    if (answer.status !== 200) return [`HTTP ${answer.status}, expected 200`];
    const problems: string[] = [];
    if (!statuses.includes(String(answer.body.status))) problems.push(`status ${String(answer.body.status)}`);
    if (answer.body.requestId !== base.exchange.requestId) problems.push('another request id');
    if (!base.answer.ok || answer.body.activationId !== base.answer.body.activationId) problems.push(`not the activation id the ${baseName} answer gave`);
    return problems;
  });
  outcomes.push(dependent(current));

  const unknown = { method: 'GET' as const, path: `${ACTIVATIONS}/conf-${target.runTag}-never-sent`, requestId: nextRequestId() };
  outcomes.push(judge(target, 'J13', 'status of a request id never sent (GET)', unknown, '', '404 NOT_FOUND', await exchange(target, unknown), (a) => problemProblems(a, 404, 'NOT_FOUND')));

  const badId = { method: 'POST' as const, path: ACTIVATIONS, requestId: nextRequestId(), body: Buffer.from(JSON.stringify({ nationalId: '1000000007', mobile: '0512345678', channel: target.channel })) };
  outcomes.push(judge(target, 'J14', 'national ID with a wrong check digit', badId, '1000000007 (check digit wrong)', '400 INVALID_NATIONAL_ID', await exchange(target, badId), (a) => problemProblems(a, 400, 'INVALID_NATIONAL_ID')));

  const landlineFor = { nationalId: freshNationalId(), mobile: freshMobile() };
  const landline = { method: 'POST' as const, path: ACTIVATIONS, requestId: nextRequestId(), body: bodyFor(landlineFor, '0112345678') };
  outcomes.push(judge(target, 'J15', 'a landline instead of a mobile', landline, `${maskNationalId(landlineFor.nationalId)}, 011*****78`, '400 INVALID_MOBILE', await exchange(target, landline), (a) => problemProblems(a, 400, 'INVALID_MOBILE')));

  return outcomes;
}

/** J1: what can be known before sending anything; a mismatch here explains every 401 that follows. */
function keyAndCertificate(target: JsonTarget): CaseOutcome {
  const certificate = target.certificate;
  const problems: string[] = [];
  const der = (key: KeyObject) => key.export({ type: 'spki', format: 'der' });
  if (!der(createPublicKey(target.identity.privateKey)).equals(der(certificate.publicKey))) problems.push('--key is not the private key of --cert');
  if (!withinValidity(certificate, new Date())) problems.push(`the certificate is valid ${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()}, not now`);
  if (certificate.keyUsage && !certificate.keyUsage.has('digitalSignature')) problems.push('the certificate lacks the digitalSignature key usage');
  if (certificate.keyDescription !== 'EC P-256' && !certificate.keyDescription.startsWith('RSA')) problems.push(`a ${certificate.keyDescription} key signs neither ES256 nor PS256`);
  return {
    id: 'J1',
    title: 'signing key and certificate (checked locally)',
    reference: '',
    expected: 'the key belongs to the certificate; certificate valid now, digitalSignature usage, EC P-256 or RSA',
    actual: `${certificate.keyDescription}, valid to ${certificate.notAfter.toISOString().slice(0, 10)}${problems.length ? '' : ', key matches'}`,
    result: problems.length ? 'FAIL' : 'PASS',
    problems,
    hint: problems.length ? 'fix the key or certificate before anything else: every signed request depends on it' : undefined,
  };
}

function skipped(id: string, title: string, expected: string, why: string, signed: boolean): CaseOutcome {
  return { id, title, reference: '', expected, actual: 'not run', signature: signed ? '' : undefined, result: 'SKIPPED', problems: [why] };
}

/** Sends one signed request and reads the answer, its bytes and signature; a network failure is an answer too. */
async function exchange(target: JsonTarget, sent: Exchange): Promise<Answer> {
  const body = sent.body ?? Buffer.alloc(0);
  const headers = signBankRequest(target.identity, { method: sent.method, path: sent.path, requestId: sent.requestId, body }, sent.iat === undefined ? {} : { iat: sent.iat });
  let response: Response;
  let bytes: Buffer;
  try {
    response = await fetch(target.baseUrl + sent.path, {
      method: sent.method,
      headers: { ...(sent.method === 'POST' ? { 'content-type': 'application/json' } : {}), ...headers },
      body: sent.method === 'POST' ? (sent.tampered ?? body) : undefined,
      signal: AbortSignal.timeout(target.timeoutMs),
    });
    bytes = Buffer.from(await response.arrayBuffer());
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, error: `${(error as Error).message}${cause ? `: ${cause.code ?? cause.message}` : ''}` };
  }
  const text = bytes.toString('utf8');
  let body_: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body_ = parsed as Record<string, unknown>;
  } catch {
    // Not JSON: the checks below report the missing fields.
  }
  return {
    ok: true,
    status: response.status,
    text,
    body: body_,
    replayed: response.headers.get('idempotent-replayed') === 'true',
    signature: await checkSignature(target, response.headers.get('x-jws-signature'), bytes, sent, response.status),
  };
}

/**
 * Spec 3.3, last point: the gateway signs every answer like a bank signs a request, bound to that
 * request; a 401 is signed bound to nothing (no jti, htm, htu), so it can never pass as another answer.
 */
async function checkSignature(target: JsonTarget, header: string | null, bytes: Buffer, sent: Exchange, status: number): Promise<SignatureCheck> {
  if (!target.gateway) return { state: 'not checked' };
  if (!header) return { state: 'invalid', problem: 'the answer has no X-JWS-Signature' };
  try {
    const claims = await verifyResponseSignature(header, bytes, target.gateway.certificate.publicKey);
    const wrong = [
      claims.kid !== target.gateway.certificate.thumbprint && 'kid is not the gateway certificate\'s',
      claims.iss !== target.gateway.issuer && `iss "${claims.iss}", expected "${target.gateway.issuer}"`,
      ...(status === 401
        ? [!isUnbound(claims) && 'a 401 is bound to the request (jti, htm, htu): it must be bound to nothing']
        : [
            claims.jti !== sent.requestId && 'jti is not the X-Request-Id',
            claims.htm !== sent.method && `htm "${claims.htm ?? 'absent'}"`,
            claims.htu !== sent.path && `htu "${claims.htu ?? 'absent'}"`,
          ]),
    ].filter((w): w is string => typeof w === 'string');
    return wrong.length ? { state: 'invalid', problem: wrong.join(', ') } : { state: 'verified' };
  } catch (error) {
    return { state: 'invalid', problem: (error as Error).message };
  }
}

function describe(answer: Answer): string {
  if (!answer.ok) return `no answer: ${answer.error}`;
  const b = answer.body;
  const replayed = answer.replayed ? ', Idempotent-Replayed: true' : '';
  if (answer.status === 200 && typeof b.status === 'string') return `200 ${b.status}${b.reason ? ` / ${String(b.reason)}` : ''}${replayed}`;
  if (typeof b.code === 'string') {
    const detail = typeof b.detail === 'string' ? `: ${b.detail.length > 140 ? `${b.detail.slice(0, 140)}…` : b.detail}` : '';
    return `${answer.status} ${b.code}${detail}${replayed}`;
  }
  return `${answer.status} (${answer.text.length} bytes, not a decision or problem)`;
}

function judge(
  target: JsonTarget,
  id: string,
  title: string,
  sent: Exchange,
  customer: string,
  expected: string,
  answer: Answer,
  check: (answer: Answer) => string[],
): CaseOutcome {
  const problems = answer.ok ? check(answer) : ['no answer from the gateway'];
  let signature = '';
  if (answer.ok) {
    if (answer.signature.state === 'invalid') problems.push(`response signature: ${answer.signature.problem}`);
    signature = answer.signature.state === 'invalid' ? 'INVALID' : answer.signature.state;
  }
  let hint: string | undefined;
  if (!answer.ok) {
    hint = `the gateway did not answer at ${target.baseUrl}: check the URL, the network path and TLS trust (NODE_EXTRA_CA_CERTS)`;
  } else if (problems.length && typeof answer.body.code === 'string' && !expected.includes(answer.body.code)) {
    // Only where the code is not the one the case asked for: J10 expects SIGNATURE_INVALID.
    hint = HINTS[answer.body.code];
  }
  return {
    id,
    title,
    reference: customer ? `${sent.requestId} (${customer})` : sent.requestId,
    expected,
    actual: redactPersonalData(describe(answer)),
    signature,
    result: problems.length ? 'FAIL' : 'PASS',
    problems,
    hint,
  };
}

function decisionProblems(target: JsonTarget, answer: Answer, requestId: string, status: 'ACCEPTED' | 'REJECTED', reason: string | null): string[] {
  if (!answer.ok) return [];
  if (answer.status !== 200) return [`HTTP ${answer.status}, expected 200`];
  const b = answer.body;
  const problems: string[] = [];
  if (b.status !== status || (b.reason ?? null) !== reason) problems.push(`decided ${String(b.status)}${b.reason ? ` / ${String(b.reason)}` : ''}`);
  if (b.requestId !== requestId) problems.push('requestId not echoed');
  if (b.bankCode !== target.identity.bankCode) problems.push(`bankCode ${String(b.bankCode)}`);
  if (b.channel !== target.channel) problems.push(`channel ${String(b.channel)}`);
  if (typeof b.activationId !== 'string' || !UUID.test(b.activationId)) problems.push('no activationId');
  if (answer.replayed) problems.push('answered as a replay: was this request id used before?');
  return problems;
}

function problemProblems(answer: Answer, status: number, code: string): string[] {
  if (!answer.ok) return [];
  const problems: string[] = [];
  if (answer.status !== status) problems.push(`HTTP ${answer.status}, expected ${status}`);
  if (answer.body.code !== code) problems.push(`code ${String(answer.body.code ?? 'none')}, expected ${code}`);
  return problems;
}
