import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { GatewayConfig, ServiceUnreachableError } from '../config/gateway-config';
import { JsonLogger } from '../logging/json-logger';
import { createDataSource } from './data-source';
import { DataDirLock } from './data-dir-lock';
import type { DevelopmentInfrastructure, EmbeddedDatabase } from '../development-infrastructure';

/** In DATA_DIR while the embedded database runs: its loopback address (the operator CLI connects there). */
export const EMBEDDED_DATABASE_URL_FILE = 'database-url';

/**
 * The PostgreSQL session advisory lock held while migrating, so that
 * instances starting together on one database apply each migration once.
 * Any fixed number will do, as long as every instance uses the same one:
 * "AbsherMG" in ASCII.
 */
export const MIGRATIONS_ADVISORY_LOCK = '4711455052398742855';

/**
 * The PostgreSQL store: DATABASE_URL, or embedded PGlite when it is unset
 * (started through the development infrastructure, which is loaded only
 * then). Migrations run at start.
 */
export class Store {
  private constructor(
    readonly dataSource: DataSource,
    readonly description: string,
    private readonly embedded: EmbeddedDatabase | null,
    /** DATA_DIR, held while the embedded database runs in it. */
    private readonly dataDirLock: DataDirLock | null,
    /** Where the embedded database's address is written while it runs, for the operator CLI. */
    private readonly urlFile: string | null,
  ) {}

  /**
   * Without DATABASE_URL the embedded database lives in DATA_DIR, and DATA_DIR
   * belongs to one gateway: taken here, or DataDirInUseError. main.ts calls
   * this before anything else, so a second instance stops before it touches
   * a file of the first (Store.open takes the same lock again).
   */
  static claimDataDir(config: GatewayConfig, logger: JsonLogger): DataDirLock | null {
    return config.DATABASE_URL ? null : DataDirLock.acquire(config.DATA_DIR, logger);
  }

  static async open(config: GatewayConfig, logger: JsonLogger, development: DevelopmentInfrastructure | null = null): Promise<Store> {
    const dataDirLock = Store.claimDataDir(config, logger);
    let embedded: EmbeddedDatabase | null = null;
    let dataSource: DataSource | null = null;
    try {
      let url = config.DATABASE_URL;
      let poolSize = config.DATABASE_POOL_SIZE;
      if (!url) {
        if (!development) throw new Error('DATABASE_URL is unset, and the development infrastructure (the embedded database) is not loaded');
        const dir = resolve(config.DATA_DIR, 'pglite');
        embedded = await development.startDatabase(dir);
        url = embedded.url;
        poolSize = embedded.poolSize;
        logger.emit('warn', 'DATABASE_URL is unset: using embedded PostgreSQL (PGlite), for development only', { dataDir: dir });
      }
      dataSource = createDataSource(url, poolSize);
      try {
        await dataSource.initialize();
      } catch (error) {
        if (embedded) throw error;
        const where = url.replace(/\/\/[^@/]*@/, '//'); // without the credentials
        throw new ServiceUnreachableError(
          `PostgreSQL at DATABASE_URL (${where}) cannot be reached: ${(error as Error).message}. ` +
            'Start it, or correct DATABASE_URL (unset, the gateway uses its embedded database)',
        );
      }
      await migrate(dataSource, url, logger);
      const description = embedded ? `embedded PGlite (${resolve(config.DATA_DIR, 'pglite')})` : url.replace(/\/\/[^@/]*@/, '//');
      let urlFile: string | null = null;
      if (embedded && dataDirLock) {
        urlFile = join(config.DATA_DIR, EMBEDDED_DATABASE_URL_FILE);
        writeFileSync(urlFile, url);
        dataDirLock.own(urlFile); // also removed if the start fails later and the process exits
      }
      return new Store(dataSource, description, embedded, dataDirLock, urlFile);
    } catch (error) {
      if (dataSource?.isInitialized) await dataSource.destroy().catch(() => undefined);
      await embedded?.stop();
      dataDirLock?.release();
      throw error;
    }
  }

  /** Whether the store answers: one round trip. */
  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.urlFile) rmSync(this.urlFile, { force: true });
    if (this.dataSource.isInitialized) await this.dataSource.destroy().catch(() => undefined);
    await this.embedded?.stop();
    // Last: the next gateway may open the folder only once PGlite has closed it.
    this.dataDirLock?.release();
  }
}

/**
 * Applies the pending migrations under MIGRATIONS_ADVISORY_LOCK, held by a
 * connection of its own (outside the pool, so DATABASE_POOL_SIZE=1 cannot
 * deadlock, and a lock that was not released dies with the connection).
 * Instances that start together wait here, then find nothing left to apply.
 * On PGlite every connection shares one session, where the lock is
 * re-entrant: it guards nothing there, and need not (one gateway per DATA_DIR).
 */
async function migrate(dataSource: DataSource, url: string, logger: JsonLogger): Promise<void> {
  const lockHolder = new Client({ connectionString: url, connectionTimeoutMillis: 3000, application_name: 'absher-bank-gateway migrations' });
  lockHolder.on('error', () => undefined); // a lost connection surfaces as the failure of its next query
  await lockHolder.connect();
  try {
    const { rows } = await lockHolder.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [MIGRATIONS_ADVISORY_LOCK]);
    const waited = !rows[0].locked;
    if (waited) {
      logger.emit('info', 'waiting for another instance to finish the database migrations');
      await lockHolder.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATIONS_ADVISORY_LOCK]);
    }
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    if (applied.length) logger.emit('info', 'database migrations applied', { migrations: applied.map((m) => m.name) });
    else if (waited) logger.emit('info', 'another instance applied the database migrations: none left to apply');
    await lockHolder.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATIONS_ADVISORY_LOCK]);
  } finally {
    await lockHolder.end().catch(() => undefined);
  }
}
