/**
 * Embedded PostgreSQL (PGlite) as a process of its own: prints
 * "POSTGRES_URL <url>" once it listens and stops when its stdin closes or on
 * SIGTERM. The tests use it when no PostgreSQL server answers (PGlite cannot
 * load inside Jest's module sandbox); it is also handy by hand:
 *   node dist/tools/embedded-postgres.js [--data-dir DIR]     (default: in memory)
 */
import { EmbeddedPostgres } from '../src/database/embedded-postgres';
import { defineTool, exitWith, readOptions } from './options';

const TOOL = defineTool({
  name: 'embedded-postgres',
  invocation: 'node dist/tools/embedded-postgres.js',
  summary: 'Embedded PostgreSQL (PGlite) as a process of its own: prints "POSTGRES_URL <url>" once it listens; stops when its stdin closes or on SIGTERM.',
  options: { 'data-dir': { type: 'string', value: 'DIR', help: 'where the database lives (default: in memory)' } },
});
const options = readOptions(TOOL);

async function main(): Promise<void> {
  const embedded = await EmbeddedPostgres.start(options['data-dir'] ?? null);
  process.stdout.write(`POSTGRES_URL ${embedded.url}\n`);
  const stop = async () => {
    await embedded.stop();
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// It runs until stdin closes or SIGTERM (stop exits); only a failure to start ends it here.
main().catch((error: unknown) => exitWith(TOOL, Promise.reject(error)));
