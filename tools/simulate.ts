/**
 * `npm run simulate`: plays the identity core and a bank against a running
 * gateway. It publishes registrations on absher.registrations.v1, then sends
 * signed requests (as the development bank DEVB) that produce every outcome
 * of spec section 2 and a few errors, verifies each answer's signature, and
 * prints a table.
 *
 *   npm start                     # in one terminal
 *   npm run simulate              # in another
 *   npm run simulate -- --burst 2000 --concurrency 32   # then a timed burst
 *
 * Environment: GATEWAY_URL (default http://127.0.0.1:8080), KAFKA_BROKERS
 * (default: the development broker's address the gateway wrote to
 * DATA_DIR/kafka-brokers), DATA_DIR (.data), BANK_KEY/BANK_CERT (DEVB's ES256
 * pair), GATEWAY_SIGNING_CERT (to verify answers).
 */
import { createPrivateKey, KeyObject, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { checkNationalId, luhnValid, maskNationalId } from '../libs/identity';
import { BankSigningIdentity, signBankRequest } from '../libs/jws';
import { parseCertificateBundle } from '../libs/pki';
import { isUnbound, verifyResponseSignature } from '../src/channels/http/response-signer';
import { projectRoot } from '../src/common/project-root';
import { TOPICS } from '../src/kafka/topics';
import { developmentKafkaBrokers, publishRegistrations } from './identity-core';

const root = projectRoot();
const gatewayUrl = (process.env.GATEWAY_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};


const bank: BankSigningIdentity = {
  bankCode: process.env.BANK_CODE ?? 'DEVB',
  privateKey: createPrivateKey(readFileSync(process.env.BANK_KEY ?? join(root, 'config/pki/dev/devb-signing-es256.key.pem'))),
  keyId: parseCertificateBundle(readFileSync(process.env.BANK_CERT ?? join(root, 'config/pki/dev/devb-signing-es256.cert.pem'), 'utf8'))[0].thumbprint,
};
const gatewayCertificate = parseCertificateBundle(
  readFileSync(process.env.GATEWAY_SIGNING_CERT ?? join(root, 'config/pki/dev/gateway-signing.cert.pem'), 'utf8'),
)[0];

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

async function send(method: 'POST' | 'GET', path: string, requestId: string, payload?: unknown, tamper?: { iat?: number; mutate?: (b: Buffer) => Buffer }): Promise<Answer> {
  const body = payload === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(payload));
  const headers = signBankRequest(bank, { method, path, requestId, body }, tamper?.iat ? { iat: tamper.iat } : {});
  const started = performance.now();
  const response = await fetch(gatewayUrl + path, {
    method,
    headers: { ...(method === 'POST' ? { 'content-type': 'application/json' } : {}), ...headers },
    body: method === 'POST' ? (tamper?.mutate ? tamper.mutate(body) : body) : undefined,
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  const ms = performance.now() - started;
  let signed: Answer['signed'] = 'INVALID';
  try {
    const claims = await verifyResponseSignature(response.headers.get('x-jws-signature') ?? '', bytes, gatewayCertificate.publicKey as KeyObject);
    // Spec 3.3: an answer is bound to this request; a 401 to none (no jti, htm, htu), so it never passes as another's.
    const bound = claims.jti === requestId && claims.htm === method && claims.htu === path;
    if (response.status === 401 ? isUnbound(claims) : bound) signed = 'verified';
  } catch {
    signed = 'INVALID';
  }
  return { status: response.status, body: JSON.parse(bytes.toString() || '{}'), signed, replayed: response.headers.get('idempotent-replayed') === 'true', ms };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => '| ' + r.map((cell, c) => cell.padEnd(widths[c])).join(' | ') + ' |';
  return [line(rows[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.slice(1).map(line)].join('\n');
}

async function scenarios(): Promise<void> {
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

  const local = (e164: string) => `0${e164.slice(4)}`;
  const unknownId = randomNationalId();
  const id = () => `sim-${randomUUID()}`;
  const accepted = id();
  const acceptedBody = { nationalId: people.pending.nationalId, mobile: local(people.pending.mobile), channel: 'INTERNET_BANKING', customerReference: 'simulator' };
  const plan: [string, string, () => Promise<Answer>][] = [
    ['pending registration, same mobile (sent as 05...)', people.pending.nationalId, () => send('POST', '/v1/activations', accepted, acceptedBody)],
    ['resident (iqama), mobile sent as +966...', people.resident.nationalId, () => send('POST', '/v1/activations', id(), { nationalId: people.resident.nationalId, mobile: people.resident.mobile, channel: 'INTERNET_BANKING' })],
    ['phone banking: DEVB is not enabled for it', people.pending.nationalId, () => send('POST', '/v1/activations', id(), { ...acceptedBody, channel: 'PHONE_BANKING' })],
    ['no registration for the ID', unknownId, () => send('POST', '/v1/activations', id(), { nationalId: unknownId, mobile: randomMobile(), channel: 'INTERNET_BANKING' })],
    ['registration CLOSED', people.closed.nationalId, () => send('POST', '/v1/activations', id(), { nationalId: people.closed.nationalId, mobile: people.closed.mobile, channel: 'INTERNET_BANKING' })],
    ['registration SUSPENDED', people.suspended.nationalId, () => send('POST', '/v1/activations', id(), { nationalId: people.suspended.nationalId, mobile: people.suspended.mobile, channel: 'INTERNET_BANKING' })],
    ['registration already ACTIVE', people.active.nationalId, () => send('POST', '/v1/activations', id(), { nationalId: people.active.nationalId, mobile: people.active.mobile, channel: 'INTERNET_BANKING' })],
    ['bank holds another mobile', people.mismatch.nationalId, () => send('POST', '/v1/activations', id(), { nationalId: people.mismatch.nationalId, mobile: randomMobile(), channel: 'INTERNET_BANKING' })],
    ['mobile held by another active account', people.sharing.nationalId, () => send('POST', '/v1/activations', id(), { nationalId: people.sharing.nationalId, mobile: people.sharing.mobile, channel: 'INTERNET_BANKING' })],
    ['the first request again (idempotent replay)', people.pending.nationalId, () => send('POST', '/v1/activations', accepted, acceptedBody)],
    ['the first request id with another body', people.pending.nationalId, () => send('POST', '/v1/activations', accepted, { ...acceptedBody, customerReference: 'changed' })],
    ['status of the first request (GET)', people.pending.nationalId, () => send('GET', `/v1/activations/${accepted}`, id())],
    ['national ID with a wrong check digit', '1000000007', () => send('POST', '/v1/activations', id(), { nationalId: '1000000007', mobile: '0512345678', channel: 'INTERNET_BANKING' })],
    ['a landline instead of a mobile', people.pending.nationalId, () => send('POST', '/v1/activations', id(), { ...acceptedBody, mobile: '0112345678' })],
    ['body changed by one byte after signing', people.pending.nationalId, () => send('POST', '/v1/activations', id(), acceptedBody, { mutate: (b) => Buffer.from(b.toString().replace('simulator', 'simulatos')) })],
    ['signed 10 minutes ago', people.pending.nationalId, () => send('POST', '/v1/activations', id(), acceptedBody, { iat: Math.floor(Date.now() / 1000) - 600 })],
  ];
  const rows = [['#', 'scenario', 'national ID', 'HTTP', 'answer', 'reason / detail', 'signature']];
  for (const [i, [name, nationalId, run]] of plan.entries()) {
    const answer = await run();
    const outcome = answer.status === 200 ? answer.body.status : answer.body.code;
    const detail = answer.status === 200 ? String(answer.body.reason ?? '') + (answer.replayed ? ' (Idempotent-Replayed)' : '') : String(answer.body.detail ?? '');
    rows.push([String(i + 1), name, checkNationalId(nationalId).valid ? maskNationalId(nationalId) : 'invalid', String(answer.status), String(outcome), detail.slice(0, 70), answer.signed]);
  }
  process.stdout.write(`\nbank DEVB -> ${gatewayUrl}\n\n${table(rows)}\n`);
}

async function burst(count: number, concurrency: number): Promise<void> {
  const latencies: number[] = [];
  let next = 0;
  const statuses = new Map<number, number>();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        const answer = await send('POST', '/v1/activations', `burst-${randomUUID()}`, { nationalId: randomNationalId(), mobile: randomMobile(), channel: 'INTERNET_BANKING' });
        latencies.push(answer.ms);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1);
  process.stdout.write(
    `\nburst: ${count} signed requests, ${concurrency} concurrent, ${seconds.toFixed(1)} s: ${(count / seconds).toFixed(0)} requests/s; ` +
      `latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms; answers ${JSON.stringify(Object.fromEntries(statuses))}\n` +
      `(signing and verifying in this same process on the same machine; see npm run bench for the real measurement)\n`,
  );
}

async function main(): Promise<void> {
  const count = option('burst', 0);
  if (count > 0) await burst(count, option('concurrency', 16));
  else await scenarios();
}

main().catch((error) => {
  process.stderr.write(`simulate: ${(error as Error).message}\n`);
  process.exit(1);
});
