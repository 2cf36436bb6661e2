import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { atmActivation, TSTA_MAC_KEY } from '../support/atm-requests';
import { BankSigningIdentity } from '../../libs/jws/request-signing';
import { newMobile, newNationalId } from '../support/identities';
import { openSecret } from '../../libs/keys';
import { cliOk, runCli } from '../support/operator-cli';
import { GatewayAnswer, TEST_KEY_ENCRYPTION_KEY, TestEnvironment } from '../support/test-environment';

/**
 * The operators' CLI (issue 6), run as operators run it, against the store of
 * a running gateway: every change takes effect without a restart, is
 * audited, survives a restart (BANKS_FILE no longer overrides a bank changed
 * with the CLI), and MAC keys are never shown or stored in clear.
 */
const OLD_MAC_KEY = TSTA_MAC_KEY;
const NEW_MAC_KEY_HEX = '89ABCDEF0123456776543210FEDCBA98';
const dir = mkdtempSync(join(tmpdir(), 'gateway-cli-'));
let env: TestEnvironment;
let newb: BankSigningIdentity;
let sequence = 0;

beforeAll(async () => {
  env = await TestEnvironment.start();
  // A certificate issued by the trusted test CA that no bank has registered yet: it becomes NEWB's.
  newb = { ...env.pki.unregistered, bankCode: 'NEWB' };
});

afterAll(async () => {
  await env?.stop();
});

const cli = (...args: string[]) => runCli(env, 'test-operator', ...args);
const ok = (...args: string[]) => cliOk(env, 'test-operator', ...args);

/** Sends until `accept` holds (the gateways reload within a second or two), and returns that answer. */
async function eventually(send: () => Promise<GatewayAnswer>, accept: (answer: GatewayAnswer) => boolean, what: string): Promise<GatewayAnswer> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const answer = await send();
    if (accept(answer)) return answer;
    if (Date.now() > deadline) throw new Error(`${what}: still ${answer.status} ${JSON.stringify(answer.json)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const activation = (identity: BankSigningIdentity, channel = 'INTERNET_BANKING') =>
  env.send(identity, { requestId: `cli-${Date.now()}-${++sequence}`, body: { nationalId: newNationalId(), mobile: newMobile(), channel } });

const atmRequest = () => atmActivation({ nationalId: newNationalId(), mobile: newMobile() }, { rrnPrefix: 'CLI' });

it('--help lists every command, and each command explains its options', () => {
  const top = cli('--help');
  expect(top.code).toBe(0);
  for (const command of ['banks list', 'banks register', 'banks set-rate', 'certs add', 'certs list', 'certs revoke', 'mac-key set', 'channels enable', 'channels disable', 'requests show', 'audit list']) {
    expect(top.stdout).toContain(command);
    const own = cli(...command.split(' '), '--help');
    expect(own.code).toBe(0);
    expect(own.stdout).toMatch(/^usage: npm run cli -- /);
  }
  expect(cli('banks', 'delete').code).toBe(2);
});

it('registers a bank and its certificate; rotates it: both certificates work until the old one is revoked, then only the new one; no restart', async () => {
  expect((await activation(newb)).json.code).toBe('UNKNOWN_BANK');
  expect(ok('banks', 'register', '--code', 'NEWB', '--name', 'New Bank', '--channels', 'INTERNET_BANKING,ATM', '--acquirer', '777777', '--rate', '50')).toContain('registered NEWB');
  await eventually(() => activation(newb), (a) => a.json.code === 'UNKNOWN_KEY', 'registered bank without a certificate');

  const certificateFile = join(dir, 'newb.pem');
  writeFileSync(certificateFile, env.pki.unregistered.certificatePem);
  expect(ok('certs', 'add', '--bank', 'NEWB', '--file', certificateFile)).toContain(`thumbprint (kid) ${newb.keyId}`);
  const accepted = await eventually(() => activation(newb), (a) => a.status === 200, 'certificate added');
  expect(accepted.json.bankCode).toBe('NEWB');
  expect(ok('certs', 'list', '--bank', 'NEWB')).toContain(newb.keyId);

  // A certificate that does not chain to TRUST_ANCHORS is refused, saying why.
  const untrustedFile = join(dir, 'untrusted.pem');
  writeFileSync(untrustedFile, env.pki.untrusted.certificatePem);
  const refused = cli('certs', 'add', '--bank', 'NEWB', '--file', untrustedFile);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/does not chain to the trust anchors/);

  // Rotation: the next certificate is added while the current one is in use; both sign valid requests.
  const next = env.pki.newCertificate('NEWB', 'NEWB signing next');
  const nextFile = join(dir, 'newb-next.pem');
  writeFileSync(nextFile, next.certificatePem);
  expect(ok('certs', 'add', '--bank', 'NEWB', '--file', nextFile)).toContain(`thumbprint (kid) ${next.keyId}`);
  await eventually(() => activation(next), (a) => a.status === 200, 'next certificate added');
  expect((await activation(newb)).status).toBe(200); // the old one still works

  ok('certs', 'revoke', '--bank', 'NEWB', '--thumbprint', newb.keyId);
  await eventually(() => activation(newb), (a) => a.json.code === 'UNKNOWN_KEY', 'old certificate revoked');
  expect((await activation(next)).status).toBe(200); // the new one keeps working
  expect(ok('certs', 'list', '--bank', 'NEWB')).toMatch(new RegExp(`${newb.keyId}.*\\d{4}-\\d{2}-\\d{2}T[^ ]+Z\\s*$`, 'm')); // revoked: a revocation time
  expect(cli('certs', 'revoke', '--bank', 'NEWB', '--thumbprint', newb.keyId).stderr).toMatch(/no certificate of NEWB in use/);
});

it("changes a bank's rate limit without a restart", async () => {
  ok('banks', 'set-rate', '--bank', 'TSTA', '--rate', '1');
  // A burst of 5 at 1/s: once the new limit is loaded, most are refused.
  await eventually(
    async () => {
      const answers = await Promise.all(Array.from({ length: 5 }, () => activation(env.pki.tsta.es256)));
      return answers.find((a) => a.status === 429) ?? answers[0];
    },
    (a) => a.status === 429 && a.json.code === 'RATE_LIMITED',
    'rate limit lowered',
  );
  ok('banks', 'set-rate', '--bank', 'TSTA', '--rate', '10000');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await eventually(
    async () => {
      const answers = await Promise.all(Array.from({ length: 5 }, () => activation(env.pki.tsta.es256)));
      return answers.find((a) => a.status !== 200) ?? answers[0];
    },
    (a) => a.status === 200,
    'rate limit raised',
  );
  expect(cli('banks', 'set-rate', '--bank', 'TSTA', '--rate', '0').stderr).toMatch(/--rate must be a whole number/);
});

it('disables and enables a channel without a restart', async () => {
  ok('channels', 'disable', '--bank', 'TSTA', '--channel', 'INTERNET_BANKING');
  const rejected = await eventually(() => activation(env.pki.tsta.es256), (a) => a.json.reason === 'CHANNEL_NOT_ALLOWED', 'channel disabled');
  expect(rejected.json.status).toBe('REJECTED');
  ok('channels', 'enable', '--bank', 'TSTA', '--channel', 'INTERNET_BANKING');
  await eventually(() => activation(env.pki.tsta.es256), (a) => a.status === 200 && a.json.reason !== 'CHANNEL_NOT_ALLOWED', 'channel enabled');
});

it('rotates a MAC key: never printed, stored sealed, the old key refused and the new one used, also after a restart', async () => {
  const keyFile = join(dir, 'tsta.mac');
  writeFileSync(keyFile, `${NEW_MAC_KEY_HEX}\n`);
  const result = cli('mac-key', 'set', '--bank', 'TSTA', '--file', keyFile);
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/key check value [0-9A-F]{6}/);
  expect(`${result.stdout}${result.stderr}`.toUpperCase()).not.toContain(NEW_MAC_KEY_HEX);
  // The raw rows: every MAC key (from the CLI, and from BANKS_FILE) is stored sealed, and only the key-encryption key opens it.
  const rows = await env.database.query<{ code: string; row: string; mac_key_sealed: string }>(`SELECT code, row_to_json(bank)::text AS row, mac_key_sealed FROM bank WHERE code IN ('TSTA', 'TSTB') ORDER BY code`);
  const [tsta, tstb] = rows;
  expect(tsta.mac_key_sealed).toMatch(/^v1:/);
  expect(tsta.row.toUpperCase()).not.toContain(NEW_MAC_KEY_HEX);
  expect(tsta.row).not.toContain(Buffer.from(NEW_MAC_KEY_HEX, 'hex').toString('base64'));
  expect(openSecret(Buffer.from(TEST_KEY_ENCRYPTION_KEY, 'hex'), tsta.mac_key_sealed, 'TSTA').toString('hex').toUpperCase()).toBe(NEW_MAC_KEY_HEX);
  expect(tstb.row.toUpperCase()).not.toContain('FEDCBA98765432100123456789ABCDEF'); // TSTB's key, from BANKS_FILE
  expect(openSecret(Buffer.from(TEST_KEY_ENCRYPTION_KEY, 'hex'), tstb.mac_key_sealed, 'TSTB').toString('hex').toUpperCase()).toBe('FEDCBA98765432100123456789ABCDEF');
  expect(ok('banks', 'list').toUpperCase()).not.toContain(NEW_MAC_KEY_HEX);

  const newKey = Buffer.from(NEW_MAC_KEY_HEX, 'hex');
  const answerWith = async (key: Buffer) => {
    const atm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, key);
    try {
      return (await atm.request(atmRequest())).fields[39];
    } finally {
      await atm.close();
    }
  };
  const deadline = Date.now() + 15_000;
  while ((await answerWith(newKey)) !== '25' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
  expect(await answerWith(newKey)).toBe('25'); // MAC accepted; the customer is not registered
  expect(await answerWith(OLD_MAC_KEY)).toBe('63');

  // BANKS_FILE still has the old key for TSTA; TSTA is now managed with the CLI, so the file no longer overrides it.
  await env.stopGateway();
  await env.startGateway();
  expect(await answerWith(newKey)).toBe('25');
  expect(await answerWith(OLD_MAC_KEY)).toBe('63');
  await env.waitForLog((line) => line.includes('BANKS_FILE entries ignored') && line.includes('TSTA'));
  // NEWB, made with the CLI, is not in BANKS_FILE and survives the restart.
  expect(ok('banks', 'list')).toMatch(/NEWB\s+New Bank\s+ATM,INTERNET_BANKING\s+777777\s+50\s+1\s+not set\s+CLI/);
});

it('shows a request with personal data masked, and audits every change with who made it', async () => {
  const requestId = `cli-show-${Date.now()}`;
  const nationalId = newNationalId();
  const answer = await env.send(env.pki.tsta.es256, { requestId, body: { nationalId, mobile: newMobile(), channel: 'INTERNET_BANKING' } });
  const shown = ok('requests', 'show', '--bank', 'TSTA', '--request-id', requestId);
  expect(shown).toContain(String(answer.json.activationId));
  expect(shown).not.toContain(nationalId);
  expect(JSON.parse(shown)).toMatchObject({ request_id: requestId, status: answer.json.status, national_id: `${nationalId[0]}*******${nationalId.slice(-2)}` });
  expect(ok('requests', 'show', '--activation-id', String(answer.json.activationId))).toContain(requestId);

  const audit = ok('audit', 'list', '--limit', '100');
  for (const action of ['bank-registered', 'certificate-added', 'certificate-revoked', 'rate-limit-set', 'channel-disabled', 'channel-enabled', 'mac-key-set']) {
    expect(audit).toMatch(new RegExp(`test-operator\\s+${action}`));
  }
  const rows = await env.database.query<{ operator: string; action: string; bank_code: string }>(`SELECT operator, action, bank_code FROM registry_audit WHERE operator = 'test-operator' ORDER BY id`);
  expect(rows.map((r) => `${r.action}:${r.bank_code}`)).toEqual([
    'bank-registered:NEWB',
    'certificate-added:NEWB',
    'certificate-added:NEWB',
    'certificate-revoked:NEWB',
    'rate-limit-set:TSTA',
    'rate-limit-set:TSTA',
    'channel-disabled:TSTA',
    'channel-enabled:TSTA',
    'mac-key-set:TSTA',
  ]);
});
