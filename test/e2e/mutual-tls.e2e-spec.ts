import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { verifyMac } from '../../libs/iso8583/mac-filter';
import { softwareMacKey } from '../../libs/iso8583/mac';
import { signBankRequest } from '../../libs/jws/request-signing';
import { thumbprintOf } from '../../libs/pki';
import { atmActivation, TSTA_MAC_KEY } from '../support/atm-requests';
import { newMobile, newNationalId } from '../support/identities';
import { cliOk } from '../support/operator-cli';
import { IssuedCertificate, testAuthority, testCertificate } from '../support/test-certificates';
import { TestEnvironment } from '../support/test-environment';

/**
 * Mutual TLS on both listeners (issue 14): a client certificate is required
 * and must chain to the configured client CA, and it speaks only for the
 * bank whose registry entry lists it (by `CN=` or by thumbprint). Refused
 * otherwise: 401 UNKNOWN_BANK on HTTP, 58 without a MAC on ISO 8583.
 */
const dir = mkdtempSync(join(tmpdir(), 'gateway-mtls-'));

const serverCa = testAuthority('Gateway Server CA');
const server = testCertificate('gateway.test', serverCa);
const clientCa = testAuthority('Bank Client CA');
const otherCa = testAuthority('Another CA');
const tstaSwitch = testCertificate('tsta-switch', clientCa);
const tstbClient = testCertificate('tstb-client', clientCa);
const impostor = testCertificate('tsta-switch', otherCa); // TSTA's name, from a CA the gateway does not trust
let env: TestEnvironment;
let httpPort: number;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
const pemKey = (pair: IssuedCertificate) => pair.key.export({ type: 'pkcs8', format: 'pem' }).toString();
/** The client side of TLS: trusts the server CA; the server certificate names no host, so only its chain is checked here. */
const tlsAs = (client: IssuedCertificate | null) => ({
  ca: serverCa.pem,
  checkServerIdentity: () => undefined,
  ...(client ? { cert: client.pem, key: pemKey(client) } : {}),
});

beforeAll(async () => {
  const certFile = file('server.pem', server.pem);
  const keyFile = file('server.key', pemKey(server));
  const caFile = file('client-ca.pem', clientCa.pem);
  env = await TestEnvironment.start({
    HTTP_TLS_CERT: certFile,
    HTTP_TLS_KEY: keyFile,
    HTTP_TLS_CLIENT_CA: caFile,
    ISO8583_TLS_CERT: certFile,
    ISO8583_TLS_KEY: keyFile,
    ISO8583_TLS_CLIENT_CA: caFile,
  });
  httpPort = Number(new URL(env.baseUrl).port);
  const loads = () => env.logs.filter((line) => line.includes('bank directory loaded')).length;
  const before = loads();
  // TSTA by its client certificate's common name, TSTB by its certificate's thumbprint.
  cli('banks', 'set-tls-clients', '--bank', 'TSTA', '--clients', 'CN=tsta-switch');
  cli('banks', 'set-tls-clients', '--bank', 'TSTB', '--clients', thumbprintOf(new X509Certificate(tstbClient.pem).raw));
  const deadline = Date.now() + 15_000;
  while (loads() < before + 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
});

afterAll(async () => {
  await env?.stop();
});

const cli = (...args: string[]) => cliOk(env, 'test-operator', ...args);

/** A signed activation request over HTTPS as `client`, in the name of TSTA. */
function activateOverHttps(client: IssuedCertificate | null): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = Buffer.from(JSON.stringify({ nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' }));
  const requestId = `mtls-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const headers = { 'content-type': 'application/json', ...signBankRequest(env.pki.tsta.es256, { method: 'POST', path: '/v1/activations', requestId, body }) };
  return new Promise((resolve, reject) => {
    const sent = httpsRequest({ host: '127.0.0.1', port: httpPort, path: '/v1/activations', method: 'POST', headers, agent: false, ...tlsAs(client) }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    sent.on('error', reject);
    sent.end(body);
  });
}

/** One 0200 over TLS as `client`, naming TSTA's acquirer in field 32. */
async function activateOverIso(client: IssuedCertificate | null): Promise<{ code: string; macValid: boolean }> {
  const link = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY, tlsAs(client));
  try {
    const answer = await link.request(atmActivation({ nationalId: newNationalId(), mobile: newMobile() }), 'valid', 5_000);
    return { code: answer.fields[39], macValid: verifyMac(answer.raw, answer.fields, softwareMacKey(TSTA_MAC_KEY)) === 'valid' };
  } finally {
    await link.close();
  }
}

describe('the bank (HTTP) listener', () => {
  it('refuses a connection without a client certificate, or with one from another CA, in the handshake', async () => {
    await expect(activateOverHttps(null)).rejects.toThrow();
    await expect(activateOverHttps(impostor)).rejects.toThrow();
  });

  it("refuses another bank's valid certificate with 401 UNKNOWN_BANK, and serves the bank's own", async () => {
    const refused = await activateOverHttps(tstbClient);
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ code: 'UNKNOWN_BANK', detail: 'the TLS client certificate is not one registered for TSTA' });
    const served = await activateOverHttps(tstaSwitch);
    expect(served.status).toBe(200);
    expect(served.body.reason).toBe('NOT_REGISTERED');
  });
});

describe('the ISO 8583 listener', () => {
  it('refuses a connection without a client certificate, or with one from another CA, in the handshake', async () => {
    await expect(activateOverIso(null)).rejects.toThrow();
    await expect(activateOverIso(impostor)).rejects.toThrow();
  });

  it("answers 58 without a MAC to another bank's certificate naming TSTA's acquirer, and serves TSTA's own", async () => {
    expect(await activateOverIso(tstbClient)).toEqual({ code: '58', macValid: false });
    expect(await activateOverIso(tstaSwitch)).toEqual({ code: '25', macValid: true });
  });

  it('counts the refusals as refused traffic, on both channels, under TSTA', async () => {
    // The counts are written in batches: wait for them.
    const deadline = Date.now() + 30_000;
    let rows: { channel: string; code: string; bank_code: string }[] = [];
    while (Date.now() < deadline) {
      rows = await env.database.query<{ channel: string; code: string; bank_code: string }>(`SELECT DISTINCT channel, code, bank_code FROM refused_traffic_minute ORDER BY channel`);
      if (rows.length >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(rows).toEqual([
      { channel: 'ATM', code: '58', bank_code: 'TSTA' },
      { channel: 'HTTP', code: 'UNKNOWN_BANK', bank_code: 'TSTA' },
    ]);
  });
});
