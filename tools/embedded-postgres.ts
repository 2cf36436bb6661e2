/**
 * Embedded PostgreSQL (PGlite) as a process of its own: prints
 * "POSTGRES_URL <url>" once it listens and stops when its stdin closes or on
 * SIGTERM. The tests use it when no PostgreSQL server answers (PGlite cannot
 * load inside Jest's module sandbox); it is also handy by hand:
 *   node dist/tools/embedded-postgres.js [data-dir]     (default: in memory)
 */
import { EmbeddedPostgres } from '../src/database/embedded-postgres';

async function main(): Promise<void> {
  const embedded = await EmbeddedPostgres.start(process.argv[2] ?? null);
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

main().catch((error) => {
  process.stderr.write(`embedded-postgres: ${(error as Error).message}\n`);
  process.exit(1);
});
