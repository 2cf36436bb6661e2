import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { BankSigningIdentity, signBankRequest } from '../../libs/jws/request-signing';
import { parseCertificateBundle, verifyChain } from '../../libs/pki';
import { issueCertificate } from '../../libs/pki/certificate-builder';
import { GatewayProcess } from '../support/gateway-process';
import { newMobile, newNationalId } from '../support/identities';
import { runNode } from '../support/run-tool';
import { GatewayAnswer } from '../support/test-environment';

/**
 * `npm run cli -- dev-cert issue` as a bank integrator runs it: against the
 * gateway started on its embedded defaults (PGlite, the development broker,
 * the development PKI) in a fresh DATA_DIR. The certificate it issues must
 * chain to the development CA, carry digitalSignature, and, once registered
 * with the commands it prints, sign requests the gateway accepts. Off the
 * embedded defaults it must refuse and write nothing.
 */
const ROOT = join(__dirname, '../..');
const CLI = join(ROOT, 'dist/tools/cli.js');
const KIT = join(ROOT, 'dist/tools/conformance/conformance.js');
const DEV_CUSTOMERS = join(ROOT, 'dist/tools/conformance/dev-customers.js');
const DEV_PKI = join(ROOT, 'config/pki');
const DEVELOPMENT_ANCHORS = parseCertificateBundle(readFileSync(join(DEV_PKI, 'trust-anchors.pem'), 'utf8'));
const DEVELOPMENT_CA_KEY_FILE = join(DEV_PKI, 'dev/root-ca.key.pem');
const GATEWAY_CERT = parseCertificateBundle(readFileSync(join(DEV_PKI, 'dev/gateway-signing.cert.pem'), 'utf8'))[0];
const DAY = 86_400_000;

const fingerprint = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const temporary: string[] = [];
function freshDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
}

/** The command lines the tool printed as next steps (`  npm run cli -- …`), split as a shell would split them. */
function printedCommands(stdout: string, prefix: string): string[][] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith(`  ${prefix} `))
    .map((line) => [...line.slice(prefix.length + 3).matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]));
}

/** A POST signed as `identity`, its answer's signature checked with the development gateway certificate. */
async function activate(baseUrl: string, identity: BankSigningIdentity): Promise<GatewayAnswer> {
  const requestId = `dev-cert-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const body = Buffer.from(JSON.stringify({ nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' }));
  const headers = { 'content-type': 'application/json', ...signBankRequest(identity, { method: 'POST', path: '/v1/activations', requestId, body }) };
  const response = await request(baseUrl)
    .post('/v1/activations')
    .set(headers)
    .serialize((bytes: Buffer) => bytes as never)
    .send(body as never)
    .buffer(true)
    .parse((res, done) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => done(null, Buffer.concat(chunks)));
    });
  return GatewayAnswer.read(response, GATEWAY_CERT.publicKey, GATEWAY_CERT.thumbprint, 'POST', '/v1/activations');
}

/** The answer once the running gateway has reloaded the registry (it notices a CLI change within a second or two). */
async function activateOnceRegistered(baseUrl: string, identity: BankSigningIdentity): Promise<GatewayAnswer> {
  for (const deadline = Date.now() + 15_000; ; ) {
    const answer = await activate(baseUrl, identity);
    if (answer.status !== 401 || Date.now() > deadline) return answer;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

afterAll(() => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

describe('cli dev-cert issue on the embedded defaults', () => {
  const dataDir = freshDir('dev-cert-data-');
  const env = { DATA_DIR: dataDir };
  let gateway: GatewayProcess;
  let baseUrl: string;

  beforeAll(async () => {
    gateway = new GatewayProcess(
      { DATA_DIR: dataDir, HTTP_HOST: '127.0.0.1', ISO8583_HOST: '127.0.0.1', HTTP_PORT: '0', ISO8583_PORT: '0' },
      { cwd: ROOT, startTimeoutMs: 90_000 },
    );
    baseUrl = `http://127.0.0.1:${(await gateway.listening()).httpPort}`;
  }, 100_000);

  afterAll(async () => {
    await gateway?.stop();
  });

  it('issues a key and a certificate that chains to the development CA with digitalSignature; the commands it prints register it, and the gateway accepts requests signed with it', async () => {
    const caKeyBefore = fingerprint(DEVELOPMENT_CA_KEY_FILE);
    const run = await runNode(CLI, ['dev-cert', 'issue', '--bank', 'NEWB'], env);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });

    // Written where the help says (DATA_DIR/dev-certs), and nothing else: no copy of the CA key anywhere new.
    const outDir = join(dataDir, 'dev-certs');
    expect(readdirSync(outDir).sort()).toEqual(['newb-signing-es256.cert.pem', 'newb-signing-es256.key.pem']);
    const keyFile = join(outDir, 'newb-signing-es256.key.pem');
    const certFile = join(outDir, 'newb-signing-es256.cert.pem');
    expect((statSync(keyFile).mode & 0o777).toString(8)).toBe('600');
    expect(fingerprint(DEVELOPMENT_CA_KEY_FILE)).toBe(caKeyBefore);

    const key = createPrivateKey(readFileSync(keyFile));
    const pem = readFileSync(certFile, 'utf8');
    const [certificate, ...rest] = parseCertificateBundle(pem);
    expect(rest).toEqual([]);
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(certificate.x509.checkPrivateKey(key)).toBe(true);
    // The key is the bank's own, not the CA's.
    expect(createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(createPublicKey(readFileSync(DEVELOPMENT_CA_KEY_FILE)).export({ type: 'spki', format: 'der' }))).toBe(false);
    // Chains to the development CA: issuer name and signature, by node:crypto and by the gateway's own chain check.
    expect(certificate.x509.checkIssued(DEVELOPMENT_ANCHORS[0].x509)).toBe(true);
    expect(certificate.x509.verify(DEVELOPMENT_ANCHORS[0].publicKey)).toBe(true);
    expect(verifyChain(certificate, [], DEVELOPMENT_ANCHORS)).toMatchObject({ trusted: true });
    expect([...certificate.keyUsage!]).toEqual(['digitalSignature']);
    expect(certificate.isCertificateAuthority).toBe(false);
    expect(certificate.subject).toContain('CN=NEWB request signing ES256 (development)');
    const now = Date.now();
    expect(certificate.notBefore.getTime()).toBeLessThanOrEqual(now);
    expect(Math.abs(certificate.notAfter.getTime() - (now + 365 * DAY))).toBeLessThan(2 * 3_600_000);

    // The kid it prints is x5t#S256: SHA-256 of the DER, base64url.
    const kid = createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
    expect(run.stdout).toMatch(new RegExp(`^ {2}kid +${kid} \\(x5t#S256`, 'm'));
    expect(run.stdout).toContain(`    certificates: [${certFile}]`);
    const newb: BankSigningIdentity = { bankCode: 'NEWB', privateKey: key, keyId: kid };

    // Not registered yet: the gateway does not know the bank.
    const before = await activate(baseUrl, newb);
    expect({ status: before.status, code: before.json.code }).toEqual({ status: 401, code: 'UNKNOWN_BANK' });

    // The printed next steps, run as printed: the bank, then its certificate.
    const steps = printedCommands(run.stdout, 'npm run cli --');
    expect(steps.map((args) => args.slice(0, 2).join(' '))).toEqual(['banks register', 'certs add']);
    for (const args of steps) {
      const step = await runNode(CLI, args, env);
      expect({ args, code: step.code, stderr: step.stderr }).toEqual({ args, code: 0, stderr: expect.not.stringMatching(/cli: /) });
    }
    const answer = await activateOnceRegistered(baseUrl, newb);
    expect({ status: answer.status, body: answer.json }).toEqual({ status: 200, body: expect.objectContaining({ bankCode: 'NEWB', status: 'REJECTED', reason: 'NOT_REGISTERED' }) });

    // A second certificate for the same bank, PS256, where --out says and for --days.
    const psDir = join(freshDir('dev-cert-out-'), 'newb');
    const ps = await runNode(CLI, ['dev-cert', 'issue', '--bank', 'NEWB', '--alg', 'PS256', '--days', '30', '--out', psDir], env);
    expect({ code: ps.code, stderr: ps.stderr }).toEqual({ code: 0, stderr: '' });
    expect((statSync(join(psDir, 'newb-signing-ps256.key.pem')).mode & 0o777).toString(8)).toBe('600');
    const [psCertificate] = parseCertificateBundle(readFileSync(join(psDir, 'newb-signing-ps256.cert.pem'), 'utf8'));
    expect(psCertificate.keyDescription).toBe('RSA 2048');
    expect(Math.abs(psCertificate.notAfter.getTime() - (Date.now() + 30 * DAY))).toBeLessThan(2 * 3_600_000);
    const [, add] = printedCommands(ps.stdout, 'npm run cli --');
    expect((await runNode(CLI, add, env)).code).toBe(0);
    const psIdentity = { bankCode: 'NEWB', privateKey: createPrivateKey(readFileSync(join(psDir, 'newb-signing-ps256.key.pem'))), keyId: psCertificate.thumbprint };
    const psAnswer = await activateOnceRegistered(baseUrl, psIdentity);
    expect({ status: psAnswer.status, reason: psAnswer.json.reason }).toEqual({ status: 200, reason: 'NOT_REGISTERED' });
  }, 90_000);

  it('the conformance command it prints passes for the new bank (signed JSON, every case), with customers from conformance:dev-customers', async () => {
    const run = await runNode(CLI, ['dev-cert', 'issue', '--bank', 'NEWC'], env);
    expect(run.code).toBe(0);
    for (const args of printedCommands(run.stdout, 'npm run cli --')) expect((await runNode(CLI, args, env)).code).toBe(0);
    const customers = join(dataDir, 'customers.json');
    expect((await runNode(DEV_CUSTOMERS, ['--out', customers], env)).code).toBe(0);
    const [kit] = printedCommands(run.stdout, 'npm run --silent conformance --');
    // As printed, but at this gateway's port and with the customers written above.
    const args = kit.map((arg, i) => (kit[i - 1] === '--url' ? baseUrl : kit[i - 1] === '--customers' ? customers : arg));
    // The registry reloads within a second or two of the CLI's change.
    for (const deadline = Date.now() + 15_000; ; ) {
      const report = await runNode(KIT, args);
      if (report.code === 0 || Date.now() > deadline) {
        expect({ code: report.code, stderr: report.stderr }).toEqual({ code: 0, stderr: '' });
        expect(report.stdout).toContain('**Result: PASS** — 15 cases: 15 passed, 0 failed, 0 skipped.');
        expect(report.stdout).toContain('| bank | NEWC |');
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }, 90_000);
});

describe('cli dev-cert issue off the embedded defaults', () => {
  /** Runs it with `env`, into a fresh --out, and expects a refusal that names `reason` and writes nothing. */
  async function expectRefused(env: Record<string, string>, reason: RegExp): Promise<void> {
    const out = join(freshDir('dev-cert-refused-'), 'certs');
    const run = await runNode(CLI, ['dev-cert', 'issue', '--bank', 'NEWB', '--out', out], { DATA_DIR: freshDir('dev-cert-refused-data-'), ...env });
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: '' });
    expect(run.stderr).toMatch(/^cli: dev-cert issue refused: /);
    expect(run.stderr).toMatch(reason);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(existsSync(out)).toBe(false);
  }

  it('refuses with DATABASE_URL set, naming it, exit code 1, nothing written', async () => {
    await expectRefused({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/absher_gateway_ci' }, /DATABASE_URL is set\. It issues from the development CA, whose key is public, so only on the embedded development defaults/);
  });

  it('refuses with KAFKA_BROKERS set, and with both, naming them', async () => {
    await expectRefused({ KAFKA_BROKERS: '127.0.0.1:9092' }, /refused: KAFKA_BROKERS is set\./);
    await expectRefused({ KAFKA_BROKERS: '127.0.0.1:9092', DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/absher_gateway_ci' }, /refused: DATABASE_URL and KAFKA_BROKERS are set\./);
  });

  it('refuses when TRUST_ANCHORS is another CA, or the development CA with another one beside it', async () => {
    const dir = freshDir('dev-cert-anchors-');
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = issueCertificate({
      subject: { commonName: 'Partner Banks Issuing CA', organization: 'Tests' },
      publicKey: keys.publicKey,
      selfSigningKey: keys.privateKey,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 365 * DAY),
      isCertificateAuthority: true,
      keyUsage: ['keyCertSign', 'cRLSign'],
    });
    const alone = join(dir, 'other.pem');
    const beside = join(dir, 'both.pem');
    writeFileSync(alone, other);
    writeFileSync(beside, readFileSync(join(DEV_PKI, 'trust-anchors.pem'), 'utf8') + other);
    for (const file of [alone, beside]) {
      await expectRefused({ TRUST_ANCHORS: file }, new RegExp(`TRUST_ANCHORS \\(${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) is not the development CA: it trusts "O=Tests, CN=Partner Banks Issuing CA"\\. `));
    }
  });

  it('never overwrites a key: a second issue into the same place is refused (exit code 2) and the files stay as they were', async () => {
    const out = freshDir('dev-cert-twice-');
    const env = { DATA_DIR: freshDir('dev-cert-twice-data-') };
    expect((await runNode(CLI, ['dev-cert', 'issue', '--bank', 'NEWB', '--out', out], env)).code).toBe(0);
    const key = fingerprint(join(out, 'newb-signing-es256.key.pem'));
    const again = await runNode(CLI, ['dev-cert', 'issue', '--bank', 'NEWB', '--out', out], env);
    expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 2, stdout: '' });
    expect(again.stderr).toContain(`cli: ${join(out, 'newb-signing-es256.key.pem')} already exists and is never overwritten`);
    expect(fingerprint(join(out, 'newb-signing-es256.key.pem'))).toBe(key);
  });

  it('--help prints its options, exit code 0; a bad --alg or --bank is a usage error (exit code 2) before anything is written', async () => {
    const help = await runNode(CLI, ['dev-cert', 'issue', '--help']);
    expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^usage: npm run cli -- dev-cert issue --bank CODE \[--alg ES256\|PS256\] \[--days N\] \[--out DIR\]\n/);
    for (const option of ['--bank CODE', '--alg ES256\\|PS256', '--days N', '--out DIR']) expect(help.stdout).toMatch(new RegExp(`^ {2}${option} `, 'm'));
    const out = join(freshDir('dev-cert-usage-'), 'certs');
    const alg = await runNode(CLI, ['dev-cert', 'issue', '--bank', 'NEWB', '--alg', 'RS256', '--out', out]);
    expect(alg).toEqual({ code: 2, stdout: '', stderr: expect.stringMatching(/^cli: --alg must be ES256 or PS256 \(got "RS256"\)\nusage: npm run cli -- dev-cert issue /) });
    const bank = await runNode(CLI, ['dev-cert', 'issue', '--bank', 'newbank', '--out', out]);
    expect(bank).toMatchObject({ code: 2, stderr: expect.stringMatching(/^cli: --bank must be the 4 capital letters of the bank's BIC/) });
    expect(existsSync(out)).toBe(false);
  });
});
