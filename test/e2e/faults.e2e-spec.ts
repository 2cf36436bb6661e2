import { IsoFields, parseTlv } from '../../libs/iso8583';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { atmActivation, atmRequestId, TSTA_MAC_KEY } from '../support/atm-requests';
import { TOPICS } from '../../src/kafka/topics';
import { expectEventContract } from '../support/contracts';
import { newMobile, newNationalId } from '../support/identities';
import { GatewayAnswer, TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * The fault suite (`npm run test:faults`, also part of `npm test`). Nothing
 * answered is ever lost, while traffic flows on both channels: through a
 * Kafka outage of 30 s (FAULT_KAFKA_DOWN_MS), Kafka refusing produce
 * requests, PostgreSQL connections killed, a SIGKILL of the gateway, and a
 * database that refuses connections.
 */
const KAFKA_DOWN_MS = Number(process.env.FAULT_KAFKA_DOWN_MS ?? 30_000);
jest.setTimeout(KAFKA_DOWN_MS + 120_000);
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
  await env.settled(reader, 60_000);
  const events = reader.on(TOPICS.activations);
  const byActivation = groupBy(events, (r) => String(r.event.data.activationId));
  const stored = new Map(
    (
      await env.database.query<{ request_id: string; activation_id: string; status: string }>(
        `SELECT request_id, activation_id, status FROM activation_request WHERE bank_code = 'TSTA' AND request_id = ANY($1::text[])`,
        [answered.map((a) => a.requestId)],
      )
    ).map((row) => [row.request_id, row]),
  );
  for (const answer of answered) {
    const row = stored.get(answer.requestId);
    expect(row && { activation_id: row.activation_id, status: row.status }).toEqual({ activation_id: answer.body.activationId, status: answer.body.status });
    const published = byActivation.get(String(answer.body.activationId)) ?? [];
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

/** An ATM request that got a decision (any field 39 but 91/96/30/63): its row and its event must exist, once. */
interface AtmAnswered {
  requestId: string;
  code: string;
  activationId: string | null;
}

const DECISION_CODES = ['00', '25', 'N1', 'N2', 'N3', 'N4', '58'];

async function expectAtmDecisionsStoredAndPublished(answered: AtmAnswered[]): Promise<void> {
  await env.settled(reader, 60_000);
  const byRequest = groupBy(reader.on(TOPICS.activations), (r) => String(r.event.data.requestId));
  const stored = groupBy(
    await env.database.query<{ request_id: string; activation_id: string; status: string }>(
      `SELECT request_id, activation_id, status FROM activation_request WHERE bank_code = 'TSTA' AND request_id = ANY($1::text[])`,
      [answered.map((a) => a.requestId)],
    ),
    (row) => row.request_id,
  );
  for (const answer of answered) {
    const rows = stored.get(answer.requestId) ?? [];
    expect({ requestId: answer.requestId, rows: rows.length }).toEqual({ requestId: answer.requestId, rows: 1 });
    expect(rows[0].status).toBe(answer.code === '00' ? 'ACCEPTED' : 'REJECTED');
    if (answer.activationId) expect(rows[0].activation_id).toBe(answer.activationId);
    const published = byRequest.get(answer.requestId) ?? [];
    expect({ requestId: answer.requestId, ids: new Set(published.map((r) => r.event.id)).size }).toEqual({ requestId: answer.requestId, ids: 1 });
    expect(published[0].event.data.activationId).toBe(rows[0].activation_id);
  }
}

function groupBy<T>(items: T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/**
 * Traffic on both channels until stop() (HTTP from 4 clients, ATM from 4
 * requests in flight on one connection); what each request got is kept.
 */
function trafficOnBothChannels(list: { nationalId: string; mobile: string }[], prefix: string) {
  let stopping = false;
  const answered: Answered[] = [];
  const atmAnswered: AtmAnswered[] = [];
  const unavailable: { requestId: string; body: Record<string, unknown> }[] = [];
  const atmUnavailable: IsoFields[] = [];
  const unexpected: string[] = [];
  let n = 0;
  // Paced (about 150 requests a second in all), so the checks afterwards stay quick however long the fault lasts.
  const pause = () => new Promise((resolve) => setTimeout(resolve, 50));
  const http = async () => {
    while (!stopping) {
      const customer = list[n++ % list.length];
      const requestId = nextRequestId(prefix);
      const body = { nationalId: customer.nationalId, mobile: n % 3 === 0 ? newMobile() : customer.mobile, channel: 'INTERNET_BANKING' };
      const answer = await env.send(env.pki.tsta.es256, { requestId, body });
      if (answer.status === 200) answered.push({ requestId, nationalId: customer.nationalId, body: answer.json });
      else if (answer.status === 503 && answer.json.code === 'UNAVAILABLE') unavailable.push({ requestId, body });
      else unexpected.push(`HTTP ${answer.status} ${JSON.stringify(answer.json)}`);
      await pause();
    }
  };
  const atm = async (client: AtmSwitchClient) => {
    while (!stopping) {
      const fields = atmActivation(list[n++ % list.length], { rrnPrefix: 'FLT', terminal: 'ATM00077' });
      const answer = await client.request(fields);
      const code = answer.fields[39];
      if (DECISION_CODES.includes(code)) atmAnswered.push({ requestId: atmRequestId(fields), code, activationId: code === '00' ? (parseTlv(answer.fields[48]).get('AI') ?? null) : null });
      else if (code === '91') atmUnavailable.push(fields);
      else unexpected.push(`ISO 39=${code}`);
      await pause();
    }
  };
  let client: AtmSwitchClient;
  const running = AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY).then((c) => {
    client = c;
    return Promise.all([...Array.from({ length: 4 }, http), ...Array.from({ length: 4 }, () => atm(c))]);
  });
  return {
    answered,
    atmAnswered,
    unavailable,
    atmUnavailable,
    unexpected,
    async stop() {
      stopping = true;
      await running;
      await client.close();
    },
  };
}

it(`Kafka down for ${KAFKA_DOWN_MS / 1000} s while both channels keep sending: every answer given is published as answered when it returns`, async () => {
  const list = await customers(20);
  const traffic = trafficOnBothChannels(list, 'outage');
  await new Promise((resolve) => setTimeout(resolve, 500));
  await env.broker.takeDown();
  let answeredWhileDown = 0;
  try {
    await new Promise((resolve) => setTimeout(resolve, KAFKA_DOWN_MS));
    answeredWhileDown = traffic.answered.length + traffic.atmAnswered.length;
    // Nothing answered during the outage reached Kafka, so the test below is about the outbox, not luck.
    const [{ unpublished }] = await env.database.query<{ unpublished: number }>(`SELECT count(*)::int AS unpublished FROM outbox_event WHERE published_at IS NULL`);
    expect(unpublished).toBeGreaterThan(0);
  } finally {
    await env.broker.bringUp();
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  await traffic.stop();
  expect(traffic.unexpected).toEqual([]);
  expect(traffic.unavailable).toEqual([]); // Kafka away never stops the gateway answering
  expect(answeredWhileDown).toBeGreaterThan(20);
  await expectAllPublishedAsAnswered(traffic.answered);
  await expectAtmDecisionsStoredAndPublished(traffic.atmAnswered);
});

it('PostgreSQL connections killed (pg_terminate_backend) while both channels send: 503/91 or an answer that is stored and published, never a lost one', async () => {
  if (env.database.kind !== 'postgresql') return; // needs a PostgreSQL server whose backends can be killed
  const list = await customers(20);
  const traffic = trafficOnBothChannels(list, 'pg-kill');
  for (let i = 0; i < 6; i++) {
    await new Promise((resolve) => setTimeout(resolve, 700));
    await env.database.admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${env.database.name}' AND pid <> pg_backend_pid()`);
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await traffic.stop();
  expect({ unexpected: traffic.unexpected, errorsLogged: traffic.unexpected.length ? env.logs.filter((l) => l.includes('"level":"error"')).slice(-5) : [] }).toEqual({ unexpected: [], errorsLogged: [] });
  expect(traffic.answered.length + traffic.atmAnswered.length).toBeGreaterThan(10);
  await expectAllPublishedAsAnswered(traffic.answered);
  await expectAtmDecisionsStoredAndPublished(traffic.atmAnswered);
  // A request that got 503 or 91 may have been committed just before its connection died; retried with the same id it gets one consistent answer.
  for (const retry of traffic.unavailable) {
    const again = await env.send(env.pki.tsta.es256, { requestId: retry.requestId, body: retry.body });
    expect(again.status).toBe(200);
    expect(await env.database.query(`SELECT activation_id FROM activation_request WHERE bank_code = 'TSTA' AND request_id = $1`, [retry.requestId])).toEqual([{ activation_id: again.json.activationId }]);
  }
  const atm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY);
  try {
    for (const fields of traffic.atmUnavailable) {
      const again = await atm.request(fields);
      expect(DECISION_CODES).toContain(again.fields[39]);
      expect(await env.database.query(`SELECT 1 FROM activation_request WHERE bank_code = 'TSTA' AND request_id = $1`, [atmRequestId(fields)])).toHaveLength(1);
    }
  } finally {
    await atm.close();
  }
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
  await env.waitForLog((line) => line.includes('outbox publish failed'));
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
