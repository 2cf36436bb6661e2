import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** A database of the test's own: a fresh one on the local PostgreSQL, or an in-memory PGlite (see global-setup). */
export interface TestDatabase {
  url: string;
  kind: 'postgresql' | 'pglite';
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a statement on the server's maintenance database (fault injection); PostgreSQL only. */
  admin(sql: string): Promise<void>;
  /** The database's name on the server. */
  name: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const admin = process.env.TEST_POSTGRES_URL ?? 'pglite';
  if (admin === 'pglite') {
    // In a process of its own (dist/tools/embedded-postgres.js): PGlite cannot load inside Jest's sandbox.
    const child = spawn(process.execPath, [join(__dirname, '../../dist/tools/embedded-postgres.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', (line) => (line.startsWith('POSTGRES_URL ') ? resolve(line.slice(13)) : reject(new Error(line))));
      child.once('exit', (code) => reject(new Error(`embedded PostgreSQL exited with ${code}`)));
    });
    const pool = new Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    return {
      url,
      kind: 'pglite',
      name: 'postgres',
      admin: async () => {
        throw new Error('fault injection needs a PostgreSQL server');
      },
      query: async (sql, params) => (await pool.query(sql, params as unknown[])).rows,
      drop: async () => {
        await pool.end().catch(() => undefined);
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.stdin!.end();
        await exited;
      },
    };
  }
  const name = `gateway_test_${randomBytes(6).toString('hex')}`;
  const adminClient = new Client({ connectionString: admin });
  await adminClient.connect();
  await adminClient.query(`CREATE DATABASE ${name}`);
  await adminClient.end();
  const url = admin.replace(/\/[^/]*$/, `/${name}`);
  // A pool, so the test's own handle survives the connection kills of fault tests.
  const client = new Pool({ connectionString: url, max: 2 });
  client.on('error', () => undefined); // idle connections killed by a fault test; the pool reconnects
  return {
    url,
    kind: 'postgresql',
    name,
    admin: async (sql) => {
      const maintenance = new Client({ connectionString: admin });
      await maintenance.connect();
      try {
        await maintenance.query(sql);
      } finally {
        await maintenance.end();
      }
    },
    query: async (sql, params) => (await client.query(sql, params as unknown[])).rows,
    drop: async () => {
      await client.end().catch(() => undefined);
      const cleanup = new Client({ connectionString: admin });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await cleanup.end();
    },
  };
}
