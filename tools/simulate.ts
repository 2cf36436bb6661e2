/**
 * `npm run simulate`: plays the identity core and a bank against a running
 * gateway. It publishes registrations on absher.registrations.v1, then sends
 * signed requests (as the development bank DEVB) that produce every outcome
 * of spec section 2 and a few errors, verifies each answer's signature, and
 * prints, per scenario, what it expected, what came back and PASS or FAIL,
 * then a one-line verdict. Exit code 0 when every answer was as expected, 1
 * otherwise, 2 for a mistake on the command line.
 *
 *   npm start                     # in one terminal
 *   npm run simulate              # in another
 *   npm run simulate -- --burst 2000 --concurrency 32   # then a timed burst
 */
import { createPrivateKey, KeyObject, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { checkNationalId, luhnValid, maskNationalId } from '../libs/identity';
import { BankSigningIdentity, signBankRequest } from '../libs/jws/request-signing';
import { parseCertificateBundle } from '../libs/pki';
import { isUnbound, verifyResponseSignature } from '../src/channels/http/response-signer';
import { projectRoot } from '../src/common/project-root';
import { TOPICS } from '../src/kafka/topics';
import { developmentKafkaBrokers, publishRegistrations } from './identity-core';
import { defineTool, exitWith, readOptions, reportUsageError, UsageError } from './options';
import { table, verdict } from './verdict';

const TOOL = defineTool({
  name: 'simulate',
  summary: `Plays the identity core and a bank against a running gateway: publishes
registrations, sends signed requests that produce every outcome of spec
section 2 and a few errors, verifies every answer's signature, and prints
per scenario what was expected, what came back and PASS or FAIL, then a
verdict. With --burst, sends that many signed requests for unregistered IDs
instead and prints the rate.`,
  options: {
    burst: { type: 'integer', value: 'N', min: 1, help: 'send N signed requests as fast as the gateway answers them, instead of the scenarios' },
    concurrency: { type: 'integer', value: 'N', min: 1, help: 'requests in flight during --burst (default 16)' },
  },
  more: `Environment: GATEWAY_URL (default http://127.0.0.1:8080); KAFKA_BROKERS (default:
the development broker's address the gateway wrote to DATA_DIR/kafka-brokers);
DATA_DIR (.data); BANK_CODE, BANK_KEY, BANK_CERT (DEVB and its ES256 pair);
GATEWAY_SIGNING_CERT (the certificate answers are verified with; default the
development one). The expectations are those of the development bank: DEVB
enabled for INTERNET_BANKING and not PHONE_BANKING (config/banks.yaml).

Exit codes: 0 every answer as expected, 1 at least one not (the verdict names
them) or the gateway or Kafka could not be reached, 2 a mistake on the command line.`,
});
// Read before anything else, so --help and mistakes never need a key file or a gateway.
const options = readOptions(TOOL);
if (options.concurrency !== undefined && options.burst === undefined) {
  process.exit(reportUsageError(TOOL, new UsageError('--concurrency applies to --burst only')));
}

const root = projectRoot();
const gatewayUrl = (process.env.GATEWAY_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');

/** The bank the simulator signs as, and the certificate it verifies the gateway's answers with. */
interface Parties {
  bank: BankSigningIdentity;
  gatewayKey: KeyObject;
}

function parties(): Parties {
  const file = (variable: string, fallback: string) => process.env[variable] ?? join(root, fallback);
  return {
    bank: {
      bankCode: process.env.BANK_CODE ?? 'DEVB',
      privateKey: createPrivateKey(readFileSync(file('BANK_KEY', 'config/pki/dev/devb-signing-es256.key.pem'))),
      keyId: parseCertificateBundle(readFileSync(file('BANK_CERT', 'config/pki/dev/devb-signing-es256.cert.pem'), 'utf8'))[0].thumbprint,
    },
    gatewayKey: parseCertificateBundle(readFileSync(file('GATEWAY_SIGNING_CERT', 'config/pki/dev/gateway-signing.cert.pem'), 'utf8'))[0].publicKey as KeyObject,
  };
}

function randomNationalId(kind: '1' | '2' = '1'): string {
  const body = kind + String(Math.floor(Math.random() * 1e8)).padStart(8, '0');
  for (let d = 0; d <= 9; d++) if (luhnValid(body + d)) return body + d;
  throw new Error('unreachable');
}
const randomMobile = () => `+9665${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  signed: 'verified' | 'INVALID';
  replayed: boolean;
  ms: number;
}

/** How long one request may take before it counts as unanswered. */
const ANSWER_TIMEOUT_MS = 15_000;

async function send(
  { bank, gatewayKey }: Parties,
  method: 'POST' | 'GET',
  path: string,
  requestId: string,
  payload?: unknown,
  tamper?: { iat?: number; mutate?: (b: Buffer) => Buffer },
): Promise<Answer> {
  const body = payload === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(payload));
  const headers = signBankRequest(bank, { method, path, requestId, body }, tamper?.iat ? { iat: tamper.iat } : {});
  const started = performance.now();
  const response = await fetch(gatewayUrl + path, {
    method,
    headers: { ...(method === 'POST' ? { 'content-type': 'application/json' } : {}), ...headers },
    body: method === 'POST' ? (tamper?.mutate ? tamper.mutate(body) : body) : undefined,
    signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  const ms = performance.now() - started;
  let signed: Answer['signed'] = 'INVALID';
  try {
    const claims = await verifyResponseSignature(response.headers.get('x-jws-signature') ?? '', bytes, gatewayKey);
    // Spec 3.3: an answer is bound to this request; a 401 to none (no jti, htm, htu), so it never passes as another's.
    const bound = claims.jti === requestId && claims.htm === method && claims.htu === path;
    if (response.status === 401 ? isUnbound(claims) : bound) signed = 'verified';
  } catch {
    signed = 'INVALID';
  }
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(bytes.toString() || '{}');
  } catch {
    parsed = { detail: `not JSON: ${bytes.toString().slice(0, 60)}` };
  }
  return { status: response.status, body: parsed, signed, replayed: response.headers.get('idempotent-replayed') === 'true', ms };
}

/** What a scenario must get back: HTTP status, then the decision and reason (200) or the problem code. */
interface Expected {
  status: number;
  outcome: string;
  reason?: string;
  replayed?: boolean;
  /** The activation of the scenario with this number (a replay, a status query). */
  activationOf?: number;
}

interface Scenario {
  name: string;
  nationalId: string;
  expected: Expected;
  run: () => Promise<Answer>;
}

function describeExpected(e: Expected): string {
  return [String(e.status), e.outcome, e.reason, e.replayed ? '(Idempotent-Replayed)' : '', e.activationOf ? `(activation of #${e.activationOf})` : ''].filter(Boolean).join(' ');
}

function describeAnswer(answer: Answer): string {
  const outcome = answer.status === 200 ? answer.body.status : answer.body.code;
  return [String(answer.status), String(outcome ?? '-'), answer.status === 200 ? String(answer.body.reason ?? '') : '', answer.replayed ? '(Idempotent-Replayed)' : ''].filter(Boolean).join(' ');
}

/** What is wrong with an answer, or nothing. */
function mismatches(expected: Expected, answer: Answer, activations: Map<number, unknown>): string[] {
  const problems: string[] = [];
  const outcome = answer.status === 200 ? answer.body.status : answer.body.code;
  const reason = answer.status === 200 ? (answer.body.reason ?? undefined) : undefined;
  if (answer.status !== expected.status || outcome !== expected.outcome || reason !== expected.reason) problems.push(`got ${describeAnswer(answer)}`);
  else if (answer.replayed !== (expected.replayed ?? false)) problems.push(answer.replayed ? 'replayed, not decided' : 'decided again, not replayed');
  if (expected.activationOf && answer.body.activationId !== activations.get(expected.activationOf)) problems.push(`another activation than #${expected.activationOf}'s`);
  if (answer.signed !== 'verified') problems.push('signature INVALID');
  return problems;
}

async function scenarios(who: Parties): Promise<number> {
  const kafka = new Kafka({ clientId: 'simulator', brokers: developmentKafkaBrokers(), logLevel: logLevel.NOTHING });
  const people = {
    pending: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
    resident: { nationalId: randomNationalId('2'), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
    closed: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'CLOSED' },
    suspended: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'SUSPENDED' },
    active: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'ACTIVE' },
    mismatch: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
    sharing: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
  };
  const holder = { nationalId: randomNationalId('2'), mobile: people.sharing.mobile, status: 'ACTIVE' };
  process.stdout.write(`identity core: publishing ${Object.keys(people).length + 1} registrations to ${TOPICS.registrations} ...\n`);
  await publishRegistrations(kafka, [...Object.values(people), holder], 'urn:absher:identity-core:simulator');

  const bankCode = who.bank.bankCode;
  const post = (requestId: string, payload: unknown, tamper?: Parameters<typeof send>[5]) => () => send(who, 'POST', '/v1/activations', requestId, payload, tamper);
  const local = (e164: string) => `0${e164.slice(4)}`;
  const unknownId = randomNationalId();
  const id = () => `sim-${randomUUID()}`;
  const accepted = id();
  const acceptedBody = { nationalId: people.pending.nationalId, mobile: local(people.pending.mobile), channel: 'INTERNET_BANKING', customerReference: 'simulator' };
  const rejected = (reason: string): Expected => ({ status: 200, outcome: 'REJECTED', reason });
  const problem = (status: number, code: string): Expected => ({ status, outcome: code });
  const plan: Scenario[] = [
    { name: 'pending registration, same mobile (sent as 05...)', nationalId: people.pending.nationalId, expected: { status: 200, outcome: 'ACCEPTED' }, run: post(accepted, acceptedBody) },
    { name: 'resident (iqama), mobile sent as +966...', nationalId: people.resident.nationalId, expected: { status: 200, outcome: 'ACCEPTED' }, run: post(id(), { nationalId: people.resident.nationalId, mobile: people.resident.mobile, channel: 'INTERNET_BANKING' }) },
    { name: `phone banking: ${bankCode} is not enabled for it`, nationalId: people.pending.nationalId, expected: rejected('CHANNEL_NOT_ALLOWED'), run: post(id(), { ...acceptedBody, channel: 'PHONE_BANKING' }) },
    { name: 'no registration for the ID', nationalId: unknownId, expected: rejected('NOT_REGISTERED'), run: post(id(), { nationalId: unknownId, mobile: randomMobile(), channel: 'INTERNET_BANKING' }) },
    { name: 'registration CLOSED', nationalId: people.closed.nationalId, expected: rejected('NOT_REGISTERED'), run: post(id(), { nationalId: people.closed.nationalId, mobile: people.closed.mobile, channel: 'INTERNET_BANKING' }) },
    { name: 'registration SUSPENDED', nationalId: people.suspended.nationalId, expected: rejected('ACCOUNT_SUSPENDED'), run: post(id(), { nationalId: people.suspended.nationalId, mobile: people.suspended.mobile, channel: 'INTERNET_BANKING' }) },
    { name: 'registration already ACTIVE', nationalId: people.active.nationalId, expected: rejected('ALREADY_ACTIVE'), run: post(id(), { nationalId: people.active.nationalId, mobile: people.active.mobile, channel: 'INTERNET_BANKING' }) },
    { name: 'bank holds another mobile', nationalId: people.mismatch.nationalId, expected: rejected('MOBILE_MISMATCH'), run: post(id(), { nationalId: people.mismatch.nationalId, mobile: randomMobile(), channel: 'INTERNET_BANKING' }) },
    { name: 'mobile held by another active account', nationalId: people.sharing.nationalId, expected: rejected('MOBILE_IN_USE'), run: post(id(), { nationalId: people.sharing.nationalId, mobile: people.sharing.mobile, channel: 'INTERNET_BANKING' }) },
    { name: 'the first request again (idempotent replay)', nationalId: people.pending.nationalId, expected: { status: 200, outcome: 'ACCEPTED', replayed: true, activationOf: 1 }, run: post(accepted, acceptedBody) },
    { name: 'the first request id with another body', nationalId: people.pending.nationalId, expected: problem(409, 'REQUEST_ID_REUSED'), run: post(accepted, { ...acceptedBody, customerReference: 'changed' }) },
    { name: 'status of the first request (GET)', nationalId: people.pending.nationalId, expected: { status: 200, outcome: 'ACCEPTED', activationOf: 1 }, run: () => send(who, 'GET', `/v1/activations/${accepted}`, id()) },
    { name: 'national ID with a wrong check digit', nationalId: '1000000007', expected: problem(400, 'INVALID_NATIONAL_ID'), run: post(id(), { nationalId: '1000000007', mobile: '0512345678', channel: 'INTERNET_BANKING' }) },
    { name: 'a landline instead of a mobile', nationalId: people.pending.nationalId, expected: problem(400, 'INVALID_MOBILE'), run: post(id(), { ...acceptedBody, mobile: '0112345678' }) },
    { name: 'body changed by one byte after signing', nationalId: people.pending.nationalId, expected: problem(401, 'SIGNATURE_INVALID'), run: post(id(), acceptedBody, { mutate: (b) => Buffer.from(b.toString().replace('simulator', 'simulatos')) }) },
    { name: 'signed 10 minutes ago', nationalId: people.pending.nationalId, expected: problem(401, 'STALE_REQUEST'), run: post(id(), acceptedBody, { iat: Math.floor(Date.now() / 1000) - 600 }) },
  ];
  const rows = [['#', 'scenario', 'national ID', 'expected', 'answer', 'detail', 'signature', 'result']];
  const activations = new Map<number, unknown>();
  const failed: string[] = [];
  for (const [i, scenario] of plan.entries()) {
    const number = i + 1;
    const masked = checkNationalId(scenario.nationalId).valid ? maskNationalId(scenario.nationalId) : 'invalid';
    let answer: Answer;
    try {
      answer = await scenario.run();
    } catch (error) {
      // No answer at all (refused, reset, timed out) is a result too.
      const cause = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      rows.push([String(number), scenario.name, masked, describeExpected(scenario.expected), 'no answer', cause, '-', 'FAIL']);
      failed.push(`#${number}`);
      continue;
    }
    activations.set(number, answer.body.activationId);
    const problems = mismatches(scenario.expected, answer, activations);
    if (problems.length) failed.push(`#${number}`);
    const detail = answer.status === 200 ? '' : String(answer.body.detail ?? '');
    rows.push([String(number), scenario.name, masked, describeExpected(scenario.expected), describeAnswer(answer), detail.slice(0, 60), answer.signed, problems.length ? `FAIL: ${problems.join('; ')}` : 'PASS']);
  }
  process.stdout.write(`\nbank ${bankCode} -> ${gatewayUrl}\n\n${table(rows)}\n`);
  return verdict(TOOL.name, plan.length, failed.length, failed);
}

/** A timed burst for unregistered IDs: each answer must be a signed decision (200). */
async function burst(who: Parties, count: number, concurrency: number): Promise<number> {
  const latencies: number[] = [];
  let next = 0;
  const answers = new Map<string, number>();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        let key: string;
        try {
          const answer = await send(who, 'POST', '/v1/activations', `burst-${randomUUID()}`, { nationalId: randomNationalId(), mobile: randomMobile(), channel: 'INTERNET_BANKING' });
          latencies.push(answer.ms);
          key = answer.status === 200 && answer.signed === 'verified' ? '200' : `${answer.status} ${String(answer.body.code ?? '')}${answer.signed === 'verified' ? '' : ' signature INVALID'}`.trim();
        } catch (error) {
          key = `no answer (${(error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).message})`;
        }
        answers.set(key, (answers.get(key) ?? 0) + 1);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const p = (q: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1) : '-');
  process.stdout.write(
    `\nburst: ${count} signed requests, ${concurrency} concurrent, ${seconds.toFixed(1)} s: ${(count / seconds).toFixed(0)} requests/s; ` +
      `latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms; answers ${JSON.stringify(Object.fromEntries(answers))}\n` +
      `(signing and verifying in this same process on the same machine; see npm run bench for the real measurement)\n`,
  );
  const unexpected = [...answers].filter(([key]) => key !== '200').map(([key, n]) => `${n} × ${key}`);
  return verdict(TOOL.name, count, count - (answers.get('200') ?? 0), unexpected);
}

exitWith(
  TOOL,
  Promise.resolve().then(() => {
    const who = parties();
    return options.burst !== undefined ? burst(who, options.burst, options.concurrency ?? 16) : scenarios(who);
  }),
);
