import { CompressionTypes, Kafka, logLevel, Partitioners } from 'kafkajs';
import { DataSource } from 'typeorm';
import { newNationalId } from '../../test/support/identities';
import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import { TopicReader } from '../../test/support/topic-reader';
import { createDataSource } from '../database/data-source';
import { Transactions } from '../database/sql';
import { DevelopmentBroker } from '../kafka/development-broker';
import { EVENT_TYPES, TOPICS } from '../kafka/topics';
import { JsonLogger } from '../logging/json-logger';
import { cloudEvent, OutboxMessage, STRUCTURED_CONTENT_TYPE } from './cloud-event';
import { OutboxAdmin } from './outbox-admin';
import { OutboxRelay } from './outbox-relay';
import { appendToOutbox, OutboxRepository, OutboxRow } from './outbox.repository';
import { RELAY_SLOT_COUNT, RelaySlots } from './relay-slots';
import { RelaySlotLocks } from './relay-slot-locks';

/**
 * The middle tier: the outbox repository and the relay against a real PostgreSQL database and a
 * real Kafka protocol broker (the development broker), without the gateway process. Relays of
 * "instances" in this one process share the relay slots through their own lock connections, as
 * gateways do.
 */
jest.setTimeout(90_000);

/** A topic the broker does not have. */
const RETIRED_TOPIC = 'absher.retired.v1';

let database: TestDatabase;
let dataSource: DataSource;
let broker: DevelopmentBroker;
let kafka: Kafka;
let reader: TopicReader;
let outbox: OutboxRepository;
let transactions: Transactions;
const logger = new JsonLogger('test');
const relays: OutboxRelay[] = [];

beforeAll(async () => {
  JsonLogger.setLevel('error');
  [database, broker] = await Promise.all([createTestDatabase(), DevelopmentBroker.start()]);
  dataSource = createDataSource(database.url, 8);
  await dataSource.initialize();
  await dataSource.runMigrations();
  outbox = new OutboxRepository(dataSource);
  transactions = new Transactions(dataSource);
  kafka = new Kafka({ clientId: 'outbox-relay-spec', brokers: broker.brokers, logLevel: logLevel.NOTHING });
  reader = await TopicReader.start(broker.brokers, [TOPICS.activations]);
}, 90_000);

afterEach(async () => {
  await Promise.all(relays.splice(0).map((relay) => relay.stop(2000)));
});

afterAll(async () => {
  await reader?.stop();
  await dataSource?.destroy();
  await broker?.stop();
  await database?.drop();
});

/** A relay as OutboxModule makes one, for the instance `instanceId` among `live()` instances. */
function startRelay(instanceId: string, live: () => number): OutboxRelay {
  const relay = new OutboxRelay(
    outbox,
    new RelaySlots(new RelaySlotLocks(database.url, instanceId), instanceId, live, logger),
    () =>
      kafka.producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
      }),
    500,
    CompressionTypes.None,
    { maxAttempts: 3, baseDelayMs: 100, retentionSeconds: 86_400 },
    logger,
  );
  relay.start();
  relays.push(relay);
  return relay;
}

/** `count` activation events for each of `keys`, appended one transaction per round, in that order. */
async function appendEvents(keys: string[], count: number): Promise<Map<string, string[]>> {
  const sent = new Map<string, string[]>(keys.map((key) => [key, []]));
  for (let i = 0; i < count; i++) {
    const messages: OutboxMessage[] = keys.map((key) => ({ topic: TOPICS.activations, key, event: cloudEvent(EVENT_TYPES.activationAccepted, key, { sequence: i }) }));
    await transactions.run((tx) => appendToOutbox(tx, messages));
    for (const message of messages) sent.get(message.key)!.push(message.event.id);
  }
  return sent;
}

/** Waits until every event sent is on the topic; returns the ids read per key, in topic order. */
async function readBack(sent: Map<string, string[]>): Promise<Map<string, string[]>> {
  const wanted = new Set([...sent.values()].flat());
  await reader.waitFor((records) => [...wanted].every((id) => records.some((r) => r.event.id === id)), `${wanted.size} events on Kafka`, 30_000);
  const read = new Map<string, string[]>();
  for (const record of reader.on(TOPICS.activations)) {
    if (!wanted.has(record.event.id)) continue;
    expect(record.headers['content-type']).toBe(STRUCTURED_CONTENT_TYPE);
    read.set(record.key!, [...(read.get(record.key!) ?? []), record.event.id]);
  }
  return read;
}

async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The relays own every slot, once each, `share` each at most. */
function splitEvenly(owners: OutboxRelay[], share: number): boolean {
  const slots = owners.flatMap((relay) => relay.ownedSlots);
  return slots.length === RELAY_SLOT_COUNT && new Set(slots).size === RELAY_SLOT_COUNT && owners.every((relay) => relay.ownedSlots.length <= share);
}

async function unpublished(ids: Iterable<string>): Promise<number> {
  const [row] = await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM outbox_event WHERE (payload::jsonb ->> 'id') = ANY($1::text[]) AND published_at IS NULL`, [[...ids]]);
  return row.n;
}

it('repository: a refused row is held with the rows behind it, parked after its attempts, listed masked, and re-queued', async () => {
  const nationalId = newNationalId();
  await transactions.run((tx) =>
    appendToOutbox(tx, [
      { topic: RETIRED_TOPIC, key: nationalId, event: cloudEvent(EVENT_TYPES.activationAccepted, 'first', {}) },
      { topic: RETIRED_TOPIC, key: nationalId, event: cloudEvent(EVENT_TYPES.activationAccepted, 'behind', {}) },
      { topic: RETIRED_TOPIC, key: 'OTHER', event: cloudEvent(EVENT_TYPES.activationAccepted, 'other', {}) },
    ]),
  );
  const everySlot = Array.from({ length: RELAY_SLOT_COUNT }, (_, slot) => slot);
  const limits = { batchSize: 100, perSlot: 100 };
  const mine = (rows: OutboxRow[]) => rows.filter((row) => row.topic === RETIRED_TOPIC);
  const [first, behind, other] = mine(await outbox.due(everySlot, limits, []));
  expect([first.key, behind.key, other.key]).toEqual([nationalId, nationalId, 'OTHER']);
  expect(BigInt(first.id) < BigInt(behind.id)).toBe(true);

  // Refused once: not due until its retry, and neither is the row behind it; the other key is.
  await outbox.recordRefusal(first.id, { attempts: 1, reason: 'UNKNOWN_TOPIC_OR_PARTITION', park: false, retryAfterMs: 60_000 });
  const held = await outbox.heldKeys(everySlot);
  expect(held).toEqual([{ topic: RETIRED_TOPIC, key: nationalId, id: first.id }]);
  expect(mine(await outbox.due(everySlot, limits, held)).map((row) => row.id)).toEqual([other.id]);

  // Parked after its last attempt: counted, listed with its reason and its key masked, the row behind it waiting.
  await outbox.recordRefusal(first.id, { attempts: 3, reason: 'UNKNOWN_TOPIC_OR_PARTITION', park: true, retryAfterMs: 0 });
  const admin = new OutboxAdmin(outbox);
  expect(await admin.parkedCount()).toBe(1);
  expect(await outbox.backlog()).toMatchObject({ parked: 1 });
  const [parked] = await admin.parked();
  expect(parked).toMatchObject({ id: first.id, topic: RETIRED_TOPIC, type: EVENT_TYPES.activationAccepted, attempts: 3, reason: 'UNKNOWN_TOPIC_OR_PARTITION', waitingBehind: 1 });
  expect(parked.key).not.toContain(nationalId);
  expect(Date.parse(parked.parkedAt)).not.toBeNaN();

  // Re-queued: due again with a fresh count, in order with the row behind it.
  expect(await admin.requeue([first.id])).toBe(1);
  expect(await admin.parkedCount()).toBe(0);
  const again = mine(await outbox.due(everySlot, limits, await outbox.heldKeys(everySlot)));
  expect(again.map((row) => [row.id, row.attempts])).toEqual([
    [first.id, 0],
    [behind.id, 0],
    [other.id, 0],
  ]);
  await outbox.markPublished(again.map((row) => row.id));
  expect(mine(await outbox.due(everySlot, limits, []))).toEqual([]);
});

it('two relays split the 16 slots and publish every event once, per key in commit order, in structured mode', async () => {
  const a = startRelay('spec-a', () => 2);
  const b = startRelay('spec-b', () => 2);
  await waitUntil(() => splitEvenly([a, b], 8), 'the slots split 8 and 8');
  const sent = await appendEvents(Array.from({ length: 20 }, () => newNationalId()), 10);
  a.notify();
  b.notify();
  const read = await readBack(sent);
  expect(read).toEqual(sent); // each once (no failover here), in the order appended
  await waitUntil(async () => (await unpublished([...sent.values()].flat())) === 0, 'every row marked published');
});

it('a lock connection killed by the server: its slots are taken again and nothing is lost', async () => {
  const a = startRelay('spec-c', () => 2);
  const b = startRelay('spec-d', () => 2);
  await waitUntil(() => splitEvenly([a, b], 8), 'the slots split 8 and 8');
  const [killed] = await database.query<{ killed: boolean }>(
    `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'absher-bank-gateway relay spec-c'`,
  );
  expect(killed).toEqual({ killed: true });
  await waitUntil(() => a.ownedSlots.length === 0, "the relay's slots dropped with its connection", 5000);
  const sent = await appendEvents(Array.from({ length: 10 }, () => newNationalId()), 5);
  const read = await readBack(sent);
  for (const [key, ids] of sent) expect([...new Set(read.get(key))]).toEqual(ids);
  await waitUntil(() => splitEvenly([a, b], 8), 'the slots split again once it reconnected');
});

it('stop(): the relay publishes what is left, lets its slots go, and the survivor takes every one', async () => {
  let live = 2;
  const a = startRelay('spec-e', () => live);
  const b = startRelay('spec-f', () => live);
  await waitUntil(() => splitEvenly([a, b], 8), 'the slots split 8 and 8');
  const sent = await appendEvents(Array.from({ length: 10 }, () => newNationalId()), 5);
  live = 1;
  relays.splice(relays.indexOf(a), 1);
  await a.stop(5000);
  expect(a.ownedSlots).toEqual([]);
  await waitUntil(() => b.ownedSlots.length === RELAY_SLOT_COUNT, 'the survivor owning all 16 slots', 5000);
  const read = await readBack(sent);
  for (const [key, ids] of sent) expect([...new Set(read.get(key))]).toEqual(ids);
  await waitUntil(async () => (await unpublished([...sent.values()].flat())) === 0, 'every row marked published');
});
