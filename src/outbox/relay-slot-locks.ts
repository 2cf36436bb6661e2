import { Client } from 'pg';

/** The advisory-lock key space of relay slots: pg_advisory_lock(RELAY_LOCK_SPACE, slot). */
export const RELAY_LOCK_SPACE = 0x0a5b_0001;
/** Without an answer this long the connection, and so every lock on it, counts as lost. */
const QUERY_TIMEOUT_MS = 3000;

/** What the lock connection tells its owner. */
export interface RelaySlotLockEvents {
  /** The connection failed on its own (not on a query): every lock on it is gone or about to be. */
  lost(error: Error): void;
  /** Some instance committed outbox rows (NOTIFY outbox_event), or the connection was just opened and may have missed some. */
  outboxWritten(): void;
  /** LISTEN failed: only the relay's poll will see other instances' rows. */
  listenFailed(error: Error): void;
}

/**
 * The relay slots' session advisory locks, on one dedicated PostgreSQL
 * connection outside the pool: a slot is owned while this connection holds
 * its lock, so ownership ends when the connection does (at once when the
 * process dies, within the TCP keepalive set here when the network is cut).
 * Every statement on that connection is here; which slots to take or let go
 * is RelaySlots' business.
 */
export class RelaySlotLocks {
  private client: Client | null = null;

  constructor(
    private readonly databaseUrl: string,
    /** Names the connection in pg_stat_activity. */
    private readonly instanceId: string,
  ) {}

  /** Opens the connection unless it is open, telling `events` what happens to it; a connection that cannot be opened throws here. */
  async open(events: RelaySlotLockEvents): Promise<void> {
    if (this.client) return;
    const client = new Client({
      connectionString: this.databaseUrl,
      application_name: `absher-bank-gateway relay ${this.instanceId}`.slice(0, 63),
      query_timeout: QUERY_TIMEOUT_MS,
      connectionTimeoutMillis: QUERY_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: 4000,
    });
    client.on('error', (error) => events.lost(error));
    await client.connect();
    // The server's side of the same bound: a peer that vanished without closing its socket (network
    // cut, host lost) loses its locks after about 4 + 2 x 2 s. The embedded database ignores these.
    await client.query('SET tcp_keepalives_idle = 4; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 2').catch(() => undefined);
    // Rows another instance wrote in this instance's slots are published at once, not at the next poll.
    client.on('notification', () => events.outboxWritten());
    await client.query('LISTEN outbox_event').catch((error: Error) => events.listenFailed(error));
    events.outboxWritten(); // whatever was written while not listening
    this.client = client;
  }

  /** The slots whose lock is held by any session on this database, this one's included. */
  async heldSlots(): Promise<Set<number>> {
    const { rows } = await this.connection().query(
      `SELECT objid::int AS slot FROM pg_locks
        WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [RELAY_LOCK_SPACE],
    );
    return new Set(rows.map((row: { slot: number }) => row.slot));
  }

  /** Takes the slot's lock if it is free; true when taken. */
  async tryLock(slot: number): Promise<boolean> {
    const [row] = (await this.connection().query('SELECT pg_try_advisory_lock($1, $2) AS locked', [RELAY_LOCK_SPACE, slot])).rows;
    return row.locked;
  }

  async unlock(slot: number): Promise<void> {
    await this.connection().query('SELECT pg_advisory_unlock($1, $2)', [RELAY_LOCK_SPACE, slot]);
  }

  /** Lets every lock go and closes the connection (shutdown); failures are ignored, the closed connection frees them anyway. */
  async releaseAll(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (!client) return;
    await client.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
    await client.end().catch(() => undefined);
  }

  /** Closes the connection without a word to the server (it is lost, or no longer trusted): its locks go with it. */
  close(): void {
    const client = this.client;
    this.client = null;
    client?.end().catch(() => undefined);
  }

  private connection(): Client {
    if (!this.client) throw new Error('the relay slot connection is not open');
    return this.client;
  }
}
