import { createHash, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BankSigningIdentity } from '../../libs/jws/request-signing';
import { parseCertificateBundle } from '../../libs/pki';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { runNode, ToolRun } from '../support/run-tool';

/**
 * The tools as developers and operators run them (dist/tools, as processes):
 * one option parser for all of them (an unknown option refused before
 * anything runs, --help), and simulators whose verdict and exit code follow
 * the gateway's answers. The gateway runs as the simulators assume (the
 * development bank DEVB of config/banks.yaml, ATM and INTERNET_BANKING only),
 * then is set up otherwise: a signing certificate the simulator does not
 * verify with, PHONE_BANKING enabled for DEVB, a MAC key the switch does not
 * hold. The gateway still answers each time; the answers are not the expected
 * ones, and the verdict says which.
 */
const ROOT = join(__dirname, '../..');
const TOOLS = join(ROOT, 'dist/tools');
const CLI = join(TOOLS, 'cli.js');
const SIMULATE = join(TOOLS, 'simulate.js');
const SIMULATE_ATM = join(TOOLS, 'simulate-atm.js');
const DEV_PKI = join(ROOT, 'config/pki');
/** The development bank and its trust anchor, as `npm start` loads them; the rest of the test PKI stays. */
const DEVELOPMENT_BANKS = { BANKS_FILE: join(ROOT, 'config/banks.yaml'), TRUST_ANCHORS: join(DEV_PKI, 'trust-anchors.pem') };

type Run = ToolRun;

/** The last line of a run's output: the simulators' verdict. */
const verdictOf = (run: Run) => run.stdout.trimEnd().split('\n').pop();

/** The result cell of each row of a simulator's table, by its number. */
function results(run: Run): Map<number, string> {
  const found = new Map<number, string>();
  for (const line of run.stdout.split('\n')) {
    const cells = /^\| (\d+) +\|/.test(line) ? line.slice(2, -2).split(' | ').map((c) => c.trim()) : null;
    if (cells) found.set(Number(cells[0]), cells[cells.length - 1]);
  }
  return found;
}

let env: TestEnvironment;
let simulatorEnv: Record<string, string>;
let switchEnv: Record<string, string>;
const devb: BankSigningIdentity = {
  bankCode: 'DEVB',
  privateKey: createPrivateKey(readFileSync(join(DEV_PKI, 'dev/devb-signing-es256.key.pem'))),
  keyId: parseCertificateBundle(readFileSync(join(DEV_PKI, 'dev/devb-signing-es256.cert.pem'), 'utf8'))[0].thumbprint,
};

beforeAll(async () => {
  env = await TestEnvironment.start(DEVELOPMENT_BANKS);
  const kafka = { KAFKA_BROKERS: env.broker.brokers.join(',') };
  // The test gateway signs with the test PKI's key: the simulator is told to verify with its certificate.
  simulatorEnv = { ...kafka, GATEWAY_URL: env.baseUrl, GATEWAY_SIGNING_CERT: env.pki.gatewayCertFile };
  switchEnv = { ...kafka, ISO_HOST: '127.0.0.1', ISO8583_PORT: String(env.isoPort) };
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

const cli = (...args: string[]) => runNode(CLI, args, env.gatewayEnv(DEVELOPMENT_BANKS));

describe('one option parser', () => {
  it('cli: an unknown option is refused with exit code 2, named, with the usage line, before anything runs; a misspelt option of a change writes nothing', async () => {
    const nope = await cli('banks', 'list', '--nope');
    expect(nope).toEqual({ code: 2, stdout: '', stderr: expect.stringMatching(/^cli: unknown option --nope\nusage: npm run cli -- banks list \[--operator NAME\]\n/) });

    const audited = await env.database.query('SELECT id FROM registry_audit');
    const misspelt = await cli('banks', 'register', '--code', 'NEWB', '--name', 'New Bank', '--channels', 'INTERNET_BANKING', '--rtae', '5');
    expect(misspelt).toMatchObject({ code: 2, stdout: '', stderr: expect.stringMatching(/^cli: unknown option --rtae\n/) });
    expect(await env.database.query(`SELECT code FROM bank WHERE code = 'NEWB'`)).toEqual([]);
    expect(await env.database.query('SELECT id FROM registry_audit')).toEqual(audited);

    const bad = await cli('audit', 'list', '--limit', 'ten');
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringMatching(/^cli: --limit must be a whole number of at least 1 \(got "ten"\)\n/) });
    const missing = await cli('certs', 'list', '--bank');
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringMatching(/^cli: --bank needs a value \(CODE\)\n/) });
  });

  it('cli: --help prints a command’s usage and options, exit code 0, and does nothing else', async () => {
    const help = await cli('banks', 'list', '--help');
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^usage: npm run cli -- banks list \[--operator NAME\]\n/);
    expect(help.stdout).toMatch(/^ {2}--operator NAME +who makes the change/m);
    expect(help.stdout).toMatch(/^ {2}-h, --help +print this help and exit$/m);
    const register = await cli('banks', 'register', '-h');
    expect(register.code).toBe(0);
    for (const option of ['--code CODE', '--name NAME', '--channels LIST', '--acquirer ID', '--rate N']) expect(register.stdout).toMatch(new RegExp(`^ {2}${option}`, 'm'));
  });

  it.each([
    ['cli.js', 'cli', 2],
    ['simulate.js', 'simulate', 2],
    ['simulate-atm.js', 'simulate:atm', 2],
    // The kit's 2 is INCOMPLETE, a verdict banks act on.
    ['conformance/conformance.js', 'conformance', 64],
    ['conformance/dev-customers.js', 'conformance:dev-customers', 2],
    ['kafka-topics.js', 'kafka:topics', 2],
    ['bench/bench.js', 'bench', 2],
    ['event-catalogue.js', 'event-catalogue', 2],
    ['iso-field-table.js', 'iso-field-table', 2],
    ['dev-pki.js', 'dev-pki', 2],
  ])('%s (%s): --help prints the usage and exits 0; an unknown option exits %d, named, with the usage line; neither does anything else', async (script, name, usageExitCode) => {
    const pki = createHash('sha256').update(readFileSync(join(DEV_PKI, 'trust-anchors.pem'))).digest('hex');
    // No gateway, Kafka or configuration: neither may need them.
    const help = await runNode(join(TOOLS, script), ['--help']);
    expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^usage: /);
    expect(help.stdout).toMatch(/^ {2}-h, --help +print this help and exit$/m);
    const nope = await runNode(join(TOOLS, script), ['--nope']);
    expect(nope).toEqual({ code: usageExitCode, stdout: '', stderr: expect.stringMatching(new RegExp(`^${name}: unknown option --nope\nusage: `)) });
    // dev-pki would have replaced the development PKI.
    expect(createHash('sha256').update(readFileSync(join(DEV_PKI, 'trust-anchors.pem'))).digest('hex')).toBe(pki);
  });
});

describe('simulate', () => {
  it('against a gateway set up as it assumes: every scenario PASS, the verdict, exit code 0', async () => {
    const run = await runNode(SIMULATE, [], simulatorEnv);
    expect({ code: run.code, verdict: verdictOf(run) }).toEqual({ code: 0, verdict: 'simulate: 16 of 16 as expected' });
    const rows = results(run);
    expect(rows.size).toBe(16);
    for (const [n, result] of rows) expect({ n, result }).toEqual({ n, result: 'PASS' });
    expect(run.stdout).toMatch(/^\| 3 +\| phone banking: DEVB is not enabled for it +\| 1\*{7}\d\d +\| 200 REJECTED CHANNEL_NOT_ALLOWED +\| 200 REJECTED CHANNEL_NOT_ALLOWED +\|/m);
  }, 60_000);

  it('verifying with another certificate than the gateway signs with: every answer NOT as expected (signature INVALID), exit code 1', async () => {
    const run = await runNode(SIMULATE, [], { ...simulatorEnv, GATEWAY_SIGNING_CERT: join(DEV_PKI, 'dev/gateway-signing.cert.pem') });
    expect(run.code).toBe(1);
    expect(verdictOf(run)).toBe(`simulate: 16 of 16 NOT as expected: ${Array.from({ length: 16 }, (_, i) => `#${i + 1}`).join(', ')}`);
    for (const [n, result] of results(run)) expect({ n, result }).toEqual({ n, result: 'FAIL: signature INVALID' });
  }, 60_000);

  it('once DEVB is enabled for PHONE_BANKING: scenario 3 NOT as expected, named with what came back, exit code 1', async () => {
    expect((await cli('channels', 'enable', '--bank', 'DEVB', '--channel', 'PHONE_BANKING', '--operator', 'test-operator')).code).toBe(0);
    // The gateway reloads the registry within a second or two.
    for (const deadline = Date.now() + 15_000; ; ) {
      const answer = await env.send(devb, { requestId: `tools-${Date.now()}`, body: { nationalId: newNationalId(), mobile: newMobile(), channel: 'PHONE_BANKING' } });
      if (answer.json.reason !== 'CHANNEL_NOT_ALLOWED') break;
      if (Date.now() > deadline) throw new Error('PHONE_BANKING still not allowed for DEVB');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const run = await runNode(SIMULATE, [], simulatorEnv);
    expect({ code: run.code, verdict: verdictOf(run) }).toEqual({ code: 1, verdict: 'simulate: 1 of 16 NOT as expected: #3' });
    expect(run.stdout).toMatch(/^\| 3 +\| phone banking: DEVB is not enabled for it +\| 1\*{7}\d\d +\| 200 REJECTED CHANNEL_NOT_ALLOWED +\| 200 ACCEPTED +\|.*\| FAIL: got 200 ACCEPTED \|$/m);
  }, 60_000);
});

describe('simulate:atm', () => {
  it('with the MAC key the gateway holds: every exchange PASS, the verdict, exit code 0', async () => {
    const run = await runNode(SIMULATE_ATM, [], switchEnv);
    expect({ code: run.code, verdict: verdictOf(run) }).toEqual({ code: 0, verdict: 'simulate:atm: 14 of 14 as expected' });
    for (const [n, result] of results(run)) expect({ n, result }).toEqual({ n, result: 'PASS' });
  }, 60_000);

  it('with another MAC key: 63s instead of decisions, NOT as expected, exit code 1; what needs no MAC still passes', async () => {
    const run = await runNode(SIMULATE_ATM, [], { ...switchEnv, MAC_KEY: 'FEDCBA98765432100123456789ABCDEF' });
    expect({ code: run.code, verdict: verdictOf(run) }).toEqual({ code: 1, verdict: 'simulate:atm: 10 of 14 NOT as expected: #2, #3, #4, #5, #6, #7, #9, #10, #12, #13' });
    // Sign-on, the unknown acquirer's 58, the deliberately wrong MAC's 63 and sign-off do not depend on the key.
    expect([...results(run)].filter(([, result]) => result === 'PASS').map(([n]) => n)).toEqual([1, 8, 11, 14]);
    expect(run.stdout).toMatch(/^\| 2 +\| 00 accepted +\| 0210 39 = 00, 38 set, MAC verified +\| 0210 39 = 63, no MAC +\| FAIL +\|$/m);
    expect(run.stdout).toContain('expected 0210 39 = 00, 38 set, MAC verified: FAIL (got 0210 39 = 63; no 38 or 48 AI; no MAC)');
  }, 60_000);
});
