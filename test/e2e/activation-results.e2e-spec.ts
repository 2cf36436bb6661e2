import { ACTIVATION_RESULTS_GROUP } from '../../src/activation/activation-results-consumer';
import { TOPICS } from '../../src/kafka/topics';
import { expectContract, expectEventContract } from '../support/contracts';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/** Spec 5.3: the identity core reports back; banks see it on GET. */
let env: TestEnvironment;
let reader: TopicReader;
let n = 0;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.ops, TOPICS.deadLetters]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

async function decided(status: 'PENDING_ACTIVATION' | 'ACTIVE') {
  const nationalId = newNationalId();
  const mobile = newMobile();
  await env.register(nationalId, mobile, status);
  const requestId = `results-${Date.now()}-${++n}`;
  const answer = await env.send(env.pki.tsta.es256, { requestId, body: { nationalId, mobile, channel: 'INTERNET_BANKING' } });
  return { requestId, nationalId, activationId: String(answer.json.activationId), status: answer.json.status };
}

async function deliver(activationId: string, nationalId: string, result: string, reason: string | null = null) {
  const sent = await env.publishResult({ activationId, result, reason, completedAt: '2026-11-23T10:05:00.000Z' }, nationalId);
  await env.waitForConsumed(ACTIVATION_RESULTS_GROUP, TOPICS.activationResults, sent);
}

async function statusOf(requestId: string) {
  const answer = await env.send(env.pki.tsta.es256, { method: 'GET', path: `/v1/activations/${requestId}`, requestId: `get-${++n}` });
  expectContract('schemas/http/activation-response.schema.json', answer.json);
  return answer.json;
}

it('ACCEPTED -> ACTIVATED: GET shows it with completedAt; the same result again is applied once', async () => {
  const activation = await decided('PENDING_ACTIVATION');
  expect(activation.status).toBe('ACCEPTED');
  await deliver(activation.activationId, activation.nationalId, 'ACTIVATED');
  expect(await statusOf(activation.requestId)).toMatchObject({ status: 'ACTIVATED', completedAt: '2026-11-23T10:05:00.000Z', reason: null });
  await deliver(activation.activationId, activation.nationalId, 'ACTIVATED');
  const results = await env.database.query(`SELECT applied FROM activation_result WHERE activation_id = $1`, [activation.activationId]);
  expect(results).toEqual([{ applied: true }]);
});

it('ACCEPTED -> FAILED: GET shows FAILED with the identity core’s reason', async () => {
  const activation = await decided('PENDING_ACTIVATION');
  await deliver(activation.activationId, activation.nationalId, 'FAILED', 'SMS_NOT_DELIVERED');
  expect(await statusOf(activation.requestId)).toMatchObject({ status: 'FAILED', reason: 'SMS_NOT_DELIVERED', completedAt: '2026-11-23T10:05:00.000Z' });
});

it('a result for a rejected activation, or a different one for a completed activation, is recorded and reported on the ops stream, not applied', async () => {
  const rejected = await decided('ACTIVE');
  expect(rejected.status).toBe('REJECTED');
  await deliver(rejected.activationId, rejected.nationalId, 'ACTIVATED');
  expect(await statusOf(rejected.requestId)).toMatchObject({ status: 'REJECTED', completedAt: null });
  const activated = await decided('PENDING_ACTIVATION');
  await deliver(activated.activationId, activated.nationalId, 'ACTIVATED');
  await deliver(activated.activationId, activated.nationalId, 'FAILED');
  expect(await statusOf(activated.requestId)).toMatchObject({ status: 'ACTIVATED' });
  await env.settled(reader);
  const reports = reader.on(TOPICS.ops).filter((r) => r.event.type === 'sa.absher.gateway.result-not-applied');
  const byActivation = (id: string) => reports.find((r) => r.event.data.activationId === id)!;
  expect(byActivation(rejected.activationId).event.data).toMatchObject({ why: 'ACTIVATION_REJECTED', activationStatus: 'REJECTED', result: 'ACTIVATED', bankCode: 'TSTA' });
  expect(byActivation(activated.activationId).event.data).toMatchObject({ why: 'ALREADY_COMPLETED', activationStatus: 'ACTIVATED', result: 'FAILED' });
  for (const report of reports) {
    expectEventContract(report.topic, report.key, report.event);
    expect(report.raw).not.toContain(rejected.nationalId);
  }
});

it('invalid and unknown results go to the DLQ with the reason, and consumption goes on', async () => {
  const bad = [
    await env.publishResult({}, 'k', 'not json'),
    await env.publishResult({ activationId: 'not-a-uuid', result: 'ACTIVATED', reason: null, completedAt: '2026-11-23T10:05:00Z' }, 'k'),
    await env.publishResult({ activationId: '3f1c2a9e-8d7b-4c6a-9e0f-1a2b3c4d5e6f', result: 'DONE', reason: null, completedAt: '2026-11-23T10:05:00Z' }, 'k'),
    await env.publishResult({ activationId: '3f1c2a9e-8d7b-4c6a-9e0f-1a2b3c4d5e6f', result: 'ACTIVATED', reason: null, completedAt: '2026-11-23T10:05:00Z' }, 'k'),
  ];
  const activation = await decided('PENDING_ACTIVATION');
  await deliver(activation.activationId, activation.nationalId, 'ACTIVATED');
  for (const message of bad) await env.waitForConsumed(ACTIVATION_RESULTS_GROUP, TOPICS.activationResults, message);
  expect(await statusOf(activation.requestId)).toMatchObject({ status: 'ACTIVATED' });
  await env.settled(reader);
  const reasons = [...new Map(reader.on(TOPICS.deadLetters).map((r) => [r.event.id, String(r.event.data.reason)])).values()];
  for (const expected of [/not UTF-8 JSON/, /activationId must be a UUID/, /result must be ACTIVATED or FAILED/, /no activation .* is known/]) {
    expect(reasons.some((reason) => expected.test(reason))).toBe(true);
  }
});
