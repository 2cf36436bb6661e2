import fc from 'fast-check';
import { connect } from 'node:net';
import { frame, IsoFields, packMessage } from '../../libs/iso8583';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';

/**
 * Hostile bytes on the live listener: random frames, mutated activations,
 * lying length headers. The process stays up and a well-behaved switch on
 * its own connection keeps being answered throughout. Fixed seed, bounded count.
 */
const KEY = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
let env: TestEnvironment;
let stan = 300000;

beforeAll(async () => {
  env = await TestEnvironment.start();
});

afterAll(async () => {
  await env?.stop();
});

function activation(): IsoFields {
  const s = String(++stan).padStart(6, '0');
  return { 0: '0200', 2: '4111111111111111', 3: '910000', 7: '1123101500', 11: s, 12: '101500', 13: '1123', 32: '111111', 37: `FZ${s}0000`, 41: 'FUZZ0001', 48: `NI010${newNationalId()}MN013${newMobile()}` };
}

/** Sends bytes on a fresh connection; resolves when the gateway answers something or closes, or after a short wait. */
function throwAt(port: number, bytes: Buffer): Promise<'answered' | 'closed' | 'silent'> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    const timer = setTimeout(() => finish('silent'), 150);
    function finish(result: 'answered' | 'closed' | 'silent') {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    }
    socket.on('data', () => finish('answered'));
    socket.on('close', () => finish('closed'));
    socket.on('error', () => finish('closed'));
  });
}

it('thousands of random and mutated frames: the gateway stays up and keeps answering another connection', async () => {
  const honest = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, KEY);
  const template = honest.pack(activation());
  const hostile = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 200 }).map((bytes) => frame(Buffer.from(bytes))),
    fc.uint8Array({ minLength: 0, maxLength: 64 }).map((bytes) => Buffer.from(bytes)), // unframed garbage, lying lengths
    fc.tuple(fc.nat(template.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => {
      const copy = Buffer.from(template);
      copy[at] ^= xor;
      return frame(copy);
    }),
    fc.nat(template.length).map((length) => frame(template.subarray(0, Math.max(1, length)))),
    fc.array(fc.nat(template.length - 1), { minLength: 1, maxLength: 8 }).map((cuts) => {
      const copy = Buffer.from(template);
      for (const at of cuts) copy[at] = 0x20;
      return Buffer.concat([frame(copy), frame(packMessage({ 0: '0800', 7: '1123101500', 11: '000001', 70: '301' }))]);
    }),
  );
  const outcomes = { answered: 0, closed: 0, silent: 0 };
  let round = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(hostile, { minLength: 5, maxLength: 5 }), async (batch) => {
      const results = await Promise.all(batch.map((bytes) => throwAt(env.isoPort, bytes)));
      for (const result of results) outcomes[result]++;
      if (++round % 50 === 0) {
        const answer = await honest.request(activation());
        expect(answer.fields[39]).toBe('25');
      }
    }),
    { seed: 8583, numRuns: 400 },
  );
  expect(env.gateway?.exitCode).toBeNull();
  expect(outcomes.answered + outcomes.closed).toBeGreaterThan(500);
  const after = await honest.request(activation());
  expect({ code: after.fields[39], mac: after.macValid }).toEqual({ code: '25', mac: true });
  await honest.close();
  // And the signed JSON side is still there too.
  expect((await fetch(`${env.baseUrl}/health/live`)).status).toBe(200);
});

it('96: anything unexpected (the store refusing the row for a reason that is not unavailability)', async () => {
  const honest = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, KEY);
  await env.database.query(`ALTER TABLE activation_request ADD CONSTRAINT fuzz_refuse_everything CHECK (false) NOT VALID`);
  try {
    const answer = await honest.request(activation());
    expect({ code: answer.fields[39], mac: answer.macValid }).toEqual({ code: '96', mac: true });
  } finally {
    await env.database.query(`ALTER TABLE activation_request DROP CONSTRAINT fuzz_refuse_everything`);
    await honest.close();
  }
  await env.waitForLog((line) => line.includes('unexpected error answering an ISO 8583 message'));
});
