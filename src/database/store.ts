import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataSource } from 'typeorm';
import { GatewayConfig } from '../config/gateway-config';
import { JsonLogger } from '../logging/json-logger';
import { createDataSource } from './data-source';
import { EmbeddedPostgres } from './embedded-postgres';

/** In DATA_DIR while the embedded database runs: its loopback address (the operator CLI connects there). */
export const EMBEDDED_DATABASE_URL_FILE = 'database-url';

/**
 * The PostgreSQL store: DATABASE_URL, or embedded PGlite when it is unset.
 * Migrations run at start.
 */
export class Store {
  private constructor(
    readonly dataSource: DataSource,
    readonly description: string,
    private readonly embedded: EmbeddedPostgres | null,
    /** Where the embedded database's address is written while it runs, for the operator CLI. */
    private readonly urlFile: string | null,
  ) {}

  static async open(config: GatewayConfig, logger: JsonLogger): Promise<Store> {
    let embedded: EmbeddedPostgres | null = null;
    let url = config.DATABASE_URL;
    let poolSize = config.DATABASE_POOL_SIZE;
    if (!url) {
      const dir = resolve(config.DATA_DIR, 'pglite');
      embedded = await EmbeddedPostgres.start(dir);
      url = embedded.url;
      poolSize = EmbeddedPostgres.POOL_SIZE;
      logger.emit('warn', 'DATABASE_URL is unset: using embedded PostgreSQL (PGlite), for development only', { dataDir: dir });
    }
    const dataSource = createDataSource(url, poolSize);
    try {
      await dataSource.initialize();
      const applied = await dataSource.runMigrations({ transaction: 'each' });
      if (applied.length) logger.emit('info', 'database migrations applied', { migrations: applied.map((m) => m.name) });
    } catch (error) {
      await embedded?.stop();
      throw error;
    }
    const description = embedded ? `embedded PGlite (${resolve(config.DATA_DIR, 'pglite')})` : url.replace(/\/\/[^@/]*@/, '//');
    let urlFile: string | null = null;
    if (embedded) {
      urlFile = join(config.DATA_DIR, EMBEDDED_DATABASE_URL_FILE);
      writeFileSync(urlFile, url);
    }
    return new Store(dataSource, description, embedded, urlFile);
  }

  async close(): Promise<void> {
    if (this.urlFile) rmSync(this.urlFile, { force: true });
    if (this.dataSource.isInitialized) await this.dataSource.destroy().catch(() => undefined);
    await this.embedded?.stop();
  }
}
