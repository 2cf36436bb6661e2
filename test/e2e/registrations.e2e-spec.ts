import { TOPICS } from '../../src/kafka/topics';
import { expectEventContract } from '../support/contracts';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/** The registration read model (spec 5.2) fed by a real Kafka topic. */
let env: TestEnvironment;
let reader: TopicReader;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.deadLetters]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

const registration = async (nationalId: string) =>
  (await env.database.query<{ mobile: string; status: string; version: number }>(`SELECT mobile, status, version::int AS version FROM registration WHERE national_id = $1`, [nationalId]))[0];

it('invalid messages go to the DLQ with the reason, and consumption goes on', async () => {
  const before = newNationalId();
  const after = newNationalId();
  const bad = newNationalId();
  await env.publishRegistration({ nationalId: before, mobile: newMobile(), status: 'PENDING_ACTIVATION', version: 1 });
  const invalid: [string, () => Promise<unknown>, RegExp][] = [
    ['not JSON', () => env.publishRegistration({ nationalId: bad }, bad, '{"specversion": "1.0", '), /not UTF-8 JSON/],
    ['not UTF-8', () => env.publishRegistration({ nationalId: bad }, bad, '\u0000'), /not a JSON object|not UTF-8 JSON/],
    ['another event type', () => env.publishRegistration({ nationalId: bad }, bad, JSON.stringify({ specversion: '1.0', id: 'x', type: 'sa.absher.other', data: {} })), /unexpected event type/],
    ['a national ID failing Luhn', () => env.publishRegistration({ nationalId: '1000000007', mobile: newMobile(), status: 'ACTIVE', version: 1 }), /nationalId fails the Luhn/],
    ['a local mobile spelling', () => env.publishRegistration({ nationalId: bad, mobile: '0512345678', status: 'ACTIVE', version: 1 }), /mobile must be E.164/],
    ['an unknown status', () => env.publishRegistration({ nationalId: bad, mobile: newMobile(), status: 'BLOCKED', version: 1 }), /status must be one of/],
    ['a fractional version', () => env.publishRegistration({ nationalId: bad, mobile: newMobile(), status: 'ACTIVE', version: 1.5 }), /version must be/],
    ['a key that is not the national ID', () => env.publishRegistration({ nationalId: bad, mobile: newMobile(), status: 'ACTIVE', version: 1 }, newNationalId()), /key differs/],
  ];
  const published: { partition: number; offset: string }[] = [];
  for (const [, publish] of invalid) published.push((await publish()) as { partition: number; offset: string });
  await env.register(after, newMobile(), 'ACTIVE', 1);
  for (const message of published) await env.waitForRegistrationsConsumed(message);
  expect(await registration(before)).toMatchObject({ status: 'PENDING_ACTIVATION', version: 1 });
  expect(await registration(bad)).toBeUndefined();

  await env.settled(reader);
  // At least once: a batch processed again dead-letters again, with the same CloudEvent id.
  const dead = [...new Map(reader.on(TOPICS.deadLetters).map((r) => [r.event.id, r])).values()];
  expect(dead).toHaveLength(invalid.length);
  invalid.forEach(([name, , reason], i) => {
    const record = dead.find((r) => reason.test(String(r.event.data.reason)) && !dead.slice(0, 0).includes(r));
    expect({ name, found: Boolean(record) }).toEqual({ name, found: true });
    expectEventContract(record!.topic, null, record!.event);
    expect(record!.event.data.sourceTopic).toBe(TOPICS.registrations);
    void i;
  });
  expect(dead.map((r) => r.event.data.offset).every((offset) => /^[0-9]+$/.test(String(offset)))).toBe(true);
});

it('a key with a NUL byte and a payload over 64 KiB are dead-lettered safely; consumption goes on', async () => {
  const nul = await env.publishRegistration({ nationalId: 'x' }, 'bad\u0000key', 'not json');
  const huge = await env.publishRegistration({ nationalId: 'x' }, null, 'x'.repeat(200 * 1024));
  const after = newNationalId();
  await env.register(after, newMobile(), 'ACTIVE', 1);
  await env.waitForRegistrationsConsumed(nul);
  await env.waitForRegistrationsConsumed(huge);
  await env.settled(reader);
  const nulRecord = reader.on(TOPICS.deadLetters).find((r) => r.event.data.offset === nul.offset && r.event.data.partition === nul.partition)!;
  expect(nulRecord.event.data.key).toBe(`base64:${Buffer.from('bad\u0000key').toString('base64')}`);
  expectEventContract(nulRecord.topic, null, nulRecord.event);
  const hugeRecord = reader.on(TOPICS.deadLetters).find((r) => r.event.data.offset === huge.offset && r.event.data.partition === huge.partition)!;
  expect(hugeRecord.event.data).toMatchObject({ payloadTruncated: true, payloadBytes: 200 * 1024, key: null });
  expect(String(hugeRecord.event.data.payload)).toHaveLength(64 * 1024);
  expectEventContract(hugeRecord.topic, null, hugeRecord.event);
});

it('applies only versions above the stored one, also within one batch', async () => {
  const nationalId = newNationalId();
  const mobile = newMobile();
  for (const [version, status] of [[3, 'SUSPENDED'], [1, 'ACTIVE'], [5, 'PENDING_ACTIVATION'], [4, 'CLOSED'], [5, 'ACTIVE']] as const) {
    await env.publishRegistration({ nationalId, mobile, status, version });
  }
  const last = await env.publishRegistration({ nationalId, mobile, status: 'ACTIVE', version: 2 });
  await env.waitForRegistrationsConsumed(last);
  expect(await registration(nationalId)).toEqual({ mobile, status: 'PENDING_ACTIVATION', version: 5 });
  const newer = await env.publishRegistration({ nationalId, mobile: newMobile(), status: 'ACTIVE', version: 6 });
  await env.waitForRegistrationsConsumed(newer);
  expect(await registration(nationalId)).toMatchObject({ status: 'ACTIVE', version: 6 });
});

it('offsets are committed only after rows are stored: killed mid-consumption, nothing is skipped', async () => {
  await env.killGateway();
  const ids = Array.from({ length: 300 }, () => newNationalId());
  for (const nationalId of ids) await env.publishRegistration({ nationalId, mobile: newMobile(), status: 'PENDING_ACTIVATION', version: 7 });
  await env.startGateway();
  await new Promise((resolve) => setTimeout(resolve, 150));
  await env.killGateway(); // somewhere during joining or consuming
  await env.startGateway();
  await env.waitForRow(`SELECT 1 FROM registration WHERE national_id = ANY($1) AND version = 7 HAVING count(*) = $2`, [ids, ids.length], 'all 300 registrations', 60_000);
});

it('starts consuming when Kafka comes back, if it was away when the gateway started', async () => {
  await env.stopGateway();
  await env.broker.takeDown();
  try {
    await env.startGateway(); // answers from the stored read model meanwhile
    await new Promise((resolve) => setTimeout(resolve, 6000)); // longer than kafkajs' own connection retries
  } finally {
    await env.broker.bringUp();
  }
  const nationalId = newNationalId();
  await env.register(nationalId, newMobile(), 'SUSPENDED', 1);
  expect(await registration(nationalId)).toMatchObject({ status: 'SUSPENDED' });
});
