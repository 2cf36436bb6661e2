import { Client } from 'pg';
import { JsonLogger } from '../logging/json-logger';

/** Must match the generated `outbox_event.slot` column (`hashtext(topic/key) & 15`). */
export const RELAY_SLOT_COUNT = 16;
/** The advisory-lock key space of relay slots: pg_advisory_lock(RELAY_LOCK_SPACE, slot). */
export const RELAY_LOCK_SPACE = 0x0a5b_0001;
/** A free slot nobody under their share took for this many rounds is taken by whoever sees it. */
const FREE_ROUNDS_BEFORE_ANYONE_TAKES = 2;
/** Without an answer this long the connection, and so every lock on it, counts as lost. */
const QUERY_TIMEOUT_MS = 3000;

/**
 * Which relay slots this instance publishes. A slot is owned by holding a
 * session advisory lock on one dedicated PostgreSQL connection, so
 * ownership ends when the connection does: at once when the process dies
 * (the kernel closes its socket), within the server's TCP keepalive (set to
 * about 8 s on this connection) when the network is cut. The instance itself
 * stops using its slots as soon as a query on that connection fails or
 * takes over 3 s, before the server can hand them to another.
 *
 * Each round (about once a second, between relay batches, so a slot is
 * never let go in the middle of a batch) it aims at its share,
 * ceil(16 / live instances): it lets go of slots above the share and takes
 * free ones below it; a slot left free for two rounds is taken by anyone.
 */
export class RelaySlots {
  private client: Client | null = null;
  private readonly owned = new Set<number>();
  private readonly freeRounds = new Map<number, number>();
  private lost = false;
  private onWritten: () => void = () => undefined;
  private readonly log: JsonLogger;

  constructor(
    private readonly databaseUrl: string,
    private readonly instanceId: string,
    private readonly liveInstances: () => number,
    logger: JsonLogger,
  ) {
    this.log = logger.child('relay-slots');
  }

  /** Told when any instance commits outbox rows (PostgreSQL NOTIFY, heard on the slot connection). */
  onOutboxWritten(listener: () => void): void {
    this.onWritten = listener;
  }

  /** The slots this instance may publish now, ascending. */
  get current(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  /** One round: check the connection, then let go of or take slots toward this instance's share. */
  async rebalance(): Promise<void> {
    try {
      const client = await this.connection();
      const held = await this.heldSlots(client);
      for (const slot of this.owned) {
        if (!held.has(slot)) this.owned.delete(slot); // not ours any more (should not happen while the session lives)
      }
      const share = Math.ceil(RELAY_SLOT_COUNT / Math.max(1, this.liveInstances()));
      if (this.owned.size > share) {
        // Highest first: a newcomer takes the free ones, and each instance keeps the low slots it had.
        const extra = this.current.slice(share);
        for (const slot of extra) {
          await client.query('SELECT pg_advisory_unlock($1, $2)', [RELAY_LOCK_SPACE, slot]);
          this.owned.delete(slot);
        }
        this.log.emit('info', 'relay slots handed over', { slots: extra, share });
      }
      const taken: number[] = [];
      for (const slot of this.rotatedSlots()) {
        if (held.has(slot)) {
          this.freeRounds.delete(slot);
          continue;
        }
        const rounds = (this.freeRounds.get(slot) ?? 0) + 1;
        this.freeRounds.set(slot, rounds);
        if (this.owned.size >= share && rounds <= FREE_ROUNDS_BEFORE_ANYONE_TAKES) continue;
        const [row] = (await client.query('SELECT pg_try_advisory_lock($1, $2) AS locked', [RELAY_LOCK_SPACE, slot])).rows;
        if (row.locked) {
          this.owned.add(slot);
          this.freeRounds.delete(slot);
          taken.push(slot);
        }
      }
      if (taken.length) this.log.emit('info', 'relay slots taken', { slots: taken, owned: this.current, share });
      if (this.lost) this.log.emit('info', 'relay slot connection restored', { owned: this.current });
      this.lost = false;
    } catch (error) {
      this.dropConnection(error as Error);
    }
  }

  /** Lets every slot go (shutdown): the others take them at their next round. */
  async releaseAll(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.owned.clear();
    if (!client) return;
    await client.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
    await client.end().catch(() => undefined);
  }

  private async connection(): Promise<Client> {
    if (this.client) return this.client;
    const client = new Client({
      connectionString: this.databaseUrl,
      application_name: `absher-bank-gateway relay ${this.instanceId}`.slice(0, 63),
      query_timeout: QUERY_TIMEOUT_MS,
      connectionTimeoutMillis: QUERY_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: 4000,
    });
    client.on('error', (error) => this.dropConnection(error));
    await client.connect();
    // The server's side of the same bound: a peer that vanished without closing its socket (network
    // cut, host lost) loses its locks after about 4 + 2 x 2 s. The embedded database ignores these.
    await client.query('SET tcp_keepalives_idle = 4; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 2').catch(() => undefined);
    // Rows another instance wrote in this instance's slots are published at once, not at the next poll.
    client.on('notification', () => this.onWritten());
    await client.query('LISTEN outbox_event').catch((error: Error) => this.log.emit('warn', 'cannot LISTEN for outbox rows; polling only', { error: error.message }));
    this.onWritten(); // whatever was written while not listening
    this.client = client;
    return client;
  }

  private async heldSlots(client: Client): Promise<Set<number>> {
    const { rows } = await client.query(
      `SELECT objid::int AS slot FROM pg_locks
        WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [RELAY_LOCK_SPACE],
    );
    return new Set(rows.map((row: { slot: number }) => row.slot));
  }

  /** Every slot, starting at one derived from the instance id, so instances starting together try different slots first. */
  private rotatedSlots(): number[] {
    let offset = 0;
    for (const char of this.instanceId) offset = (offset * 31 + char.charCodeAt(0)) % RELAY_SLOT_COUNT;
    return Array.from({ length: RELAY_SLOT_COUNT }, (_, i) => (i + offset) % RELAY_SLOT_COUNT);
  }

  private dropConnection(error: Error): void {
    if (!this.lost) this.log.emit('warn', 'relay slot connection lost; publishing paused until slots are taken again', { error: error.message, had: this.current });
    this.lost = true;
    this.owned.clear();
    const client = this.client;
    this.client = null;
    client?.end().catch(() => undefined);
  }
}
