import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Client } from 'pg';

const ROOT = join(__dirname, '../..');

/**
 * Runs once before all tests: builds the gateway (the end-to-end tests run
 * dist/src/main.js as a real process) and the Kafka test broker, and decides
 * which PostgreSQL the tests use: the local server when one answers
 * (TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres),
 * otherwise an embedded PGlite per test file. It says which.
 */
export default async function globalSetup(): Promise<void> {
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  execFileSync(process.execPath, [join(ROOT, 'scripts/copy-assets.js')], { stdio: 'inherit' });
  execFileSync('bash', [join(ROOT, 'scripts/build-kafka-broker.sh')], { stdio: 'inherit' });
  const adminUrl = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ version: string }>('select version()');
    process.env.TEST_POSTGRES_URL = adminUrl;
    process.stdout.write(`\ntests use the local PostgreSQL at ${adminUrl.replace(/\/\/[^@]*@/, '//')} (${rows[0].version.split(' on ')[0]})\n`);
  } catch (error) {
    process.env.TEST_POSTGRES_URL = 'pglite';
    process.stdout.write(`\nno PostgreSQL answered at ${adminUrl} (${(error as Error).message}); tests use embedded PGlite\n`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
