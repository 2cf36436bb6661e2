import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCertificate } from '../support/test-pki';
import { localSpelling, newMobile, newNationalId } from '../support/identities';
import { CaseOutcome } from '../../tools/conformance/report';
import { GATEWAY_MAIN, TestEnvironment } from '../support/test-environment';
import { runNode, ToolRun } from '../support/run-tool';

/**
 * The conformance kit (issue 6) as a bank runs it: the built kit as a child
 * process against the built gateway, over real HTTP and TCP, with the
 * gateway's own database and Kafka broker behind it. The report is read as
 * the bank would send it in, and the rows the gateway stored show the kit
 * sent what the report claims.
 */
const ROOT = join(__dirname, '../..');
const KIT = join(ROOT, 'dist/tools/conformance/conformance.js');
const DEV_CUSTOMERS = join(ROOT, 'dist/tools/conformance/dev-customers.js');
const TSTA_MAC_KEY = '0123456789ABCDEFFEDCBA9876543210';
/** TSTB's key: a real key, but registered for another acquirer. */
const TSTB_MAC_KEY = 'FEDCBA98765432100123456789ABCDEF';
/** The published key check value of the test key 0123456789ABCDEF FEDCBA9876543210. */
const TSTA_KCV = '08D7B4';
const DEVB_MAC_KEY = '0123456789ABCDEFFEDCBA9876543210';

const JSON_CASES = Array.from({ length: 15 }, (_, i) => `J${i + 1}`);
const ISO_CASES = Array.from({ length: 13 }, (_, i) => `I${i + 1}`);

type Run = ToolRun;

/** A case as read back from the report's Markdown: its result is whatever the cell says. */
type Row = Pick<CaseOutcome, 'id' | 'title' | 'reference' | 'expected' | 'actual' | 'signature'> & { result: string };

/** The case rows of the report's tables, by case id. */
function rows(report: string): Map<string, Row> {
  const found = new Map<string, Row>();
  for (const line of report.split('\n')) {
    if (!/^\| [JI][0-9]+ \|/.test(line)) continue;
    const cells = line
      .slice(2, -2)
      .split(/(?<!\\) \| /)
      .map((c) => c.trim());
    const [id, title, reference, expected, actual] = cells;
    const signed = cells.length === 7;
    found.set(id, { id, title, reference, expected, actual, signature: signed ? cells[5] : undefined, result: cells[cells.length - 1] });
  }
  return found;
}

let env: TestEnvironment;
let dir: string;
const files: Record<string, string> = {};
const people = {
  accepted: { nationalId: newNationalId(), mobile: newMobile() },
  mobileMismatch: { nationalId: newNationalId(), mobile: newMobile() },
  alreadyActive: { nationalId: newNationalId(), mobile: newMobile() },
  suspended: { nationalId: newNationalId(), mobile: newMobile() },
  mobileInUse: { nationalId: newNationalId('2'), mobile: newMobile() },
};
const holder = { nationalId: newNationalId(), mobile: people.mobileInUse.mobile };

function writePair(name: string, certificate: TestCertificate): void {
  files[`${name}Key`] = join(dir, `${name}.key.pem`);
  files[`${name}Cert`] = join(dir, `${name}.cert.pem`);
  writeFileSync(files[`${name}Key`], certificate.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(files[`${name}Cert`], certificate.certificatePem);
}

beforeAll(async () => {
  env = await TestEnvironment.start();
  dir = mkdtempSync(join(tmpdir(), 'conformance-'));
  writePair('tsta', env.pki.tsta.es256);
  writePair('unregistered', env.pki.unregistered);
  await env.register(people.accepted.nationalId, people.accepted.mobile, 'PENDING_ACTIVATION');
  await env.register(people.mobileMismatch.nationalId, people.mobileMismatch.mobile, 'PENDING_ACTIVATION');
  await env.register(people.alreadyActive.nationalId, people.alreadyActive.mobile, 'ACTIVE');
  await env.register(people.suspended.nationalId, people.suspended.mobile, 'SUSPENDED');
  await env.register(holder.nationalId, holder.mobile, 'ACTIVE');
  await env.register(people.mobileInUse.nationalId, people.mobileInUse.mobile, 'PENDING_ACTIVATION');
  files.customers = join(dir, 'customers.json');
  // One mobile in the spelling a bank most often holds: the file takes any spelling the spec accepts.
  writeFileSync(files.customers, JSON.stringify({ ...people, accepted: { ...people.accepted, mobile: localSpelling(people.accepted.mobile) } }, null, 2));
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

const jsonArgs = (key = files.tstaKey, cert = files.tstaCert) => ['--url', env.baseUrl, '--key', key, '--cert', cert];
const isoArgs = (macKey = TSTA_MAC_KEY) => ['--iso-host', '127.0.0.1', '--iso-port', String(env.isoPort), '--acquirer', '111111', '--mac-key', macKey];

/** Nothing secret or personal in what the kit printed: keys, the MAC key, the PAN, and every national ID and mobile the gateway stored for its requests. */
async function expectNothingSecret(run: Run, macKey: string, keyFiles: string[]): Promise<void> {
  const output = run.stdout + run.stderr;
  expect(output).not.toMatch(/PRIVATE KEY/);
  const squeezed = output.replace(/\s/g, '');
  for (const file of keyFiles) {
    // Any 24-character stretch of the key's base64, however the output might wrap it.
    const body = readFileSync(file, 'utf8').replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '');
    for (let i = 0; i + 24 <= body.length; i += 24) expect(squeezed).not.toContain(body.slice(i, i + 24));
  }
  expect(output.toUpperCase()).not.toContain(macKey.toUpperCase());
  expect(output).not.toContain('4111111111111111');
  const stored = await env.database.query<{ national_id: string; mobile: string }>(`SELECT national_id, mobile FROM activation_request WHERE request_id LIKE 'conf-%' OR terminal_id = 'CONFTEST'`);
  const personal = [...Object.values(people), holder, ...stored.map((r) => ({ nationalId: r.national_id, mobile: r.mobile }))];
  for (const person of personal) {
    expect(output).not.toContain(person.nationalId);
    expect(output).not.toContain(person.mobile.slice(4)); // the 9 digits every spelling of the mobile contains
  }
}

describe('conformance kit', () => {
  it('passes against a conforming gateway on both channels, with every case PASS, the identity header and nothing secret printed', async () => {
    const reportFile = join(dir, 'report.md');
    const run = await runNode(KIT, ['--bank', 'TSTA', ...jsonArgs(), '--gateway-cert', env.pki.gatewayCertFile, ...isoArgs(), '--customers', files.customers, '--report', reportFile]);
    expect({ code: run.code, stderr: run.stderr.replace(/conformance: report written to .*\n/, '') }).toEqual({ code: 0, stderr: '' });
    const report = run.stdout;
    expect(report).toContain('**Result: PASS** — 28 cases: 28 passed, 0 failed, 0 skipped.');
    const cases = rows(report);
    expect([...cases.keys()]).toEqual([...JSON_CASES, ...ISO_CASES]);
    for (const row of cases.values()) expect({ id: row.id, result: row.result }).toEqual({ id: row.id, result: 'PASS' });
    // Every answer's signature was verified against the gateway's certificate (J1 sends nothing).
    for (const id of JSON_CASES.slice(1)) expect({ id, signature: cases.get(id)!.signature }).toEqual({ id, signature: 'verified' });
    expect(cases.get('J3')!.actual).toBe('200 ACCEPTED');
    expect(cases.get('J8')!.actual).toBe("200 ACCEPTED, Idempotent-Replayed: true; the same body as J3's");
    expect(cases.get('J9')!.actual).toMatch(/^409 REQUEST_ID_REUSED/);
    expect(cases.get('I3')!.actual).toMatch(/^0210 39 = 00, 38 = [A-Z0-9]{6}, 48 tags AI, MAC verified$/);
    // Spec 4.3: the 63 to a wrong MAC carries none; the 401s' signatures, bound to no request, were verified as such.
    expect(cases.get('I10')).toMatchObject({ actual: '0210 39 = 63, no MAC', expected: expect.stringMatching(/39 = 63, request fields echoed, no MAC$/) });
    for (const id of ['J10', 'J11']) expect({ id, expected: cases.get(id)!.expected }).toEqual({ id, expected: expect.stringContaining('signed bound to no request (no jti, htm, htu)') });

    // The header a bank sends in: date, gateway, bank, the certificate's kid and subject, the MAC key only as its KCV.
    expect(report).toMatch(/\| date \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \|/);
    expect(report).toContain(`| gateway (signed JSON) | ${env.baseUrl} |`);
    expect(report).toContain('| bank | TSTA |');
    expect(report).toContain(`kid (SHA-256 thumbprint) ${env.pki.tsta.es256.keyId}`);
    expect(report).toContain('CN=TSTA es256');
    expect(report).toContain(`MAC key check value (KCV) ${TSTA_KCV}`);
    expect(report).toContain('PAN 411111******1111');
    expect(readFileSync(reportFile, 'utf8')).toBe(report);
    await expectNothingSecret(run, TSTA_MAC_KEY, [files.tstaKey]);

    // What the report claims was sent was decided by the gateway: the accepted customer on both channels, the ATM one reversed.
    const accepted = await env.database.query<{ channel: string; status: string; reversed: boolean; request_id: string }>(
      `SELECT channel, status, reversed_at IS NOT NULL AS reversed, request_id FROM activation_request WHERE bank_code = 'TSTA' AND national_id = $1 ORDER BY channel`,
      [people.accepted.nationalId],
    );
    expect(accepted).toEqual([
      { channel: 'ATM', status: 'REVERSED', reversed: true, request_id: expect.stringContaining(':CONFTEST') },
      { channel: 'INTERNET_BANKING', status: 'ACCEPTED', reversed: false, request_id: cases.get('J3')!.reference.split(' ')[0] },
    ]);
    const refused = await env.waitForRows(`SELECT response_code, reason FROM atm_refused_message WHERE bank_code = 'TSTA' AND terminal_id = 'CONFTEST'`, [], 1, 'the refused message');
    expect(refused).toEqual([{ response_code: '63', reason: 'MAC does not verify' }]);
  }, 60_000);

  it('fails with exit code 1 when the certificate is not registered for the bank, and names UNKNOWN_KEY on the valid request', async () => {
    const run = await runNode(KIT, ['--bank', 'TSTA', ...jsonArgs(files.unregisteredKey, files.unregisteredCert), '--gateway-cert', env.pki.gatewayCertFile, '--customers', files.customers]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/\*\*Result: FAIL\*\*/);
    const cases = rows(run.stdout);
    expect([...cases.keys()]).toEqual(JSON_CASES); // no ISO 8583 options, no ISO 8583 cases
    // The key does belong to its certificate: the failure is the gateway not knowing it, and the report says so.
    expect(cases.get('J1')!.result).toBe('PASS');
    expect(cases.get('J2')).toMatchObject({ result: 'FAIL: HTTP 401, expected 200', signature: 'verified' });
    expect(cases.get('J2')!.actual).toMatch(/^401 UNKNOWN_KEY: /);
    for (const id of ['J3', 'J4', 'J5', 'J6', 'J7', 'J8', 'J12']) expect({ id, result: cases.get(id)!.result }).toEqual({ id, result: expect.stringMatching(/^FAIL/) });
    expect(run.stdout).toContain(`kid (SHA-256 thumbprint) ${env.pki.unregistered.keyId}`);
    expect(run.stdout).toContain('CN=TSTA unregistered');
    expect(run.stdout).toContain('- J2: no certificate with this kid is registered for the bank');
    await expectNothingSecret(run, TSTA_MAC_KEY, [files.unregisteredKey]);
  }, 60_000);

  it('fails the ISO 8583 cases with 63 shown when the MAC key is not the one registered for the acquirer', async () => {
    const run = await runNode(KIT, ['--bank', 'TSTA', ...isoArgs(TSTB_MAC_KEY), '--customers', files.customers]);
    expect(run.code).toBe(1);
    const cases = rows(run.stdout);
    expect([...cases.keys()]).toEqual(ISO_CASES);
    for (const id of ['I2', 'I3', 'I4', 'I5', 'I6', 'I7', 'I9']) {
      const row = cases.get(id)!;
      expect({ id, actual: row.actual, result: row.result }).toEqual({ id, actual: '0210 39 = 63, no MAC', result: expect.stringMatching(/^FAIL: 39 = 63, expected /) });
    }
    // A wrong MAC is refused whatever the key: the 63, with no MAC (spec 4.3), is what I10 asks for. The key mismatch shows in I2-I9.
    expect(cases.get('I10')).toMatchObject({ actual: '0210 39 = 63, no MAC', result: 'PASS' });
    expect(cases.get('I11')!.result).toMatch(/^FAIL: 39 = 63/);
    // Network management carries no MAC, so the link itself is shown to work.
    for (const id of ['I1', 'I12', 'I13']) expect({ id, result: cases.get(id)!.result }).toEqual({ id, result: 'PASS' });
    expect(run.stdout).toContain('is --mac-key the key registered for acquirer 111111?');
    await expectNothingSecret(run, TSTB_MAC_KEY, []);
  }, 60_000);

  it('without test customers or the gateway certificate: INCOMPLETE, exit code 2, the skipped cases and unchecked signatures named', async () => {
    const run = await runNode(KIT, ['--bank', 'TSTA', ...jsonArgs()]);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('**Result: INCOMPLETE** — 15 cases: 10 passed, 0 failed, 5 skipped.');
    const cases = rows(run.stdout);
    for (const id of ['J3', 'J4', 'J5', 'J6', 'J7']) expect({ id, result: cases.get(id)!.result }).toEqual({ id, result: 'SKIPPED: no test customer given (--customers)' });
    // Replay and status fall back on the J2 request, which needs no customer.
    expect(cases.get('J8')).toMatchObject({ title: 'the J2 request again, re-signed (idempotent replay)', result: 'PASS', signature: 'not checked' });
    expect(cases.get('J12')).toMatchObject({ expected: '200 REJECTED, same activation id', result: 'PASS' });
    expect(run.stdout).toContain("- the gateway's response signatures: no --gateway-cert was given");
  }, 60_000);

  it('--help explains every option; a malformed MAC key is a usage error (64) that does not repeat the key', async () => {
    const help = await runNode(KIT, ['--help']);
    expect(help.code).toBe(0);
    for (const option of ['--url', '--bank', '--key', '--cert', '--gateway-cert', '--report', '--customers', '--iso-host', '--iso-port', '--acquirer', '--mac-key', '--mac-key-file', '--channel', '--timeout']) {
      expect(help.stdout).toMatch(new RegExp(`^ {2}${option} `, 'm'));
    }
    for (const role of ['accepted', 'mobileMismatch', 'alreadyActive', 'suspended', 'mobileInUse', 'notRegistered']) expect(help.stdout).toMatch(new RegExp(`^ {2}${role} `, 'm'));

    const nearlyAKey = '0123456789ABCDEFFEDCBA987654321Z';
    const usage = await runNode(KIT, ['--bank', 'TSTA', '--iso-host', '127.0.0.1', '--acquirer', '111111', '--mac-key', nearlyAKey]);
    expect(usage).toMatchObject({ code: 64, stdout: '' });
    expect(usage.stderr).toContain('--mac-key must be 32 hex digits');
    expect(usage.stderr).not.toContain(nearlyAKey);
    const nothing = await runNode(KIT, ['--bank', 'TSTA']);
    expect(nothing.code).toBe(64);
    expect(nothing.stderr).toContain('nothing to test');
  });
});

/** The built gateway on its own defaults (PGlite, development broker and PKI, config/banks.yaml) in a fresh DATA_DIR. */
function startDefaultGateway(dataDir: string): Promise<{ child: ChildProcess; httpPort: number; isoPort: number }> {
  const child = spawn(process.execPath, [GATEWAY_MAIN], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', ISO8583_PORT: '0', ISO8583_HOST: '127.0.0.1', MANAGEMENT_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start in 60 s:\n${output.slice(-2000)}`));
    }, 60_000);
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const http = /"httpPort":(\d+)/.exec(output);
      const iso = /"iso8583Port":(\d+)/.exec(output);
      if (http && iso) {
        clearTimeout(timer);
        resolve({ child, httpPort: Number(http[1]), isoPort: Number(iso[1]) });
      }
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}:\n${output.slice(-2000)}`));
    });
  });
}

describe('conformance kit against the gateway on its defaults (acceptance 4 of issue 6)', () => {
  it('passes against the gateway started on its defaults (DEVB, the development PKI), with customers from conformance:dev-customers', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'conformance-defaults-'));
    const gateway = await startDefaultGateway(dataDir);
    try {
      const customersFile = join(dataDir, 'customers.json');
      const registered = await runNode(DEV_CUSTOMERS, ['--out', customersFile], { DATA_DIR: dataDir });
      expect({ code: registered.code, stderr: registered.stderr }).toEqual({ code: 0, stderr: '' });
      expect(Object.keys(JSON.parse(readFileSync(customersFile, 'utf8')))).toEqual(['accepted', 'mobileMismatch', 'alreadyActive', 'suspended', 'mobileInUse']);
      const pki = join(ROOT, 'config/pki/dev');
      const run = await runNode(KIT, [
        '--bank', 'DEVB',
        '--url', `http://127.0.0.1:${gateway.httpPort}`,
        '--key', join(pki, 'devb-signing-es256.key.pem'),
        '--cert', join(pki, 'devb-signing-es256.cert.pem'),
        '--gateway-cert', join(pki, 'gateway-signing.cert.pem'),
        '--iso-host', '127.0.0.1', '--iso-port', String(gateway.isoPort),
        '--acquirer', '999999', '--mac-key', DEVB_MAC_KEY,
        '--customers', customersFile,
      ]);
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      expect(run.stdout).toContain('**Result: PASS** — 28 cases: 28 passed, 0 failed, 0 skipped.');
      expect([...rows(run.stdout).values()].filter((row) => row.result !== 'PASS')).toEqual([]);
    } finally {
      if (gateway.child.exitCode === null) {
        const exited = new Promise((resolve) => gateway.child.once('exit', resolve));
        gateway.child.kill('SIGTERM');
        await exited;
      }
    }
  }, 120_000);
});
