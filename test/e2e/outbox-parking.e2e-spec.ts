import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TOPICS } from '../../src/kafka/topics';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * The outbox stays bounded and a row Kafka keeps refusing stalls nothing
 * but its own key (issue 9): it is retried with back-off, parked after its
 * attempts with the reason, counted in /metrics and listed by the CLI, while
 * other keys flow; re-queued by the CLI once the cause is fixed, it and the
 * row waiting behind it are published in order. Published rows are pruned
 * after the retention.
 */
jest.setTimeout(120_000);
const CLI = join(__dirname, '../../dist/tools/cli.js');
/** A topic the broker does not have (the gateway never creates topics by publishing). */
const RETIRED_TOPIC = 'absher.retired.v1';

let env: TestEnvironment;
let reader: TopicReader;
let sequence = 0;

beforeAll(async () => {
  env = await TestEnvironment.start({ OUTBOX_MAX_ATTEMPTS: '3', OUTBOX_RETRY_BASE_MS: '300', OUTBOX_RETENTION_SECONDS: '60' });
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

const cli = (...args: string[]) => promisify(execFile)(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env.gatewayEnv() } });

async function insertEvent(topic: string, key: string, id: string): Promise<string> {
  const [row] = await env.database.query<{ id: string }>(`INSERT INTO outbox_event (topic, message_key, payload) VALUES ($1, $2, $3) RETURNING id`, [
    topic,
    key,
    JSON.stringify({ specversion: '1.0', id, source: 'urn:test', type: 'test.event', data: {} }),
  ]);
  return row.id;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${env.managementUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

it('a row Kafka keeps refusing is retried, then parked with its reason, while other keys flow; the CLI lists and re-queues it, and the row behind it follows in order', async () => {
  const poisoned = await insertEvent(RETIRED_TOPIC, 'K1', `poisoned-${Date.now()}`);
  const behind = await insertEvent(RETIRED_TOPIC, 'K1', `behind-${Date.now()}`);

  // Honest traffic meanwhile: decided, answered and published as always.
  const decided: string[] = [];
  for (let i = 0; i < 10; i++) {
    const answer = await env.send(env.pki.tsta.es256, { requestId: `park-${Date.now()}-${++sequence}`, body: { nationalId: newNationalId(), mobile: newMobile(), channel: 'INTERNET_BANKING' } });
    expect(answer.status).toBe(200);
    decided.push(String(answer.json.activationId));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await reader.waitFor((records) => decided.every((id) => records.some((r) => r.event.data.activationId === id)), 'the honest decisions on Kafka');

  // Three attempts (300 ms, then 600 ms apart), then parked with Kafka's reason.
  const parked = await env.waitForRow(`SELECT attempts, last_error, parked_at FROM outbox_event WHERE id = $1 AND parked_at IS NOT NULL`, [poisoned], 'the refused row parked', 20_000);
  expect(parked.attempts).toBe(3);
  expect(String(parked.last_error)).toMatch(/UNKNOWN_TOPIC_OR_PARTITION/);
  // The row behind it waits: neither published nor blamed.
  const [waiting] = await env.database.query<{ attempts: number; parked_at: Date | null; published_at: Date | null }>(`SELECT attempts, parked_at, published_at FROM outbox_event WHERE id = $1`, [behind]);
  expect(waiting).toEqual({ attempts: 0, parked_at: null, published_at: null });
  // Everything else was published.
  const [pending] = await env.database.query<{ count: number }>(`SELECT count(*)::int AS count FROM outbox_event WHERE published_at IS NULL AND topic <> $1`, [RETIRED_TOPIC]);
  expect(pending.count).toBe(0);

  expect(await metric('absher_gateway_outbox_parked')).toBe(1);
  const ready = (await (await fetch(`${env.managementUrl}/health/ready`)).json()) as { status: string; details: { outbox: { parked: number } } };
  expect(ready.status).toBe('ok'); // parked rows are for an operator; the instance stays in service
  expect(ready.details.outbox.parked).toBe(1);

  const listed = (await cli('outbox', 'parked')).stdout;
  expect(listed).toMatch(new RegExp(`^${poisoned}\\s+${RETIRED_TOPIC.replace(/\./g, '\\.')}\\s+K1\\s+test\\.event\\s+3\\s+1\\s`, 'm'));
  expect(listed).toMatch(/UNKNOWN_TOPIC_OR_PARTITION/);
  expect(listed).not.toMatch(new RegExp(`^${behind}\\s`, 'm'));

  // The cause fixed (the topic exists again), the operator re-queues: both published, in order.
  await env.broker.control(`topic ${RETIRED_TOPIC} 3`);
  const requeued = await cli('outbox', 'requeue', '--id', poisoned);
  expect(requeued.stdout).toMatch(/^1 parked event re-queued/);
  const retired = await TopicReader.start(env.broker.brokers, [RETIRED_TOPIC]);
  try {
    const records = await retired.waitFor((r) => r.length >= 2, 'both rows of K1 on the re-created topic', 20_000);
    expect(records.map((r) => r.event.id)).toEqual([expect.stringMatching(/^poisoned-/), expect.stringMatching(/^behind-/)]);
  } finally {
    await retired.stop();
  }
  expect(await metric('absher_gateway_outbox_parked')).toBe(0);
  expect((await cli('outbox', 'parked')).stdout.trim()).toBe('(none)');
});

it('the CLI says what it needs: --id or --all, and ids that are numbers', async () => {
  await expect(cli('outbox', 'requeue')).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/--id or --all is required/) });
  await expect(cli('outbox', 'requeue', '--id', 'abc')).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/whole numbers/) });
  expect((await cli('outbox', 'requeue', '--all')).stdout).toMatch(/^0 parked events re-queued/);
});

it('published rows are removed after the retention (OUTBOX_RETENTION_SECONDS); rows not yet published never are', async () => {
  const old = await env.database.query<{ id: string }>(
    `INSERT INTO outbox_event (topic, message_key, payload, created_at, published_at)
     SELECT $1, 'PRUNE', '{}', now() - interval '2 minutes', now() - interval '2 minutes' FROM generate_series(1, 50) RETURNING id`,
    [TOPICS.ops],
  );
  const [recent] = await env.database.query<{ id: string }>(`INSERT INTO outbox_event (topic, message_key, payload, published_at) VALUES ($1, 'PRUNE', '{}', now()) RETURNING id`, [TOPICS.ops]);
  // An old row never published (parked) is kept, whatever its age.
  const [oldParked] = await env.database.query<{ id: string }>(
    `INSERT INTO outbox_event (topic, message_key, payload, created_at, parked_at, next_attempt_at, attempts) VALUES ($1, 'PRUNE-P', '{}', now() - interval '2 minutes', now(), 'infinity', 3) RETURNING id`,
    [RETIRED_TOPIC],
  );
  const ids = old.map((row) => row.id);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [left] = await env.database.query<{ count: number }>(`SELECT count(*)::int AS count FROM outbox_event WHERE id = ANY($1::bigint[])`, [ids]);
    if (left.count === 0) break;
    if (Date.now() > deadline) throw new Error(`${left.count} published rows older than the retention were not pruned`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const kept = await env.database.query<{ id: string }>(`SELECT id FROM outbox_event WHERE id = ANY($1::bigint[]) ORDER BY id`, [[recent.id, oldParked.id]]);
  expect(kept.map((row) => row.id)).toEqual([recent.id, oldParked.id]);
});
