import { Client } from 'pg';
import { MIGRATIONS } from '../../src/database/data-source';
import { MIGRATIONS_ADVISORY_LOCK } from '../../src/database/store';
import { DevelopmentBroker } from '../../src/kafka/development-broker';
import { createTestDatabase, TestDatabase } from '../support/test-database';
import { GatewayProcess } from '../support/gateway-process';
import { testGatewayEnv } from '../support/test-environment';
import { TestPki } from '../support/test-pki';

/**
 * Instances of the gateway started at the same moment on one fresh
 * PostgreSQL database: each migration is applied once, by one of them; the
 * others wait for it, find nothing left to apply, and start.
 */
const START_TIMEOUT_MS = 60_000;
const onPostgres = process.env.TEST_POSTGRES_URL !== undefined && process.env.TEST_POSTGRES_URL !== 'pglite';
const WAITING = 'waiting for another instance to finish the database migrations';
const APPLIED = 'database migrations applied';
const NONE_LEFT = 'another instance applied the database migrations: none left to apply';

(onPostgres ? describe : describe.skip)('two gateways starting at once on one empty database', () => {
  const pki = new TestPki();
  let broker: DevelopmentBroker;
  let database: TestDatabase | undefined;
  let gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    broker = await DevelopmentBroker.start();
  });

  afterEach(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    gateways = [];
    await database?.drop();
    database = undefined;
  });

  afterAll(async () => {
    await broker?.stop();
  });

  /** A gateway as `npm start` runs it, logging at info (the migration messages). */
  function start(env: Record<string, string>): GatewayProcess {
    return new GatewayProcess(env, { startTimeoutMs: START_TIMEOUT_MS });
  }

  async function startTwo(): Promise<TestDatabase> {
    database = await createTestDatabase();
    const env = testGatewayEnv(pki, database, broker, { LOG_LEVEL: 'info' });
    gateways = [start(env), start(env)];
    return database;
  }

  /** Both answer; the schema holds each migration once, applied by exactly one of them. */
  async function expectBothUpWithEachMigrationOnce(db: TestDatabase): Promise<{ applier: GatewayProcess; other: GatewayProcess }> {
    for (const gateway of gateways) {
      const live = await fetch(`http://127.0.0.1:${await gateway.httpPort()}/health/live`);
      expect(live.status).toBe(200);
    }
    const rows = await db.query<{ name: string; count: number }>('SELECT name, count(*)::int AS count FROM schema_migration GROUP BY name');
    expect(rows.map((r) => r.name).sort()).toEqual(MIGRATIONS.map((m) => m.name).sort());
    expect(rows.every((r) => r.count === 1)).toBe(true);
    const appliers = gateways.filter((g) => g.messages().includes(APPLIED));
    expect(appliers).toHaveLength(1);
    const applied = await appliers[0].logged(APPLIED);
    // Counted, not compared by name: the log masks a name whose timestamp looks like a PAN.
    expect(applied.migrations).toHaveLength(MIGRATIONS.length);
    return { applier: appliers[0], other: gateways.find((g) => g !== appliers[0])! };
  }

  it('started together: both come up, and each migration is applied once', async () => {
    const db = await startTwo();
    const { other } = await expectBothUpWithEachMigrationOnce(db);
    // The other one either waited for the applier, or started after it had finished; it applied nothing.
    expect(other.messages()).not.toContain(APPLIED);
  }, START_TIMEOUT_MS * 2);

  it('while another instance migrates, both wait for it, then one applies and the other finds nothing left', async () => {
    // This test plays the instance that is migrating: it holds the lock until both gateways wait.
    database = await createTestDatabase();
    const migrating = new Client({ connectionString: database.url });
    await migrating.connect();
    try {
      await migrating.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATIONS_ADVISORY_LOCK]);
      const env = testGatewayEnv(pki, database, broker, { LOG_LEVEL: 'info' });
      gateways = [start(env), start(env)];
      await Promise.all(gateways.map((g) => g.logged(WAITING)));
      // A bigint advisory key shows in pg_locks as its high half (classid) and low half (objid).
      const waiters = await migrating.query(
        `SELECT count(*)::int AS count FROM pg_locks
          WHERE locktype = 'advisory' AND objsubid = 1 AND NOT granted AND ((classid::bigint << 32) | objid::bigint) = $1::bigint
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [MIGRATIONS_ADVISORY_LOCK],
      );
      expect(waiters.rows[0].count).toBe(2);
      expect(gateways.some((g) => g.logs.some((l) => l.includes('"httpPort"')))).toBe(false); // neither starts before the schema is there
      await migrating.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATIONS_ADVISORY_LOCK]);
    } finally {
      await migrating.end();
    }
    const { other } = await expectBothUpWithEachMigrationOnce(database);
    await other.logged(NONE_LEFT);
  }, START_TIMEOUT_MS * 2);
});
