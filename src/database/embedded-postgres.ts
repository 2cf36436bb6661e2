import { mkdirSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketHandler } from '@electric-sql/pglite-socket';
import { PgliteSessionQueue } from './pglite-session-queue';

/**
 * The embedded default when DATABASE_URL is unset: PGlite (PostgreSQL in
 * WebAssembly) keeping its files in a folder, served on a loopback port
 * through pglite-socket's protocol handler, so TypeORM and `pg` connect to it
 * like to any PostgreSQL. PGlite has one session; PgliteSessionQueue lends it
 * to one connection per protocol exchange or transaction, so several
 * connections are safe. (Code must never wait on a second connection while
 * holding a transaction; the gateway never does.)
 */
export class EmbeddedPostgres {
  static readonly POOL_SIZE = 8;
  static readonly MAX_CONNECTIONS = 32;

  private constructor(
    private readonly db: PGlite,
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
    readonly url: string,
  ) {}

  static async start(dataDir: string | null): Promise<EmbeddedPostgres> {
    if (dataDir) mkdirSync(dataDir, { recursive: true });
    const db = await PGlite.create(dataDir ?? 'memory://');
    const queue = new PgliteSessionQueue(db);
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      if (sockets.size >= EmbeddedPostgres.MAX_CONNECTIONS) {
        socket.end();
        return;
      }
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      const handler = new PGLiteSocketHandler({ queryQueue: queue as never, closeOnDetach: true });
      handler.attach(socket).catch(() => socket.destroy());
    });
    server.maxConnections = EmbeddedPostgres.MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as { port: number };
    return new EmbeddedPostgres(db, server, sockets, `postgres://postgres@127.0.0.1:${port}/postgres`);
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
    await this.db.close().catch(() => undefined);
  }
}
