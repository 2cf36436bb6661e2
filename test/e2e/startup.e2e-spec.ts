import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { signBankRequest } from '../../libs/jws/request-signing';
import { parseCertificateBundle } from '../../libs/pki';
import { GATEWAY_MAIN } from '../support/test-environment';

const ROOT = join(__dirname, '../..');

/** Runs the built gateway with `env` and resolves when it prints its port or exits. */
function run(env: Record<string, string>, cwd = ROOT): Promise<{ code: number | null; output: string; port?: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [GATEWAY_MAIN], { cwd, env: { PATH: process.env.PATH ?? '', ISO8583_PORT: '0', MANAGEMENT_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  };
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ code: null, output, stop }), 60_000);
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"httpPort":(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ code: null, output, port: Number(match[1]), stop });
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output, stop });
    });
  });
}

describe('configuration is checked at start and a bad value stops the process with its name', () => {
  it.each([
    ['HTTP_PORT', { HTTP_PORT: 'eighty' }, /HTTP_PORT must be a whole number/],
    ['HTTP_PORT range', { HTTP_PORT: '70000' }, /HTTP_PORT must not be greater than 65535/],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://db/absher' }, /DATABASE_URL must be a postgres:\/\//],
    ['KAFKA_BROKERS', { KAFKA_BROKERS: 'broker-without-port' }, /KAFKA_BROKERS must be host:port/],
    ['LOG_LEVEL', { LOG_LEVEL: 'chatty' }, /LOG_LEVEL must be one of/],
    ['signing pair', { GATEWAY_SIGNING_KEY: '/tmp/k.pem' }, /GATEWAY_SIGNING_KEY and GATEWAY_SIGNING_CERT must be set together/],
    ['SUBJECT_HASH_KEY', { SUBJECT_HASH_KEY: 'short' }, /SUBJECT_HASH_KEY must be at least 32 characters/],
    ['hash keys with a real database', { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x' }, /PAN_HASH_KEY is required when DATABASE_URL is set/],
    ['operator token with a real database', { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x' }, /OPS_TOKEN is required when DATABASE_URL is set/],
    ['OPS_TOKEN', { OPS_TOKEN: 'short' }, /OPS_TOKEN must be at least 16 characters/],
  ])('%s', async (_name, env, message) => {
    const result = await run(env);
    expect(result.code).toBe(78);
    expect(result.output).toMatch(message);
    expect(result.output).not.toMatch(/mysql:\/\/db/); // connection strings are not echoed
  });

  it('a missing BANKS_FILE or TRUST_ANCHORS is named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gateway-start-'));
    const banks = await run({ BANKS_FILE: join(dir, 'nope.yaml'), DATA_DIR: dir, KAFKA_BROKERS: '127.0.0.1:1' });
    expect(banks.code).toBe(78);
    expect(banks.output).toMatch(/BANKS_FILE .*nope\.yaml cannot be read/);
    const anchors = await run({ TRUST_ANCHORS: join(dir, 'none.pem'), DATA_DIR: dir, KAFKA_BROKERS: '127.0.0.1:1' });
    expect(anchors.code).toBe(78);
    expect(anchors.output).toMatch(/TRUST_ANCHORS .*none\.pem cannot be read/);
  });

  it('a PostgreSQL that cannot be reached is named, with DATABASE_URL (without its password): exit code 69, one line, no stack', async () => {
    const result = await run({
      DATABASE_URL: 'postgres://gateway:s3cret-password@127.0.0.1:1/absher',
      PAN_HASH_KEY: 'p'.repeat(32),
      SUBJECT_HASH_KEY: 's'.repeat(32),
      KEY_ENCRYPTION_KEY: '0'.repeat(64),
      OPS_TOKEN: 'o'.repeat(16),
      KAFKA_BROKERS: '127.0.0.1:1',
    });
    expect(result.code).toBe(69);
    const errors = result.output.split('\n').filter((line) => line.includes('"level":"error"'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('PostgreSQL at DATABASE_URL (postgres://127.0.0.1:1/absher) cannot be reached: connect ECONNREFUSED 127.0.0.1:1');
    expect(result.output).not.toContain('s3cret-password');
    expect(result.output).not.toMatch(/^\s+at /m);
  });

  it('a structural mistake in BANKS_FILE names the bank and the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gateway-start-'));
    const file = join(dir, 'banks.yaml');
    writeFileSync(file, 'banks:\n  - code: RJHI\n    name: Al Rajhi\n    channels: [ATM, BRANCH]\n    rateLimitPerSecond: 10\n');
    const result = await run({ BANKS_FILE: file, DATA_DIR: dir, KAFKA_BROKERS: '127.0.0.1:1' });
    expect(result.code).toBe(78);
    expect(result.output).toMatch(/banks\[0\] \(RJHI\): channels must be a list of ATM, INTERNET_BANKING, PHONE_BANKING/);
  });
});

it('starts on the embedded defaults (PGlite, the development broker, the development PKI) and answers DEVB', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'gateway-embedded-'));
  const gateway = await run({ HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', DATA_DIR: dataDir });
  try {
    expect(gateway.port).toBeDefined();
    expect(gateway.output).toMatch(/embedded PostgreSQL \(PGlite\)/);
    expect(gateway.output).toMatch(/started the development Kafka broker/);
    expect(gateway.output).toMatch(/absher-bank-gateway listening/);
    const devb = {
      bankCode: 'DEVB',
      privateKey: createPrivateKey(readFileSync(join(ROOT, 'config/pki/dev/devb-signing-es256.key.pem'))),
      keyId: parseCertificateBundle(readFileSync(join(ROOT, 'config/pki/dev/devb-signing-es256.cert.pem'), 'utf8'))[0].thumbprint,
    };
    const body = Buffer.from(JSON.stringify({ nationalId: '1000000008', mobile: '0512345678', channel: 'INTERNET_BANKING' }));
    const response = await fetch(`http://127.0.0.1:${gateway.port}/v1/activations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signBankRequest(devb, { method: 'POST', path: '/v1/activations', requestId: 'embedded-1', body }) },
      body,
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: 'REJECTED', reason: 'NOT_REGISTERED', bankCode: 'DEVB' });
    // The live page needs no login on the development defaults (no OPS_TOKEN).
    const page = await fetch(`http://127.0.0.1:${gateway.port}/ops`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Absher bank gateway · operations');
    const snapshot = await fetch(`http://127.0.0.1:${gateway.port}/ops/snapshot`);
    expect(snapshot.status).toBe(200);
  } finally {
    await gateway.stop();
  }
});
