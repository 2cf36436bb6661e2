import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { verifyMac } from '../../libs/iso8583/mac-filter';
import { keyCheckValue, softwareMacKey } from '../../libs/iso8583/mac';
import { aesZoneCryptogram } from '../../tools/softhsm-token';
import { atmActivation, TSTA_MAC_KEY } from '../support/atm-requests';
import { newMobile, newNationalId } from '../support/identities';
import { cliOk, runCli } from '../support/operator-cli';
import { TestEnvironment } from '../support/test-environment';

/**
 * A MAC key rotation on live ISO 8583 traffic: the next key is set beside
 * the current one (`mac-key set`; under KEY_STORE=pkcs11, imported into the
 * token under the zone key, as pkcs11-channels.e2e-spec.ts runs this file), the ATM network moves over
 * terminal by terminal while both verify, and `mac-key promote` ends it. The
 * switch never has to change keys at the same moment as the gateway, and no
 * message of the live traffic is refused.
 */
const OLD_KEY = TSTA_MAC_KEY;
const NEW_KEY_HEX = '1F2E3D4C5B6A79880897A6B5C4D3E2F1';
const NEW_KEY = Buffer.from(NEW_KEY_HEX, 'hex');
const dir = mkdtempSync(join(tmpdir(), 'gateway-rotation-'));
let env: TestEnvironment;

beforeAll(async () => {
  env = await TestEnvironment.start();
});

afterAll(async () => {
  await env?.stop();
});

const cli = (...args: string[]) => cliOk(env, 'key-custodian', ...args);


/** One terminal's traffic: activations of customers who are not registered (a MAC'd 25 answers each). */
interface Answered {
  link: 'old' | 'new';
  code: string;
  /** The answer's MAC, under the old and the new key. */
  underOld: boolean;
  underNew: boolean;
}

it('rotates a bank\'s MAC key on live traffic: set next, terminals move over, promote; no message refused', async () => {
  const oldLink = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, OLD_KEY);
  const newLink = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, NEW_KEY);
  const answers: Answered[] = [];
  let phase: 'old only' | 'both' | 'new only' = 'old only';
  let running = true;
  const send = async (link: 'old' | 'new') => {
    const answer = await (link === 'old' ? oldLink : newLink).request(atmActivation({ nationalId: newNationalId(), mobile: newMobile() }));
    answers.push({ link, code: answer.fields[39], underOld: verifyMac(answer.raw, answer.fields, softwareMacKey(OLD_KEY)) === 'valid', underNew: verifyMac(answer.raw, answer.fields, softwareMacKey(NEW_KEY)) === 'valid' });
  };
  const traffic = (async () => {
    for (let i = 0; running; i++) {
      await send(phase === 'old only' ? 'old' : phase === 'new only' ? 'new' : i % 2 === 0 ? 'old' : 'new');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (env.token) {
      const imported = cli('mac-key', 'import', '--bank', 'TSTA', '--next', '--under', env.zoneKey.label, '--cryptogram', aesZoneCryptogram(env.zoneKey.value, NEW_KEY), '--kcv', keyCheckValue(NEW_KEY));
      expect(imported).toBe(`next MAC key of TSTA imported into the token; key check value ${keyCheckValue(NEW_KEY)} matches\n`);
    } else {
      const keyFile = join(dir, 'next.mac');
      writeFileSync(keyFile, `${NEW_KEY_HEX}\n`);
      expect(cli('mac-key', 'set', '--bank', 'TSTA', '--next', '--file', keyFile)).toMatch(/^next MAC key of TSTA set; key check value [0-9A-F]{6}\n$/);
    }
    expect(cli('banks', 'list')).toMatch(/TSTA\s.*\sset, next set\s/);
    await env.registryChangeLoaded();
    const beforeMoving = answers.length;
    phase = 'both';
    await new Promise((resolve) => setTimeout(resolve, 600));
    const duringBoth = answers.slice(beforeMoving);
    expect(duringBoth.length).toBeGreaterThan(4);

    // Every terminal has moved over before the promotion, as the runbook says: wait for the last old-key request to be answered.
    phase = 'new only';
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(cli('mac-key', 'promote', '--bank', 'TSTA')).toMatch(/^next MAC key of TSTA promoted to current; key check value [0-9A-F]{6}\n$/);
    await env.registryChangeLoaded();
    // A request sent before the reload may still be answered under the old key: count from the next one on.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const afterPromotion = answers.length;
    await new Promise((resolve) => setTimeout(resolve, 400));
    running = false;
    await traffic;

    // Not one message of the live traffic was refused: every answer is 25 (MAC verified, customer not registered).
    expect(answers.length).toBeGreaterThan(30);
    expect(answers.filter((a) => a.code !== '25')).toEqual([]);
    // While both verified, terminals on either key were served, and answers stayed under the current (old) key.
    expect(new Set(duringBoth.map((a) => a.link))).toEqual(new Set(['old', 'new']));
    expect(duringBoth.every((a) => a.underOld && !a.underNew)).toBe(true);
    // After the promotion, answers are under the new key.
    expect(answers.slice(afterPromotion).every((a) => a.link === 'new' && a.underNew)).toBe(true);
    // And the old key is refused from then on.
    expect((await oldLink.request(atmActivation({ nationalId: newNationalId(), mobile: newMobile() }))).fields[39]).toBe('63');
    expect(cli('banks', 'list')).toMatch(/TSTA\s.*\sset\s/);
    expect(cli('audit', 'list', '--limit', '10')).toMatch(/key-custodian\s+mac-key-next-(set|imported)[\s\S]*key-custodian\s+mac-key-promoted|key-custodian\s+mac-key-promoted[\s\S]*key-custodian\s+mac-key-next-(set|imported)/);
  } finally {
    running = false;
    await traffic.catch(() => undefined);
    await oldLink.close();
    await newLink.close();
  }
});

it('promote without a next key is refused, saying how to set one', () => {
  const result = runCli(env, 'key-custodian', 'mac-key', 'promote', '--bank', 'TSTB');
  expect(result.code).toBe(1);
  const how = env.token ? 'mac-key import --bank TSTB --next ..., or mac-key generate --bank TSTB --next' : 'mac-key set --bank TSTB --next --file FILE';
  expect(result.stderr).toContain(`TSTB has no next MAC key to promote (set one with: ${how})`);
});
