import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createPublicKey, KeyObject } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signBankRequest } from '../../libs/jws/request-signing';
import { verifyResponseSignature } from '../../src/channels/http/response-signer';
import { newMobile, newNationalId } from '../support/identities';
import { certifyKey, testAuthority } from '../support/test-certificates';
import { TestEnvironment } from '../support/test-environment';

/**
 * KEY_STORE=pkcs11 for the gateway's response-signing key (issue 14, in
 * part): the key is generated in a SoftHSM2 token, sensitive and never
 * extractable, and every answer is ES256-signed by the token. The gateway
 * process is given the token's label and PIN file, never a key.
 */
const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so';
const dir = mkdtempSync(join(tmpdir(), 'gateway-pkcs11-'));
const softhsmConf = join(dir, 'softhsm2.conf');
const LABEL = 'gateway-signing';
let env: TestEnvironment;
let tokenPublicKey: KeyObject;
let certificatePem: string;

/**
 * Runs `body` against the token in a process of its own: SoftHSM2 reads SOFTHSM2_CONF from the C
 * environment, which a Jest test cannot set (its process.env is a copy). Prints what `body` returns, as JSON.
 */
function inToken(body: string): unknown {
  const script = `const { Pkcs11Token } = require(${JSON.stringify(join(__dirname, '../../dist/libs/pkcs11'))});
    const token = Pkcs11Token.open({ module: ${JSON.stringify(SOFTHSM)}, tokenLabel: 'gateway-test', pin: '4321' });
    try { process.stdout.write(JSON.stringify((() => { ${body} })())); } finally { token.close(); }`;
  const result = spawnSync(process.execPath, ['-e', script], { env: { PATH: process.env.PATH ?? '', SOFTHSM2_CONF: softhsmConf }, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`token script failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

beforeAll(async () => {
  if (!existsSync(SOFTHSM)) throw new Error(`${SOFTHSM} is missing: install Debian's softhsm2 (.ci/run does)`);
  mkdirSync(join(dir, 'tokens'));
  writeFileSync(softhsmConf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const init = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', 'gateway-test', '--pin', '4321', '--so-pin', '8765'], { env: { PATH: process.env.PATH ?? '', SOFTHSM2_CONF: softhsmConf }, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`softhsm2-util --init-token: ${init.stderr}`);
  const publicKeyPem = inToken(`return token.generateEcSigningKey(${JSON.stringify(LABEL)}).publicKey.export({ type: 'spki', format: 'pem' });`) as string;
  tokenPublicKey = createPublicKey(publicKeyPem);
  // The gateway's certificate for the token's key, from a CA of the test's own.
  certificatePem = certifyKey('absher-bank-gateway', testAuthority('Gateway Signing CA'), tokenPublicKey);
  writeFileSync(join(dir, 'gateway.pem'), certificatePem);
  writeFileSync(join(dir, 'pin'), '4321\n');
  env = await TestEnvironment.start({
    KEY_STORE: 'pkcs11',
    PKCS11_MODULE: SOFTHSM,
    PKCS11_TOKEN_LABEL: 'gateway-test',
    PKCS11_PIN_FILE: join(dir, 'pin'),
    GATEWAY_SIGNING_KEY_LABEL: LABEL,
    GATEWAY_SIGNING_CERT: join(dir, 'gateway.pem'),
    GATEWAY_SIGNING_KEY: '/nonexistent/not-read-under-pkcs11.pem',
    SOFTHSM2_CONF: softhsmConf,
  });
});

afterAll(async () => {
  await env?.stop();
});

it('signs every answer in the token: ES256, verified with the certificate of the token key', async () => {
  const body = Buffer.from(JSON.stringify({ nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' }));
  const requestId = `pkcs11-${Date.now()}`;
  const headers = { 'content-type': 'application/json', ...signBankRequest(env.pki.tsta.es256, { method: 'POST', path: '/v1/activations', requestId, body }) };
  const url = new URL(env.baseUrl);
  const answer = await new Promise<{ status: number; signature: string; bytes: Buffer }>((resolve, reject) => {
    const sent = httpRequest({ host: url.hostname, port: url.port, path: '/v1/activations', method: 'POST', headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, signature: String(response.headers['x-jws-signature']), bytes: Buffer.concat(chunks) }));
    });
    sent.on('error', reject);
    sent.end(body);
  });
  expect(answer.status).toBe(200);
  const header = await verifyResponseSignature(answer.signature, answer.bytes, tokenPublicKey);
  expect(header).toMatchObject({ alg: 'ES256', jti: requestId, htm: 'POST', htu: '/v1/activations' });
});

it('the key never leaves the token, and the gateway process is never given a key', () => {
  expect(inToken(`return token.neverLeaves('private', ${JSON.stringify(LABEL)});`)).toBe(true);
  const environ = readFileSync(`/proc/${env.gateway!.pid}/environ`, 'utf8');
  expect(environ).toContain('KEY_STORE=pkcs11');
  expect(environ).not.toContain('PRIVATE KEY');
  expect(environ).not.toContain('PKCS11_PIN=');
});

it('a certificate that does not certify the token key stops the start, saying so', () => {
  const result = spawnSync(process.execPath, [join(__dirname, '../../dist/src/main.js')], {
    env: { ...env.gatewayEnv(), KEY_STORE: 'pkcs11', PKCS11_MODULE: SOFTHSM, PKCS11_TOKEN_LABEL: 'gateway-test', PKCS11_PIN_FILE: join(dir, 'pin'), GATEWAY_SIGNING_KEY_LABEL: LABEL, GATEWAY_SIGNING_CERT: env.pki.gatewayCertFile, SOFTHSM2_CONF: softhsmConf, HTTP_PORT: '0', ISO8583_PORT: '0', MANAGEMENT_PORT: '0' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(result.status).toBe(78);
  expect(`${result.stdout}${result.stderr}`).toContain(`GATEWAY_SIGNING_CERT does not certify the token's key \\"${LABEL}\\"`);
});
