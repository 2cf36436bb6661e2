import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, KeyObject, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { keyCheckValue, packMessage, retailMac, unpackMessage } from '../libs/iso8583';
import { JwsError, parseDetachedJws, softwareSigningKey, verifyDetachedSignature } from '../libs/jws';
import { parseCertificateBundle } from '../libs/pki';
import { issueCertificate } from '../libs/pki/certificate-builder';
import { ResponseSigner } from '../src/channels/http/response-signer';
import { ERROR_CODES } from '../src/common/gateway-error';
import { GatewayMetrics } from '../src/ops/gateway-metrics';
import { renderEventCatalogue } from '../tools/event-catalogue';

/**
 * docs/ says what the code does: the worked examples are run, the MAC
 * example is recomputed, the event catalogue is regenerated, and the names
 * the docs use (metrics, error codes, files) exist.
 */
const ROOT = join(__dirname, '..');
const DOCS = join(ROOT, 'docs');
const doc = (name: string) => readFileSync(join(DOCS, name), 'utf8');

/** The fenced block right after `<!-- example:NAME -->`. */
function example(markdown: string, name: string): string {
  const match = new RegExp(`<!-- example:${name} -->\\s*\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\``).exec(markdown);
  if (!match) throw new Error(`no block marked <!-- example:${name} --> followed by a fenced code block`);
  return match[1];
}

function onPath(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** Runs a process to its end without blocking this one (the capturing gateway answers it from here). */
function run(command: string, args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const DAY = 86_400_000;
const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const caPem = issueCertificate({ subject: { commonName: 'Docs Test CA' }, publicKey: ca.publicKey, selfSigningKey: ca.privateKey, notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY), isCertificateAuthority: true, keyUsage: ['keyCertSign'] });

/** A fresh key and its certificate, as a bank (or the gateway) would hold them. */
function identity(name: string, key: { publicKey: KeyObject; privateKey: KeyObject }) {
  const certificatePem = issueCertificate({ subject: { commonName: name }, publicKey: key.publicKey, issuer: { certificatePem: caPem, privateKey: ca.privateKey }, notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY), keyUsage: ['digitalSignature'] });
  return { privateKey: key.privateKey, certificatePem, certificate: parseCertificateBundle(certificatePem)[0] };
}

const ecBank = identity('RJHI es256', generateKeyPairSync('ec', { namedCurve: 'P-256' }));
const rsaBank = identity('RJHI ps256', generateKeyPairSync('rsa', { modulusLength: 2048 }));
const gateway = identity('absher-bank-gateway', generateKeyPairSync('ec', { namedCurve: 'P-256' }));

interface Captured {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * Stands in for the gateway's HTTP side: records each request as received
 * and answers it signed by the gateway's own ResponseSigner, or, when told
 * to, with a body changed after signing.
 */
class CapturingGateway {
  readonly requests: Captured[] = [];
  tamperWithAnswers = false;
  private readonly signer = new ResponseSigner(softwareSigningKey(gateway.privateKey), gateway.certificate.thumbprint, 'absher-bank-gateway');
  private readonly server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const captured = { method: request.method!, path: request.url!.split('?')[0], headers: request.headers, body: Buffer.concat(chunks) };
      this.requests.push(captured);
      const requestId = String(request.headers['x-request-id']);
      const answer = Buffer.from(JSON.stringify({ activationId: randomUUID(), requestId, bankCode: 'RJHI', channel: 'INTERNET_BANKING', status: 'ACCEPTED', reason: null, decidedAt: new Date().toISOString() }));
      const signature = this.signer.sign(requestId, captured.method, captured.path, answer);
      const sent = this.tamperWithAnswers ? Buffer.from(answer.toString().replace('ACCEPTED', 'REJECTED')) : answer;
      response.writeHead(200, { 'content-type': 'application/json', 'x-jws-signature': signature });
      response.end(sent);
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** What the gateway's BankAuthenticator checks of a signed POST, with the project's verifier for the signature itself. */
async function expectAcceptedByTheGateway(request: Captured, bank: ReturnType<typeof identity>, alg: 'ES256' | 'PS256'): Promise<void> {
  expect(request.method).toBe('POST');
  expect(request.path).toBe('/v1/activations');
  expect(request.headers['content-type']).toMatch(/^application\/json/);
  expect(request.headers['x-bank-id']).toBe('RJHI');
  expect(request.headers['x-request-id']).toMatch(/^[A-Za-z0-9._:-]{1,64}$/);
  const jws = parseDetachedJws(String(request.headers['x-jws-signature']));
  expect(jws.header).toEqual({
    alg,
    kid: bank.certificate.thumbprint,
    iat: expect.any(Number),
    iss: request.headers['x-bank-id'],
    jti: request.headers['x-request-id'],
    htm: 'POST',
    htu: '/v1/activations',
    crit: ['iat', 'iss', 'jti', 'htm', 'htu'],
  });
  expect(Math.abs(Date.now() / 1000 - jws.header.iat)).toBeLessThanOrEqual(300);
  await expect(verifyDetachedSignature(jws, request.body, bank.certificate.publicKey)).resolves.toBeUndefined();
  expect(JSON.parse(request.body.toString('utf8'))).toEqual({ nationalId: '1000000008', mobile: '0512345678', channel: 'INTERNET_BANKING' });
  // The verifier is not a formality: one byte more and the same signature fails.
  await expect(verifyDetachedSignature(jws, Buffer.concat([request.body, Buffer.from(' ')]), bank.certificate.publicKey)).rejects.toBeInstanceOf(JwsError);
}

describe('docs/bank-integration.md: the worked examples work', () => {
  const guide = doc('bank-integration.md');
  const capturing = new CapturingGateway();
  let url: string;
  let dir: string;

  beforeAll(async () => {
    url = await capturing.start();
  });
  afterAll(() => capturing.stop());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'docs-example-'));
    writeFileSync(join(dir, 'gateway-cert.pem'), gateway.certificatePem);
    capturing.tamperWithAnswers = false;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const useKey = (bank: ReturnType<typeof identity>) => {
    writeFileSync(join(dir, 'signing-key.pem'), bank.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'signing-cert.pem'), bank.certificatePem);
  };
  const nodeScript = () => {
    writeFileSync(join(dir, 'activate.mjs'), `${example(guide, 'node-sign')}\n${example(guide, 'node-verify')}\n`);
    return run(process.execPath, ['activate.mjs'], dir, { GATEWAY_URL: url });
  };

  it.each([
    ['ES256', ecBank],
    ['PS256', rsaBank],
  ] as const)('node:crypto (%s): the request verifies as the gateway verifies it, and the answer’s signature is checked', async (alg, bank) => {
    useKey(bank);
    const before = capturing.requests.length;
    const result = await nodeScript();
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^200 \{.*"status":"ACCEPTED".*\}\nanswer signature verified\n$/);
    expect(capturing.requests.length).toBe(before + 1);
    await expectAcceptedByTheGateway(capturing.requests[before], bank, alg);
  });

  it('node:crypto: an answer changed after the gateway signed it is refused', async () => {
    useKey(ecBank);
    capturing.tamperWithAnswers = true;
    const result = await nodeScript();
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('the answer does not match the gateway signature');
    expect(result.stdout).not.toContain('verified');
  });

  const missing = ['bash', 'openssl', 'curl'].filter((tool) => !onPath(tool));
  const skipped = missing.length ? ` (SKIPPED: ${missing.join(', ')} not on PATH)` : '';
  if (missing.length) console.warn(`docs.spec.ts: the openssl example is not run: ${missing.join(', ')} not on PATH`);
  const withShell = missing.length ? it.skip : it;
  const shellScript = (alg: string) => {
    writeFileSync(join(dir, 'activate.sh'), `${example(guide, 'openssl-sign')}\n`);
    return run('bash', ['activate.sh'], dir, { GATEWAY_URL: url, ALG: alg });
  };

  withShell(`openssl and shell (PS256, RSA key): the request verifies as the gateway verifies it${skipped}`, async () => {
    useKey(rsaBank);
    const before = capturing.requests.length;
    const result = await shellScript('PS256');
    expect(result).toMatchObject({ code: 0, stdout: 'HTTP 200\n', stderr: '' });
    await expectAcceptedByTheGateway(capturing.requests[before], rsaBank, 'PS256');
    expect(readFileSync(join(dir, 'answer-headers.txt'), 'utf8')).toMatch(/^x-jws-signature: /im);
  });

  const withXxd = missing.length || !onPath('xxd') ? it.skip : it;
  withXxd(`openssl and shell (ES256): the DER-to-r||s step pads a short r and drops the sign byte of a high s${missing.length ? skipped : onPath('xxd') ? '' : ' (SKIPPED: xxd not on PATH)'}`, () => {
    // Random signatures have a short r or s once in about 128; this one is built to have both cases.
    const pipeline = /SIGNATURE=\$\((openssl asn1parse[\s\S]*?xxd -r -p)/.exec(example(guide, 'openssl-sign'))![1].replace(/\\\n/g, ' ');
    const r = Buffer.concat([Buffer.from([0x05]), Buffer.alloc(30, 0x11)]); // 31 bytes: a 32-byte r whose first byte is 00
    const s = Buffer.concat([Buffer.from([0x85]), Buffer.alloc(31, 0x22)]); // high bit set: DER adds a 00 sign byte
    const der = Buffer.concat([Buffer.from([0x30, 2 + r.length + 2 + 1 + s.length, 0x02, r.length]), r, Buffer.from([0x02, s.length + 1, 0x00]), s]);
    writeFileSync(join(dir, 'signature.der'), der);
    const result = spawnSync('bash', ['-c', `set -o pipefail; ${pipeline}`], { cwd: dir });
    expect(result.stderr.toString()).toBe('');
    expect(result.stdout.toString('hex')).toBe(Buffer.concat([Buffer.alloc(1), r, s]).toString('hex'));
  });

  withXxd(`openssl and shell (ES256, EC key): DER converted to r||s, eight signatures in a row${missing.length ? skipped : onPath('xxd') ? '' : ' (SKIPPED: xxd not on PATH)'}`, async () => {
    // About half of all ECDSA signatures have an r or s with DER's leading 00: eight runs meet one all but surely.
    useKey(ecBank);
    for (let i = 0; i < 8; i++) {
      const before = capturing.requests.length;
      const result = await shellScript('ES256');
      expect(result).toMatchObject({ code: 0, stdout: 'HTTP 200\n', stderr: '' });
      await expectAcceptedByTheGateway(capturing.requests[before], ecBank, 'ES256');
    }
  });
});

describe('docs/bank-integration.md: error codes', () => {
  it('the error table has one row for every code the gateway answers with', () => {
    const rows = [...doc('bank-integration.md').matchAll(/^\| [0-9]{3} \| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect([...rows].sort()).toEqual([...ERROR_CODES].sort());
  });
});

describe('docs/atm-switch-guide.md: the MAC example', () => {
  const guide = doc('atm-switch-guide.md');
  const block = example(guide, 'mac');
  const [, keyHex, kcv] = /^key\s+([0-9A-Fa-f]{32})\s+\(KCV ([0-9A-F]{6})\)$/m.exec(block)!;
  const key = Buffer.from(keyHex, 'hex');
  const bytes = Buffer.from(
    [...block.matchAll(/^[0-9a-f]{4}\s{3}((?:[0-9a-f]{2} ?)+)/gm)].map((m) => m[1].replace(/ /g, '')).join(''),
    'hex',
  );
  const mac = /^MAC\s+([0-9A-F]{16})$/m.exec(block)![1];
  const fields = Object.fromEntries(
    [.../<!-- example:mac-fields -->\n([\s\S]*?)\n\n/.exec(guide)![1].matchAll(/^\| ([0-9]+)[^|]* \| `([^`]*)` \|$/gm)].map((m) => [Number(m[1]), m[2]]),
  );

  it('the key, the bytes and the MAC agree with libs/iso8583 retailMac, and the KCV with keyCheckValue', () => {
    expect(retailMac(key, bytes).toString('hex').toUpperCase()).toBe(mac);
    expect(keyCheckValue(key)).toBe(kcv);
  });

  it('the bytes are what the codec packs for the listed fields, MAC field last', () => {
    expect(Object.keys(fields).length).toBe(11);
    const packed = packMessage({ ...fields, 64: '0000000000000000' });
    expect(packed.subarray(0, packed.length - 8).toString('hex')).toBe(bytes.toString('hex'));
    expect(unpackMessage(Buffer.concat([bytes, Buffer.from(mac, 'hex')]))).toEqual({ ...fields, 64: mac.toLowerCase() });
  });

  it('the length prefix is that of the whole message', () => {
    const prefix = /^length\s+([0-9a-f]{2}) ([0-9a-f]{2})/m.exec(block)!;
    expect(parseInt(prefix[1] + prefix[2], 16)).toBe(bytes.length + 8);
  });
});

describe('docs/events.md', () => {
  it('is the catalogue tools/event-catalogue.ts renders from contracts/ (npm run docs:events)', () => {
    expect(doc('events.md')).toBe(renderEventCatalogue(ROOT));
  });
});

describe('docs/: names and links', () => {
  const files = readdirSync(DOCS).filter((name) => name.endsWith('.md'));

  it('every metric named in docs/ is one the gateway exports', async () => {
    const metrics = new GatewayMetrics({ outboxBacklog: async () => ({ count: 0, oldestAgeSeconds: 0, parked: 0 }), isoConnections: () => 0, ownership: () => ({ liveInstances: 1, relaySlots: [], partitions: {} }) });
    const exported = new Set(
      (await metrics.registry.getMetricsAsJSON()).flatMap((metric) =>
        String(metric.type) === 'histogram' ? [metric.name, ...['_bucket', '_sum', '_count'].map((suffix) => metric.name + suffix)] : [metric.name],
      ),
    );
    const named = new Set(files.flatMap((name) => [...doc(name).matchAll(/\babsher_gateway_[a-z0-9_]+/g)].map((m) => m[0])));
    expect(named.size).toBeGreaterThan(5);
    // A name ending in "_" (as in `absher_gateway_process_*`) is a prefix: some exported metric must start with it.
    const unknown = [...named].filter((name) => (name.endsWith('_') ? ![...exported].some((e) => e.startsWith(name)) : !exported.has(name)));
    expect(unknown).toEqual([]);
  });

  it('every relative link in docs/ points to a file of the repository that exists, and to a heading in it', () => {
    const broken: string[] = [];
    for (const name of files) {
      for (const [, target, fragment] of doc(name).matchAll(/\]\(([^)#\s]*)(?:#([^)\s]*))?\)/g)) {
        if (/^[a-z]+:/.test(target)) continue;
        const path = target ? resolve(DOCS, target) : join(DOCS, name);
        if (!path.startsWith(ROOT + '/')) continue; // outside the repository (the shared spec)
        if (!existsSync(path)) broken.push(`${name}: ${target}`);
        else if (fragment && path.endsWith('.md') && !headingAnchors(readFileSync(path, 'utf8')).has(fragment)) broken.push(`${name}: ${target}#${fragment}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

/** The anchors GitHub gives a Markdown file's headings (outside fenced code). */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (heading) anchors.add(heading[1].toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-'));
  }
  return anchors;
}

describe('docs/README.md', () => {
  it('indexes every document in docs/', () => {
    const index = doc('README.md');
    for (const name of readdirSync(DOCS).filter((n) => n.endsWith('.md') && n !== 'README.md')) expect(index).toContain(`](${name})`);
  });
});
