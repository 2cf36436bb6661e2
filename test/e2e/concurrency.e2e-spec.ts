import { TOPICS } from '../../src/kafka/topics';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * Requests that arrive together are decided together (one transaction per
 * batch). Whatever lands in the same batch: each request id is decided once,
 * copies replay it, a copy with another body is refused, and events follow
 * the decisions in order per national ID.
 */
let env: TestEnvironment;
let reader: TopicReader;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

it('a burst with the same request id several times, the same customer many times and other banks: one decision per request id', async () => {
  const customers = Array.from({ length: 10 }, () => ({ nationalId: newNationalId(), mobile: newMobile() }));
  for (const c of customers) await env.register(c.nationalId, c.mobile, 'PENDING_ACTIVATION');
  const runId = Date.now();
  const sends: Promise<{ requestId: string; copy: number; status: number; replayed: boolean; code?: string; activationId?: string }>[] = [];
  for (let i = 0; i < 200; i++) {
    const customer = customers[i % customers.length];
    const requestId = `burst-${runId}-${i % 150}`; // ids 0-49 are sent twice
    const copy = i < 150 ? 0 : 1;
    const bank = i % 2 === 0 ? env.pki.tsta.es256 : env.pki.tsta.ps256;
    sends.push(
      env.send(bank, { requestId, body: { nationalId: customer.nationalId, mobile: customer.mobile, channel: 'INTERNET_BANKING' } }).then((answer) => ({
        requestId,
        copy,
        status: answer.status,
        replayed: answer.headers['idempotent-replayed'] === 'true',
        code: answer.json.code as string | undefined,
        activationId: answer.json.activationId as string | undefined,
      })),
    );
  }
  // The same id as request 0 with another body, in the same burst: refused, never decided.
  const reusedId = `burst-${runId}-0`;
  const reused = env.send(env.pki.tsta.es256, { requestId: reusedId, body: { nationalId: customers[5].nationalId, mobile: customers[5].mobile, channel: 'PHONE_BANKING' } });
  const answers = await Promise.all(sends);
  const reusedAnswer = await reused;

  const byId = new Map<string, typeof answers>();
  for (const a of answers) byId.set(a.requestId, [...(byId.get(a.requestId) ?? []), a]);
  expect(byId.size).toBe(150);
  for (const [requestId, copies] of byId) {
    if (requestId === reusedId) continue;
    expect(copies.map((c) => c.status)).toEqual(copies.map(() => 200));
    // Copies of a request id carry the same activation: exactly one was decided, the other replayed.
    expect({ requestId, activations: new Set(copies.map((c) => c.activationId)).size }).toEqual({ requestId, activations: 1 });
    if (copies.length === 2) expect({ requestId, replayed: copies.filter((c) => c.replayed).length }).toEqual({ requestId, replayed: 1 });
  }
  // Request 0 was sent three times at once, once with another body. Whichever body was decided first wins; the other body is refused.
  const zero = byId.get(reusedId)!;
  if (reusedAnswer.status === 409) {
    expect(reusedAnswer.json.code).toBe('REQUEST_ID_REUSED');
    expect(zero.map((z) => z.status)).toEqual([200, 200]);
    expect(zero.filter((z) => z.replayed)).toHaveLength(1);
  } else {
    expect(reusedAnswer.status).toBe(200);
    expect(zero.map((z) => [z.status, z.code])).toEqual([
      [409, 'REQUEST_ID_REUSED'],
      [409, 'REQUEST_ID_REUSED'],
    ]);
  }

  const rows = await env.database.query<{ request_id: string; count: number }>(
    `SELECT request_id, count(*)::int AS count FROM activation_request WHERE request_id LIKE $1 GROUP BY request_id`,
    [`burst-${runId}-%`],
  );
  expect(rows).toHaveLength(150);
  expect(rows.every((r) => r.count === 1)).toBe(true);

  await env.settled(reader);
  const events = reader.on(TOPICS.activations).filter((r) => String(r.event.data.requestId).startsWith(`burst-${runId}-`));
  expect(new Set(events.map((e) => e.event.data.activationId)).size).toBe(150);
  // Per national ID, events come in the order the decisions were made.
  const decided = await env.database.query<{ national_id: string; activation_id: string }>(
    `SELECT a.national_id, a.activation_id FROM activation_request a
       JOIN outbox_event o ON o.topic = $2 AND (o.payload::jsonb -> 'data' ->> 'activationId') = a.activation_id::text
     WHERE a.request_id LIKE $1 ORDER BY a.decided_at, o.id`,
    [`burst-${runId}-%`, TOPICS.activations],
  );
  for (const customer of customers) {
    const published = events.filter((e) => e.key === customer.nationalId).map((e) => e.event.data.activationId);
    const expected = decided.filter((d) => d.national_id === customer.nationalId).map((d) => d.activation_id);
    expect(published).toEqual(expected);
  }
});
