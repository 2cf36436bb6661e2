import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';

/** BANKS_FILE is the whole list: what is taken out of it stops authenticating at the next start. */
let env: TestEnvironment;

beforeAll(async () => {
  env = await TestEnvironment.start();
});

afterAll(async () => {
  await env?.stop();
});

const body = () => ({ nationalId: newNationalId(), mobile: newMobile(), channel: 'PHONE_BANKING' });

it('a bank removed from BANKS_FILE is UNKNOWN_BANK, a certificate removed is UNKNOWN_KEY, the rest keeps working', async () => {
  expect((await env.send(env.pki.tstb.es256, { requestId: 'before-1', body: body() })).status).toBe(200);
  expect((await env.send(env.pki.tsta.ps256, { requestId: 'before-2', body: body() })).status).toBe(200);

  const registry = parse(readFileSync(env.pki.banksFile, 'utf8'));
  registry.banks = registry.banks.filter((bank: { code: string }) => bank.code !== 'TSTB');
  const tsta = registry.banks.find((bank: { code: string }) => bank.code === 'TSTA');
  tsta.certificates = tsta.certificates.filter((file: string) => !file.endsWith('tsta-ps256.pem'));
  writeFileSync(env.pki.banksFile, stringify(registry));
  await env.stopGateway();
  await env.startGateway();

  const removedBank = await env.send(env.pki.tstb.es256, { requestId: 'after-1', body: body() });
  expect(removedBank.json.code).toBe('UNKNOWN_BANK');
  const removedKey = await env.send(env.pki.tsta.ps256, { requestId: 'after-2', body: body() });
  expect(removedKey.json.code).toBe('UNKNOWN_KEY');
  expect((await env.send(env.pki.tsta.es256, { requestId: 'after-3', body: body() })).status).toBe(200);
  expect(await env.database.query(`SELECT code FROM bank ORDER BY code`)).toEqual([{ code: 'TSTA' }, { code: 'TSTR' }]);
  await env.waitForLog((line) => line.includes('banks no longer in BANKS_FILE were removed'));
});
