import { createHash } from 'node:crypto';
import { DataSource } from 'typeorm';
import { newMobile, newNationalId } from '../../test/support/identities';
import { createTestDatabase, TestDatabase } from '../../test/support/test-database';
import { BankProfile } from '../banks/bank-directory';
import { createDataSource } from '../database/data-source';
import { StoreSession, Transactions } from '../database/sql';
import { JsonLogger } from '../logging/json-logger';
import { GatewayMetrics } from '../ops/gateway-metrics';
import { OpsRecorder } from '../ops/ops-recorder';
import { appendToOutbox } from '../outbox/outbox.repository';
import { createHmac } from 'node:crypto';
import { RegistrationReadModel } from '../registry/registration-read-model';
import { ActivateAccount, ActivateAccountCommand, ActivationRecord, RequestOrigin } from './activate-account.use-case';
import { ActivationRepository } from './activation.repository';
import { AdviseReversal } from './advise-reversal.use-case';
import { Channel } from './activation.types';

/**
 * The middle tier: the activation use cases against a real PostgreSQL database through their
 * repositories, without Kafka and without the gateway process. Batching, idempotency under
 * concurrency, replay and the interplay of an ATM activation with its reversal advice.
 */

/** Counts the connections the use case takes for its batches: one per batch. */
class CountedTransactions extends Transactions {
  sessions = 0;
  override session<T>(work: (session: StoreSession) => Promise<T>): Promise<T> {
    this.sessions++;
    return super.session(work);
  }
}

let database: TestDatabase;
let dataSource: DataSource;
let transactions: CountedTransactions;
let activate: ActivateAccount;
let reversals: AdviseReversal;
let ops: OpsRecorder;
const logger = new JsonLogger('test');

const bank: BankProfile = {
  code: 'TSTA',
  name: 'Test Bank A',
  channels: new Set<Channel>(['ATM', 'INTERNET_BANKING', 'PHONE_BANKING']),
  acquirerIds: ['111111'],
  rateLimitPerSecond: 1000,
  certificates: new Map(),
  macKey: null,
  macKeyNext: null,
  tlsClients: new Set(),
};

beforeAll(async () => {
  JsonLogger.setLevel('error');
  database = await createTestDatabase();
  dataSource = createDataSource(database.url, 8);
  await dataSource.initialize();
  await dataSource.runMigrations();
  transactions = new CountedTransactions(dataSource);
  const activations = new ActivationRepository(dataSource);
  const metrics = new GatewayMetrics({
    outboxBacklog: async () => ({ count: 0, oldestAgeSeconds: 0, parked: 0 }),
    isoConnections: () => 0,
    ownership: () => ({ liveInstances: 1, relaySlots: [], partitions: {} }),
  });
  ops = new OpsRecorder((messages) => appendToOutbox(dataSource, messages), () => undefined, metrics, logger);
  activate = new ActivateAccount(transactions, activations, new RegistrationReadModel(), { subjectHash: (nationalId: string) => createHmac('sha256', 'test-subject-key').update(nationalId).digest('hex').slice(0, 32) }, () => undefined, ops);
  reversals = new AdviseReversal(transactions, activations, () => undefined);
}, 60_000);

afterAll(async () => {
  await ops?.stop().catch(() => undefined);
  await dataSource?.destroy();
  await database?.drop();
});

async function registered(status = 'PENDING_ACTIVATION', mobile = newMobile()): Promise<{ nationalId: string; mobile: string }> {
  const person = { nationalId: newNationalId(), mobile };
  await database.query(`INSERT INTO registration (national_id, mobile, status, version, updated_at) VALUES ($1, $2, $3, 1, now())`, [person.nationalId, person.mobile, status]);
  return person;
}

let requestCounter = 0;
function command(person: { nationalId: string; mobile: string }, overrides: Partial<ActivateAccountCommand> = {}): ActivateAccountCommand {
  const requestId = overrides.requestId ?? `store-${process.pid}-${++requestCounter}`;
  return {
    bank,
    channel: 'INTERNET_BANKING',
    requestId,
    nationalId: person.nationalId,
    mobile: person.mobile,
    customerReference: null,
    requestDigest: createHash('sha256').update(`${requestId}:${person.nationalId}:${person.mobile}`).digest('hex'),
    receivedAt: performance.now(),
    origin: null,
    replayForm: (record: ActivationRecord) => ({ status: 200, body: JSON.stringify({ activationId: record.activationId, status: record.status, reason: record.reason }) }),
    ...overrides,
  };
}

async function outboxTypes(nationalId: string): Promise<string[]> {
  const rows = await database.query<{ type: string }>(`SELECT payload::json->>'type' AS type FROM outbox_event WHERE message_key = $1 ORDER BY id`, [nationalId]);
  return rows.map((row) => row.type);
}

it('decides concurrent requests in a few batches: every one stored with its decision event, far fewer transactions than requests', async () => {
  const people = await Promise.all(Array.from({ length: 64 }, () => registered()));
  const before = transactions.sessions;
  const results = await Promise.all(people.map((person) => activate.execute(command(person))));
  const batches = transactions.sessions - before;
  expect(results.map((r) => (r.replayed ? 'replayed' : r.record.status))).toEqual(people.map(() => 'ACCEPTED'));
  // At most 4 batches in flight: the first requests start batches of their own, the rest wait and go together.
  expect(batches).toBeLessThanOrEqual(8);
  const stored = await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM activation_request WHERE national_id = ANY($1::text[])`, [people.map((p) => p.nationalId)]);
  expect(stored[0].n).toBe(64);
  for (const person of people.slice(0, 5)) expect(await outboxTypes(person.nationalId)).toEqual(['sa.absher.activation.accepted']);
});

it('one request id sent 20 times at once: one decision, one event, 19 replays of the same answer', async () => {
  const person = await registered();
  const same = command(person);
  const results = await Promise.all(Array.from({ length: 20 }, () => activate.execute({ ...same, receivedAt: performance.now() })));
  const decided = results.filter((r) => !r.replayed);
  expect(decided).toHaveLength(1);
  const answer = decided[0].replayForm;
  for (const r of results) expect(r.replayForm).toEqual(answer);
  const rows = await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM activation_request WHERE bank_code = 'TSTA' AND request_id = $1`, [same.requestId]);
  expect(rows[0].n).toBe(1);
  expect(await outboxTypes(person.nationalId)).toEqual(['sa.absher.activation.accepted']);
});

it('a stored request id: the same body is replayed later, a different body is REQUEST_ID_REUSED, even when both race', async () => {
  const person = await registered();
  const first = command(person);
  const decided = await activate.execute(first);
  expect(decided.replayed).toBe(false);
  const again = await activate.execute({ ...first, receivedAt: performance.now() });
  expect(again).toEqual({ replayed: true, replayForm: decided.replayForm });

  const other = await registered();
  const racing = command(other);
  const outcomes = await Promise.allSettled([activate.execute(racing), activate.execute({ ...racing, requestDigest: 'f'.repeat(64) })]);
  const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
  expect(refused).toHaveLength(1);
  expect(refused[0].reason).toMatchObject({ code: 'REQUEST_ID_REUSED' });
});

it('the rules see the whole batch: a mobile also held by another open account is MOBILE_IN_USE, an unknown ID NOT_REGISTERED', async () => {
  const holder = await registered('ACTIVE');
  const asker = await registered('PENDING_ACTIVATION', holder.mobile);
  const unknown = { nationalId: newNationalId(), mobile: newMobile() };
  const [inUse, notRegistered] = await Promise.all([activate.execute(command(asker)), activate.execute(command(unknown))]);
  expect(inUse.replayed || inUse.record.reason).toBe('MOBILE_IN_USE');
  expect(notRegistered.replayed || notRegistered.record.reason).toBe('NOT_REGISTERED');
});

it("a batch reads the registrations after its locks are granted: a change committed while it waited for a national ID's lock is seen", async () => {
  const person = await registered('PENDING_ACTIVATION');
  const holder = dataSource.createQueryRunner();
  await holder.connect();
  try {
    await holder.startTransaction();
    await new ActivationRepository(dataSource).lockInOrder(holder, [`activation:${person.nationalId}`]);
    const waiting = activate.execute(command(person));
    // The batch's statement is now waiting for the lock (its snapshot, were it one statement, taken already).
    await waitFor(async () => (await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`))[0].n === 1);
    await database.query(`UPDATE registration SET status = 'ACTIVE', version = 2 WHERE national_id = $1`, [person.nationalId]);
    await holder.commitTransaction();
    const result = await waiting;
    expect(result.replayed || result.record.reason).toBe('ALREADY_ACTIVE');
  } finally {
    await holder.release();
  }
});

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('condition not met in 5 s');
}

describe('an ATM activation and its reversal advice', () => {
  /** As the ATM channel describes a request's origin. */
  const atm = (stan: string, rrn: string): RequestOrigin => ({
    pointOfService: { acquirerId: '111111', terminalId: 'STOREATM', stan, rrn, transmittedAt: '1127101500', panHash: 'a'.repeat(64) },
    published: { terminalId: 'STOREATM', stan, rrn },
    reversible: true,
  });

  it('an advice that comes first is kept, then applied when the activation is accepted: REVERSED, reversal-advised once', async () => {
    const person = await registered();
    const request = command(person, { channel: 'ATM', requestId: `111111:1127101500:000002:STORE0000002:STOREATM`, origin: atm('000002', 'STORE0000002') });
    expect(await reversals.execute('TSTA', request.requestId)).toBe('PENDING');
    const decided = await activate.execute(request);
    expect(decided.replayed || decided.record.status).toBe('ACCEPTED');
    const [row] = await database.query<{ status: string; pending: number }>(
      `SELECT status, (SELECT count(*)::int FROM atm_pending_reversal WHERE request_id = $1) AS pending FROM activation_request WHERE request_id = $1`,
      [request.requestId],
    );
    expect(row).toEqual({ status: 'REVERSED', pending: 0 });
    // The origin the channel described is published with the decision (spec 5.1).
    const [decision] = await database.query<{ data: Record<string, unknown> }>(`SELECT payload::json->'data' AS data FROM outbox_event WHERE message_key = $1 ORDER BY id LIMIT 1`, [person.nationalId]);
    expect(decision.data).toMatchObject({ channel: 'ATM', terminalId: 'STOREATM', stan: '000002', rrn: 'STORE0000002' });
    expect(await outboxTypes(person.nationalId)).toEqual(['sa.absher.activation.accepted', 'sa.absher.activation.reversal-advised']);
    expect(await reversals.execute('TSTA', request.requestId)).toBe('ALREADY_REVERSED');
    expect(await outboxTypes(person.nationalId)).toHaveLength(2);
  });

  it('an advice racing its activation: whichever commits first, the activation ends REVERSED with one reversal-advised', async () => {
    const people = await Promise.all(Array.from({ length: 10 }, () => registered()));
    await Promise.all(
      people.map(async (person, i) => {
        const stan = String(100 + i).padStart(6, '0');
        const request = command(person, { channel: 'ATM', requestId: `111111:1127101500:${stan}:STORE0000${stan.slice(3)}:STOREATM`, origin: atm(stan, `STORE0000${stan.slice(3)}`) });
        const [, advice] = await Promise.all([activate.execute(request), reversals.execute('TSTA', request.requestId)]);
        expect(['REVERSED', 'PENDING']).toContain(advice);
      }),
    );
    for (const person of people) expect(await outboxTypes(person.nationalId)).toEqual(['sa.absher.activation.accepted', 'sa.absher.activation.reversal-advised']);
  });

  it('a reversal never applies to an activation from another channel', async () => {
    const person = await registered();
    const request = command(person, { requestId: `111111:1127101500:000003:STORE0000003:STOREATM` });
    await activate.execute(request);
    expect(await reversals.execute('TSTA', request.requestId)).toBe('NOT_ACCEPTED');
    expect(await outboxTypes(person.nationalId)).toEqual(['sa.absher.activation.accepted']);
  });
});
