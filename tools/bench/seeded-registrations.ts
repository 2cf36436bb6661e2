import { randomUUID } from 'node:crypto';
import { Admin, Kafka } from 'kafkajs';
import { Client } from 'pg';
import { luhnValid } from '../../libs/identity';
import { EVENT_TYPES, TOPICS } from '../../src/kafka/topics';
import { REGISTRATIONS_GROUP } from '../../src/registry/registrations-consumer';
import { round } from './load';

/**
 * `--registrations N`: a read model of the size production has, and the
 * registrations consumer's own throughput.
 *
 * Registration j (0 ≤ j < N) is a resident, national ID `2` + j on eight
 * digits + its Luhn digit, mobile +9665 (20,000,000 + j), ACTIVE when
 * j mod 5 = 4 (as a fifth of the bench's customers), PENDING_ACTIVATION
 * otherwise. None meets the bench's own customers or unregistered IDs
 * (citizens', 1…: newNationalId) or their mobiles (+96651…, +96659…), so every
 * answer the load steps count is what it is without the seeded rows.
 */
export const MAX_SEEDED_REGISTRATIONS = 70_000_000; // mobiles stay below +96659…
const FIRST_MOBILE = 20_000_000;
/** The seeded rows' version, and the replay's: above it, so every replayed update is applied. */
export const SEEDED_VERSION = 1;
export const REPLAYED_VERSION = 2;
/** Rows per INSERT: one statement per million keeps each transaction and its WAL moderate at tens of millions. */
const SEED_CHUNK = 1_000_000;

export interface SeededRegistration {
  nationalId: string;
  mobile: string;
  status: 'PENDING_ACTIVATION' | 'ACTIVE';
}

export function seededRegistration(j: number): SeededRegistration {
  const body = `2${String(j).padStart(8, '0')}`;
  let check = 0;
  while (!luhnValid(`${body}${check}`)) check++;
  return { nationalId: `${body}${check}`, mobile: `+9665${FIRST_MOBILE + j}`, status: j % 5 === 4 ? 'ACTIVE' : 'PENDING_ACTIVATION' };
}

/**
 * The same registrations, computed by PostgreSQL (no rows cross the wire).
 * The Luhn digit of 2·e1…e8 (e the digits of j): from the right, e8, e6, e4,
 * e2 and the leading 2 are doubled (a doubled digit d ≥ 5 counts 2d − 9).
 */
const SEED_SQL = `
  INSERT INTO registration (national_id, mobile, status, version, updated_at)
  SELECT '2' || lpad(j::text, 8, '0')
           || ((10 - (4 + e1 + e3 + e5 + e7 + 2 * (e2 + e4 + e6 + e8) - 9 * (e2 / 5 + e4 / 5 + e6 / 5 + e8 / 5)) % 10) % 10),
         '+9665' || (${FIRST_MOBILE} + j),
         CASE WHEN j % 5 = 4 THEN 'ACTIVE' ELSE 'PENDING_ACTIVATION' END,
         ${SEEDED_VERSION},
         now()
    FROM generate_series($1::bigint, $2::bigint) AS j,
         LATERAL (SELECT j / 10000000 % 10 AS e1, j / 1000000 % 10 AS e2, j / 100000 % 10 AS e3, j / 10000 % 10 AS e4,
                         j / 1000 % 10 AS e5, j / 100 % 10 AS e6, j / 10 % 10 AS e7, j % 10 AS e8) AS digit`;

/**
 * Seeds `count` registrations straight into the gateway's database. Not with
 * COPY: pg-copy-streams is not a dependency, and an INSERT … SELECT FROM
 * generate_series computed in the server sends no rows at all, which makes it
 * about as fast. In national-ID order, so both indexes grow at their right
 * edge. Then vacuumed (vacuumRegistrations).
 */
export async function seedRegistrationsTable(databaseUrl: string, count: number, log: (line: string) => void): Promise<{ rows: number; seconds: number; perSecond: number; vacuumSeconds: number }> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    let rows = 0;
    for (let from = 0; from < count; from += SEED_CHUNK) {
      const to = Math.min(count, from + SEED_CHUNK) - 1;
      rows += (await client.query(SEED_SQL, [from, to])).rowCount ?? 0;
      if (count > SEED_CHUNK) log(`bench: … ${rows.toLocaleString('en')} of ${count.toLocaleString('en')} seeded`);
    }
    const seconds = (performance.now() - started) / 1000;
    // The SQL and seededRegistration() must agree, or the replay's updates would be new rows, not updates.
    const probes = [0, 1, 9, 4_321, Math.floor(count / 2), count - 1].filter((j) => j < count).map(seededRegistration);
    const found = (await client.query<{ national_id: string; mobile: string; status: string }>('SELECT national_id, mobile, status FROM registration WHERE national_id = ANY($1::text[])', [probes.map((p) => p.nationalId)])).rows;
    const matches = probes.filter((p) => found.some((row) => row.national_id === p.nationalId && row.mobile === p.mobile && row.status === p.status));
    if (matches.length !== probes.length) throw new Error(`the seeded registrations are not the ones the replay would update (${matches.length} of ${probes.length} probes found)`);
    return { rows, seconds: round(seconds), perSecond: Math.round(rows / seconds), vacuumSeconds: await vacuumRegistrations(databaseUrl) };
  } finally {
    await client.end();
  }
}

/**
 * VACUUM (ANALYZE) of the registration table, in seconds: after the seeding
 * and after the replay (which leaves a dead row version per registration),
 * so the steps that follow meet the table as one loaded long ago would be
 * (visibility map set, statistics known), not an autovacuum in mid-step.
 */
export async function vacuumRegistrations(databaseUrl: string): Promise<number> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    await client.query('VACUUM (ANALYZE) registration');
    return round((performance.now() - started) / 1000);
  } finally {
    await client.end();
  }
}

/** Per partition of absher.registrations.v1: an offset. */
type PartitionOffsets = Map<number, bigint>;

async function topicEnds(admin: Admin): Promise<PartitionOffsets> {
  return new Map((await admin.fetchTopicOffsets(TOPICS.registrations)).map((p) => [p.partition, BigInt(p.high)]));
}

/**
 * How many messages since `from` the gateway's registrations consumer has
 * applied: it commits a batch's offsets only once the batch's transaction is
 * committed, so its committed offsets are what the table holds, and they are
 * cheap to poll, unlike a count over tens of millions of rows.
 */
async function appliedSince(admin: Admin, from: PartitionOffsets): Promise<number> {
  const [offsets] = await admin.fetchOffsets({ groupId: REGISTRATIONS_GROUP, topics: [TOPICS.registrations] });
  let applied = 0n;
  for (const [partition, start] of from) {
    const committed = BigInt(offsets?.partitions.find((p) => p.partition === partition)?.offset ?? '-1');
    if (committed > start) applied += committed - start;
  }
  return Number(applied);
}

/**
 * Updates the replay keeps published ahead of what the consumer has applied,
 * per partition. The development broker (librdkafka's mock cluster) keeps 5 MB
 * per partition and drops the oldest beyond, read or not: a replay published
 * all at once would lose most of itself. 4,000 updates (about 1.6 MB) is more
 * than one fetch (1 MB per partition), so the consumer never waits for the
 * publisher, and well within what the broker keeps.
 */
const BACKLOG_PER_PARTITION = 4000;

export interface ReplayFigures {
  registrations: number;
  partitions: number;
  /** The most published ahead of the consumer's committed offsets. */
  backlogLimit: number;
  /** From the first update published to the last applied. */
  seconds: number;
  perSecond: number;
  /**
   * How long the publisher waited for the consumer (the backlog at its
   * limit). Near 0, the publisher set the pace and `perSecond` is only a
   * lower bound of the consumer's.
   */
  publisherHeldBackSeconds: number;
}

/**
 * The identity core replaying its state to a running gateway: an update of
 * every seeded registration, unchanged but for a version above the stored
 * one, as CloudEvents (structured JSON, keyed by national ID) like
 * tools/identity-core publishes, in a scattered order (j = k · 1,000,003 mod
 * N), not the table's, as a replay of a compacted topic would come. Published
 * as the consumer goes, at most BACKLOG_PER_PARTITION ahead of it; timed
 * until the consumer has committed the last one. Fails if it applies nothing
 * for a minute.
 */
export async function replayRegistrations(kafka: Kafka, count: number, log: (line: string) => void): Promise<ReplayFigures> {
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await Promise.all([admin.connect(), producer.connect()]);
  let polling = true;
  let poller: Promise<void> = Promise.resolve();
  try {
    const from = await topicEnds(admin);
    const backlogLimit = BACKLOG_PER_PARTITION * from.size;
    // What the consumer has applied, polled in the background every 50 ms, with when it was seen.
    let applied = 0;
    let appliedAt = performance.now();
    let progressAt = performance.now();
    poller = (async () => {
      while (polling) {
        const now = await appliedSince(admin, from).catch(() => null);
        if (now !== null) {
          if (now !== applied) progressAt = performance.now();
          [applied, appliedAt] = [now, performance.now()];
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const stalled = () => {
      if (performance.now() - progressAt > 60_000) throw new Error(`the registrations consumer applied no update for 60 s (${applied} of ${count})`);
    };

    const stride = scatteringStride(count);
    const time = new Date().toISOString();
    const event = (r: SeededRegistration) =>
      JSON.stringify({
        specversion: '1.0',
        id: randomUUID(),
        source: 'urn:absher:identity-core:bench-replay',
        type: EVENT_TYPES.registrationUpdated,
        time,
        subject: r.nationalId,
        datacontenttype: 'application/json',
        data: { nationalId: r.nationalId, mobile: r.mobile, status: r.status, version: REPLAYED_VERSION },
      });
    const CHUNK = 1000; // well under Kafka's 1 MB request limit
    const sending = new Set<Promise<unknown>>();
    let heldBackMs = 0;
    let lastLog = performance.now();
    const started = performance.now();
    progressAt = started;
    for (let k = 0; k < count; k += CHUNK) {
      const end = Math.min(count, k + CHUNK);
      if (end - applied > backlogLimit) {
        const waitFrom = performance.now();
        while (end - applied > backlogLimit) {
          stalled();
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        heldBackMs += performance.now() - waitFrom;
      }
      const messages = [];
      for (let i = k; i < end; i++) {
        const r = seededRegistration(Number((BigInt(i) * stride) % BigInt(count)));
        messages.push({ key: r.nationalId, value: event(r) });
      }
      const sent: Promise<unknown> = producer.send({ topic: TOPICS.registrations, messages }).finally(() => sending.delete(sent));
      sending.add(sent);
      if (sending.size >= 4) await Promise.race(sending);
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        log(`bench: … ${applied.toLocaleString('en')} of ${count.toLocaleString('en')} applied`);
      }
    }
    await Promise.all(sending);
    while (applied < count) {
      stalled();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const seconds = Math.max(appliedAt - started, 1) / 1000;
    return { registrations: count, partitions: from.size, backlogLimit, seconds: round(seconds), perSecond: Math.round(count / seconds), publisherHeldBackSeconds: round(heldBackMs / 1000) };
  } finally {
    polling = false;
    await poller.catch(() => undefined);
    await Promise.all([producer.disconnect(), admin.disconnect()]);
  }
}

/** A stride prime to `count`, so k · stride mod count visits every registration once. */
function scatteringStride(count: number): bigint {
  const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, a % b));
  let stride = 1_000_003n;
  while (gcd(stride, BigInt(count)) !== 1n) stride += 2n;
  return stride;
}

/** Registrations at the replayed version: every seeded one, once the replay is applied (a full scan: once, at the end). */
export async function rowsAtReplayedVersion(databaseUrl: string): Promise<number> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<{ rows: number }>('SELECT count(*)::int AS rows FROM registration WHERE version = $1', [REPLAYED_VERSION])).rows[0].rows;
  } finally {
    await client.end();
  }
}
