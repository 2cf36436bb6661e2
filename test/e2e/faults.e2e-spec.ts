import { TOPICS } from '../../src/kafka/topics';
import { expectEventContract } from '../support/contracts';
import { newMobile, newNationalId } from '../support/identities';
import { GatewayAnswer, TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * Nothing answered is ever lost: through a Kafka outage, a SIGKILL of the
 * gateway, and a database that refuses connections.
 */
let env: TestEnvironment;
let reader: TopicReader;
let sequence = 0;
const nextRequestId = (prefix: string) => `${prefix}-${Date.now()}-${++sequence}`;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations, TOPICS.ops]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

interface Answered {
  requestId: string;
  nationalId: string;
  body: Record<string, unknown>;
}

/** Registered customers: half will be accepted, half mismatched. */
async function customers(count: number): Promise<{ nationalId: string; mobile: string }[]> {
  const list = Array.from({ length: count }, () => ({ nationalId: newNationalId(), mobile: newMobile() }));
  for (const customer of list) await env.publishRegistration({ ...customer, status: 'PENDING_ACTIVATION', version: 1 });
  const last = list[list.length - 1];
  await env.waitForRow(`SELECT 1 FROM registration WHERE national_id = $1`, [last.nationalId], 'registrations');
  await env.waitForRow(`SELECT 1 FROM registration WHERE national_id = ANY($1) HAVING count(*) = $2`, [list.map((c) => c.nationalId), count], 'all registrations');
  return list;
}

/** Every answered decision is stored once and its event is on Kafka exactly as answered; per key, in decision order. */
async function expectAllPublishedAsAnswered(answered: Answered[]): Promise<void> {
  await env.settled(reader);
  const events = reader.on(TOPICS.activations);
  for (const answer of answered) {
    const rows = await env.database.query(`SELECT activation_id, status FROM activation_request WHERE bank_code = 'TSTA' AND request_id = $1`, [answer.requestId]);
    expect(rows).toEqual([{ activation_id: answer.body.activationId, status: answer.body.status }]);
    const published = events.filter((r) => r.event.data.activationId === answer.body.activationId);
    expect(published.length).toBeGreaterThanOrEqual(1);
    const unique = new Set(published.map((r) => r.event.id));
    expect(unique.size).toBe(1); // re-deliveries carry the same CloudEvent id
    expectEventContract(published[0].topic, published[0].key, published[0].event);
    expect(published[0].event.data).toMatchObject({
      requestId: answer.requestId,
      nationalId: answer.nationalId,
      outcome: answer.body.status,
      reason: answer.body.reason,
      decidedAt: answer.body.decidedAt,
    });
  }
  // Order per key: for each national ID, first deliveries come in decision order.
  const byKey = new Map<string, string[]>();
  for (const record of events) {
    const seen = byKey.get(record.key!) ?? [];
    if (!seen.includes(record.event.data.activationId as string)) seen.push(record.event.data.activationId as string);
    byKey.set(record.key!, seen);
  }
  // Decision order: when each was decided; within one millisecond (one batch), the order its events were written.
  const decided = await env.database.query<{ national_id: string; activation_id: string }>(
    `SELECT a.national_id, a.activation_id FROM activation_request a
       JOIN outbox_event o ON o.topic = $1 AND (o.payload::jsonb -> 'data' ->> 'activationId') = a.activation_id::text
     ORDER BY a.decided_at, o.id`,
    [TOPICS.activations],
  );
  for (const [key, order] of byKey) {
    const expected = decided.filter((d) => d.national_id === key).map((d) => d.activation_id);
    expect(order).toEqual(expected);
  }
}

it('Kafka outage: requests keep being answered; when the broker returns every answered decision is published as answered', async () => {
  const list = await customers(20);
  await env.broker.takeDown();
  const answered: Answered[] = [];
  try {
    // Two requests per customer: same key twice, so order per key is checked too.
    for (const [i, customer] of [...list, ...list].entries()) {
      const requestId = nextRequestId('outage');
      const mobile = i % 2 === 0 ? customer.mobile : newMobile();
      const answer = await env.send(env.pki.tsta.es256, { requestId, body: { nationalId: customer.nationalId, mobile, channel: 'INTERNET_BANKING' } });
      expect(answer.status).toBe(200);
      answered.push({ requestId, nationalId: customer.nationalId, body: answer.json });
    }
    const [{ unpublished }] = await env.database.query<{ unpublished: number }>(`SELECT count(*)::int AS unpublished FROM outbox_event WHERE published_at IS NULL`);
    expect(unpublished).toBeGreaterThanOrEqual(answered.length);
    await new Promise((resolve) => setTimeout(resolve, 3000)); // the relay retries with back-off meanwhile
    expect(reader.on(TOPICS.activations).filter((r) => answered.some((a) => a.body.activationId === r.event.data.activationId))).toHaveLength(0);
  } finally {
    await env.broker.bringUp();
  }
  await expectAllPublishedAsAnswered(answered);
});

it('Kafka refusing produce requests for a while: published once it accepts again', async () => {
  const list = await customers(5);
  await env.broker.failRequests(0, 12, 7); // Produce -> REQUEST_TIMED_OUT, twelve times
  const answered: Answered[] = [];
  for (const customer of list) {
    const requestId = nextRequestId('produce-errors');
    const answer = await env.send(env.pki.tsta.es256, { requestId, body: { ...customer, channel: 'PHONE_BANKING' } });
    expect(answer.status).toBe(200);
    answered.push({ requestId, nationalId: customer.nationalId, body: answer.json });
  }
  await expectAllPublishedAsAnswered(answered);
  // The fault really hit the relay: it failed, backed off and retried.
  expect(env.logs.some((line) => line.includes('outbox publish failed'))).toBe(true);
});

it('SIGKILL while requests flow: after restart every answered decision is stored once and published; nothing unanswered is half-stored', async () => {
  const list = await customers(40);
  const answered: Answered[] = [];
  const unanswered: { requestId: string; body: Record<string, unknown> }[] = [];
  let killed = false;
  const worker = async (offset: number) => {
    for (let i = offset; i < list.length * 5 && !killed; i += 8) {
      const customer = list[i % list.length];
      const requestId = nextRequestId('crash');
      const body = { nationalId: customer.nationalId, mobile: customer.mobile, channel: 'INTERNET_BANKING' };
      try {
        const answer = await env.send(env.pki.tsta.es256, { requestId, body });
        if (answer.status === 200) answered.push({ requestId, nationalId: customer.nationalId, body: answer.json });
        else unanswered.push({ requestId, body });
      } catch {
        unanswered.push({ requestId, body });
      }
    }
  };
  const traffic = Promise.all(Array.from({ length: 8 }, (_, k) => worker(k)));
  await new Promise((resolve) => setTimeout(resolve, 700));
  killed = true;
  await env.killGateway();
  await traffic;
  expect(answered.length).toBeGreaterThan(5);

  await env.startGateway();
  await expectAllPublishedAsAnswered(answered);

  // Unanswered: either nothing at all, or fully stored (decision + both events); never a row without its events.
  const rows = await env.database.query<{ activation_id: string; request_id: string }>(`SELECT activation_id, request_id FROM activation_request WHERE request_id LIKE 'crash-%'`);
  const outbox = await env.database.query<{ payload: string }>(`SELECT payload FROM outbox_event`);
  const eventsFor = (activationId: string) => outbox.filter((o) => o.payload.includes(activationId)).length;
  for (const row of rows) expect({ request: row.request_id, events: eventsFor(row.activation_id) }).toEqual({ request: row.request_id, events: 2 });
  // And a bank retrying an unanswered request gets one consistent answer.
  for (const retry of unanswered.slice(0, 5)) {
    const again = await env.send(env.pki.tsta.es256, { requestId: retry.requestId, body: retry.body });
    expect(again.status).toBe(200);
    const stored = await env.database.query(`SELECT activation_id FROM activation_request WHERE request_id = $1`, [retry.requestId]);
    expect(stored).toEqual([{ activation_id: again.json.activationId }]);
  }
});

it('the store refusing connections: 503 UNAVAILABLE, nothing accepted; service resumes when it returns', async () => {
  if (env.database.kind !== 'postgresql') return; // needs a PostgreSQL server to take away
  const [customer] = await customers(1);
  const requestId = nextRequestId('store-down');
  await env.database.admin(`ALTER DATABASE ${env.database.name} ALLOW_CONNECTIONS false`);
  let answer: GatewayAnswer;
  try {
    await env.database.admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${env.database.name}' AND pid <> pg_backend_pid()`);
    answer = await env.send(env.pki.tsta.es256, { requestId, body: { ...customer, channel: 'INTERNET_BANKING' } });
  } finally {
    await env.database.admin(`ALTER DATABASE ${env.database.name} ALLOW_CONNECTIONS true`);
  }
  expect(answer.status).toBe(503);
  expect(answer.json.code).toBe('UNAVAILABLE');
  expect(answer.headers['retry-after']).toBeDefined();
  expect(await env.database.query(`SELECT 1 FROM activation_request WHERE request_id = $1`, [requestId])).toHaveLength(0);

  const retry = await env.send(env.pki.tsta.es256, { requestId, body: { ...customer, channel: 'INTERNET_BANKING' } });
  expect(retry.status).toBe(200);
  expect(retry.json.status).toBe('ACCEPTED');
  await expectAllPublishedAsAnswered([{ requestId, nationalId: customer.nationalId, body: retry.json }]);
});
