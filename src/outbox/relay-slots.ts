import { JsonLogger } from '../logging/json-logger';
import { RelaySlotLockEvents, RelaySlotLocks } from './relay-slot-locks';

/** Must match the generated `outbox_event.slot` column (`hashtext(topic/key) & 15`). */
export const RELAY_SLOT_COUNT = 16;
/** A free slot nobody under their share took for this many rounds is taken by whoever sees it. */
const FREE_ROUNDS_BEFORE_ANYONE_TAKES = 2;

/**
 * Which relay slots this instance publishes. A slot is owned by holding a
 * session advisory lock on one dedicated PostgreSQL connection (RelaySlotLocks), so
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
  private readonly owned = new Set<number>();
  private readonly freeRounds = new Map<number, number>();
  private lost = false;
  private onWritten: () => void = () => undefined;
  private readonly log: JsonLogger;
  /** What the lock connection reports, for as long as it lives. */
  private readonly lockEvents: RelaySlotLockEvents = {
    lost: (error) => this.dropConnection(error),
    outboxWritten: () => this.onWritten(),
    listenFailed: (error) => this.log.emit('warn', 'cannot LISTEN for outbox rows; polling only', { error: error.message }),
  };

  constructor(
    private readonly locks: RelaySlotLocks,
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
      await this.locks.open(this.lockEvents);
      const held = await this.locks.heldSlots();
      for (const slot of this.owned) {
        if (!held.has(slot)) this.owned.delete(slot); // not ours any more (should not happen while the session lives)
      }
      const share = Math.ceil(RELAY_SLOT_COUNT / Math.max(1, this.liveInstances()));
      if (this.owned.size > share) {
        // Highest first: a newcomer takes the free ones, and each instance keeps the low slots it had.
        const extra = this.current.slice(share);
        for (const slot of extra) {
          await this.locks.unlock(slot);
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
        if (await this.locks.tryLock(slot)) {
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
    this.owned.clear();
    await this.locks.releaseAll();
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
    this.locks.close();
  }
}
