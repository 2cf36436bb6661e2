import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AtmSwitchClient, matchKey } from '../../libs/iso8583/atm-switch-client';
import { keyCheckValue } from '../../libs/iso8583/mac';
import { parseTlv } from '../../libs/iso8583/tlv';
import { macOf, packSigned } from '../../libs/iso8583/mac-filter';
import { aesZoneCryptogram } from '../../tools/softhsm-token';
import { atmActivation, TEST_PAN } from '../support/atm-requests';
import { newMobile, newNationalId } from '../support/identities';
import { cliOk, runCli } from '../support/operator-cli';
import { GATEWAY_MAIN, TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';
import { TOPICS } from '../../src/kafka/topics';
import { signBankRequest } from '../../libs/jws/request-signing';
import { DEVELOPMENT_SIGNING_CERT } from '../../src/config/gateway-config';

/**
 * KEY_STORE=pkcs11 (issue 14): every secret key of the gateway in a SoftHSM2
 * token, used only through it. The environment's token is prepared as key
 * custodians would (test-environment.ts): the signing and hash keys made in
 * it, a zone master key loaded, the banks' MAC keys imported under it with
 * `mac-key import`. The gateway process is given where the token is and its
 * PIN file, never a key.
 */
process.env.TEST_KEY_STORE = 'pkcs11';

let env: TestEnvironment;

beforeAll(async () => {
  env = await TestEnvironment.start();
});

afterAll(async () => {
  await env?.stop();
});

const token = () => env.token!;
const cli = (...args: string[]) => cliOk(env, 'key-custodian', ...args);


/** The id of a bank's MAC key in the token, from the registry's reference to it. */
async function tokenKeyId(bank: string): Promise<string> {
  const [row] = await env.database.query<{ ref: string }>(`SELECT mac_key_sealed AS ref FROM bank WHERE code = $1`, [bank]);
  expect(row.ref).toMatch(/^pkcs11:[0-9a-f]{8}$/);
  return row.ref.slice('pkcs11:'.length);
}

const macObjects = (bank: string) => token().run<number>(`return token.use((l, s) => { l.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_LABEL, value: 'mac:${bank}' }]); const found = l.C_FindObjects(s, 64); l.C_FindObjectsFinal(s); return found.length; });`);

describe('keys that never leave the token', () => {
  it('answers are signed by the token key, requests MAC-checked and answered by the token, PANs hashed by it', async () => {
    const json = await env.send(env.pki.tsta.es256, { requestId: `pkcs11-${Date.now()}`, body: { nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' } });
    // env.send verified the signature with the certificate of the token's key.
    expect({ status: json.status, alg: json.signatureHeader.alg }).toEqual({ status: 200, alg: 'ES256' });

    const link = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, Buffer.from(env.pki.macKeys.TSTA, 'hex'));
    try {
      const customer = { nationalId: newNationalId(), mobile: newMobile() };
      await env.register(customer.nationalId, customer.mobile, 'PENDING_ACTIVATION');
      const request = atmActivation(customer);
      const answer = await link.request(request);
      expect({ code: answer.fields[39], mac: answer.macValid }).toEqual({ code: '00', mac: true });
      const [row] = await env.database.query<{ pan_hash: string }>(`SELECT pan_hash FROM activation_request WHERE request_id LIKE $1`, [`%:${request[11]}:%`]);
      const underToken = token().run<string>(`return token.hmacKey('hash:pan').hmac(${JSON.stringify(TEST_PAN)}).toString('hex');`);
      expect(row.pan_hash).toBe(underToken);
    } finally {
      await link.close();
    }
  });

  it('no key can be read out of the token, and the gateway process is given none: not in its environment, its files or the registry', async () => {
    const labels = [['private', token().signingKeyLabel], ['secret', 'hash:pan'], ['secret', 'hash:subject'], ...Object.keys(env.pki.macKeys).map((bank) => ['secret', `mac:${bank}`])];
    const neverLeave = token().run<boolean[]>(`return ${JSON.stringify(labels)}.map(([kind, label]) => token.neverLeaves(kind, label));`);
    expect(neverLeave).toEqual(labels.map(() => true));

    const environ = readFileSync(`/proc/${env.gateway!.pid}/environ`, 'utf8').split('\0');
    expect(environ).toContain('KEY_STORE=pkcs11');
    for (const name of ['GATEWAY_SIGNING_KEY', 'PAN_HASH_KEY', 'SUBJECT_HASH_KEY', 'KEY_ENCRYPTION_KEY', 'PKCS11_PIN']) expect(environ.filter((v) => v.startsWith(`${name}=`))).toEqual([]);
    const given = [environ.join('\n'), readFileSync(env.pki.banksFile, 'utf8'), JSON.stringify(await env.database.query(`SELECT * FROM bank`))].join('\n');
    expect(given).not.toMatch(/PRIVATE KEY/);
    for (const hex of Object.values(env.pki.macKeys)) expect(given.toUpperCase()).not.toContain(hex);
    // The registry holds references to the token's keys, never a key.
    const refs = await env.database.query<{ ref: string }>(`SELECT mac_key_sealed AS ref FROM bank WHERE mac_key_sealed IS NOT NULL`);
    expect(refs.length).toBe(Object.keys(env.pki.macKeys).length);
    expect(refs.every((r) => /^pkcs11:[0-9a-f]{8}$/.test(r.ref))).toBe(true);
  });

  it('refuses to start with a software key under KEY_STORE=pkcs11, or a certificate that does not certify the token key (78)', () => {
    const start = (env_: Record<string, string>) =>
      spawnSync(process.execPath, [GATEWAY_MAIN], { env: { ...env.gatewayEnv(), HTTP_PORT: '0', ISO8583_PORT: '0', MANAGEMENT_PORT: '0', ...env_ }, encoding: 'utf8', timeout: 30_000 });
    const withPanKey = start({ PAN_HASH_KEY: 'a-clear-pan-hash-key-0123456789abcdef' });
    expect(withPanKey.status).toBe(78);
    expect(withPanKey.stdout + withPanKey.stderr).toContain('PAN_HASH_KEY is a software key: under KEY_STORE=pkcs11 its key is in the token; unset it');
    const otherCertificate = start({ GATEWAY_SIGNING_CERT: DEVELOPMENT_SIGNING_CERT });
    expect(otherCertificate.status).toBe(78);
    expect(otherCertificate.stdout + otherCertificate.stderr).toContain(`GATEWAY_SIGNING_CERT does not certify the token's key \\"${token().signingKeyLabel}\\"`);
  });
});

describe('key ceremonies', () => {
  it('mac-key import: a wrong check value is refused and nothing is kept; the right one serves the bank from the next reload', async () => {
    const key = Buffer.from('00112233445566778899AABBCCDDEEFF', 'hex');
    const cryptogram = aesZoneCryptogram(env.zoneKey.value, key);
    const objects = macObjects('TSTB');
    const previous = await tokenKeyId('TSTB');
    const refused = runCli(env, 'key-custodian', 'mac-key', 'import', '--bank', 'TSTB', '--under', env.zoneKey.label, '--cryptogram', cryptogram, '--kcv', '000000');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`cli: key check value mismatch: the cryptogram gives ${keyCheckValue(key)}, not 000000; nothing was imported\n`);
    expect(macObjects('TSTB')).toBe(objects);
    expect(await tokenKeyId('TSTB')).toBe(previous);
    expect(cli('mac-key', 'import', '--bank', 'TSTB', '--under', env.zoneKey.label, '--cryptogram', cryptogram, '--kcv', keyCheckValue(key).toLowerCase())).toBe(
      `MAC key of TSTB imported into the token; key check value ${keyCheckValue(key)} matches\n`,
    );
    await env.registryChangeLoaded();
    expect(macObjects('TSTB')).toBe(objects + 2);
    const link = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, key);
    try {
      const answer = await link.request(atmActivation({ nationalId: newNationalId(), mobile: newMobile() }, { acquirer: '222222' }));
      // TSTB does not take ATM activations: 58, MAC'd under the imported key.
      expect({ code: answer.fields[39], mac: answer.macValid }).toEqual({ code: '58', mac: true });
    } finally {
      await link.close();
    }
    expect(cli('audit', 'list', '--bank', 'TSTB', '--limit', '1')).toMatch(/key-custodian\s+mac-key-imported\s+TSTB\s.*"checkValue":"[0-9A-F]{6}"/);
  });

  it('mac-key generate makes the key in the token and prints only its check value; requests MAC\'d by the token under it are served', async () => {
    const printed = cli('mac-key', 'generate', '--bank', 'TSTA');
    const [, checkValue] = /^MAC key of TSTA generated in the token; key check value ([0-9A-F]{6})\n$/.exec(printed) ?? [];
    expect(checkValue).toBeDefined();
    const keyId = await tokenKeyId('TSTA');
    expect(token().run<string>(`return token.macKey('TSTA', '${keyId}').checkValue();`)).toBe(checkValue);
    expect(token().run<boolean>(`return token.neverLeaves('secret', 'mac:TSTA', '${keyId}:1') && token.neverLeaves('secret', 'mac:TSTA', '${keyId}:2');`)).toBe(true);
    await env.registryChangeLoaded();

    // Nobody knows the new key: the request's MAC is made by the token, as a switch's HSM would.
    const link = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, null);
    try {
      const request = atmActivation({ nationalId: newNationalId(), mobile: newMobile() });
      const raw = packSigned(request, null);
      const mac = token().run<string>(`return token.macKey('TSTA', '${keyId}').mac(Buffer.from('${raw.subarray(0, raw.length - 8).toString('hex')}', 'hex')).toString('hex');`);
      Buffer.from(mac, 'hex').copy(macOf(raw));
      const answer = await link.send(raw, matchKey(request));
      expect(answer.fields[39]).toBe('25');
      const answerMac = token().run<string>(`return token.macKey('TSTA', '${keyId}').mac(Buffer.from('${answer.raw.subarray(0, answer.raw.length - 8).toString('hex')}', 'hex')).toString('hex');`);
      expect(macOf(answer.raw).toString('hex')).toBe(answerMac);
    } finally {
      await link.close();
    }
    expect(cli('audit', 'list', '--bank', 'TSTA', '--limit', '1')).toMatch(new RegExp(`key-custodian\\s+mac-key-generated\\s+TSTA\\s.*"checkValue":"${checkValue}"`));
  });

  it('mac-key set (a clear key) and a second hash key are refused under pkcs11, saying what to do', () => {
    const keyFile = join(env.token!.dir, 'clear.mac');
    writeFileSync(keyFile, '00112233445566778899AABBCCDDEEFF\n');
    const set = runCli(env, 'key-custodian', 'mac-key', 'set', '--bank', 'TSTA', '--file', keyFile);
    expect(set.code).toBe(1);
    expect(set.stderr).toMatch(/a clear MAC key for TSTA is not taken under KEY_STORE=pkcs11 .*generate or import it into the token/);
    const again = runCli(env, 'key-custodian', 'hash-key', 'generate', '--name', 'pan');
    expect(again).toMatchObject({ code: 1, stderr: 'cli: the token already holds a key labelled "hash:pan"\n' });
  });
});

/** A signed activation request, its answer read as it comes (a 503 of a token gone is not signed). */
async function postActivation(customer: { nationalId: string; mobile: string }, requestId: string): Promise<{ status: number; signed: boolean; json: Record<string, unknown> }> {
  const body = Buffer.from(JSON.stringify({ ...customer, channel: 'INTERNET_BANKING' }));
  const headers = { 'content-type': 'application/json', ...signBankRequest(env.pki.tsta.es256, { method: 'POST', path: '/v1/activations', requestId, body }) };
  const response = await fetch(`${env.baseUrl}/v1/activations`, { method: 'POST', headers, body });
  return { status: response.status, signed: response.headers.has('x-jws-signature'), json: (await response.json()) as Record<string, unknown> };
}

describe('a token taken away mid-traffic', () => {
  it('is answered 503 / 91 and not ready while it is gone, loses nothing accepted, and serves again by itself when it is back', async () => {
    const reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations]);
    try {
      const answered: { channel: 'HTTP' | 'ATM'; status: string; activationId?: string }[] = [];
      const tstaKey = Buffer.from(env.pki.macKeys.TSTA, 'hex');
      // TSTA's key was replaced by a generated one above: back to the known key for this traffic.
      cli('mac-key', 'import', '--bank', 'TSTA', '--under', env.zoneKey.label, '--cryptogram', aesZoneCryptogram(env.zoneKey.value, tstaKey), '--kcv', keyCheckValue(tstaKey));
      await env.registryChangeLoaded();
      const link = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, tstaKey);
      let running = true;
      const customers = Array.from({ length: 400 }, () => ({ nationalId: newNationalId(), mobile: newMobile() }));
      await Promise.all(customers.map((c, i) => env.publishRegistration({ nationalId: c.nationalId, mobile: c.mobile, status: 'PENDING_ACTIVATION', version: 1000 + i })));
      await env.waitForRows(`SELECT 1 FROM registration WHERE national_id = ANY($1)`, [customers.map((c) => c.nationalId)], customers.length, 'registrations', 45_000);
      let next = 0;
      const traffic = (async () => {
        for (let i = 0; running && next < customers.length; i++) {
          const customer = customers[next++];
          if (i % 2 === 0) {
            const answer = await postActivation(customer, `loss-${i}-${Date.now()}`);
            // Signed whenever the token could sign; the 503s of a token gone are not, and say why.
            if (answer.status === 200 || answer.signed) expect(answer.signed).toBe(true);
            if (answer.status === 503) expect({ code: answer.json.code, signed: answer.signed }).toEqual({ code: 'UNAVAILABLE', signed: false });
            answered.push({ channel: 'HTTP', status: String(answer.status), activationId: answer.status === 200 ? String(answer.json.activationId) : undefined });
          } else {
            const answer = await link.request(atmActivation(customer));
            const activationId = answer.fields[48] ? parseTlv(answer.fields[48]).get('AI') : undefined;
            answered.push({ channel: 'ATM', status: answer.fields[39], activationId: answer.fields[39] === '00' ? activationId : undefined });
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      const seen = (channel: 'HTTP' | 'ATM', status: string, from: number) => answered.slice(from).some((a) => a.channel === channel && a.status === status);
      const waitFor = async (what: string, condition: () => boolean, timeoutMs = 20_000) => {
        const deadline = Date.now() + timeoutMs;
        while (!condition()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last answers: ${JSON.stringify(answered.slice(-6))}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      const ready = async () => (await fetch(`${env.managementUrl}/health/ready`)).json() as Promise<{ status: string; error?: { keys?: { message: string } }; details?: unknown }>;
      try {
        await waitFor('accepted answers on both channels', () => seen('HTTP', '200', 0) && seen('ATM', '00', 0));
        renameSync(token().tokenDir, `${token().tokenDir}.away`);
        const away = answered.length;
        await waitFor('503 and 91 answers', () => seen('HTTP', '503', away) && seen('ATM', '91', away));
        const notReady = await ready();
        expect(notReady.status).toBe('error');
        expect(notReady.error?.keys?.message).toBeTruthy();
        renameSync(`${token().tokenDir}.away`, token().tokenDir);
        const back = answered.length;
        await waitFor('accepted answers again on both channels', () => seen('HTTP', '200', back) && seen('ATM', '00', back));
        expect((await ready()).status).toBe('ok');
      } finally {
        running = false;
        await traffic.catch(() => undefined);
        await link.close();
      }
      // The token went away and came back in one piece: its keys are the same keys.
      await env.waitForLog((line) => line.includes('the PKCS#11 token is unavailable'));
      await env.waitForLog((line) => line.includes('the PKCS#11 token is back'));
      // Every accepted answer stands for a stored decision whose event was published: nothing accepted was lost.
      // At least one on each channel before the token went away and after it came back (the waits above).
      const accepted = answered.filter((a) => a.activationId);
      expect(accepted.length).toBeGreaterThanOrEqual(4);
      await env.settled(reader);
      const stored = await env.database.query<{ id: string }>(`SELECT activation_id AS id FROM activation_request WHERE status = 'ACCEPTED'`);
      const published = new Set(reader.records.filter((r) => r.event.type === 'sa.absher.activation.accepted').map((r) => String((r.event.data as { activationId: string }).activationId)));
      for (const { activationId } of accepted) {
        expect(stored.some((row) => row.id === activationId)).toBe(true);
        expect(published.has(activationId!)).toBe(true);
      }
    } finally {
      await reader.stop();
    }
  });
});
