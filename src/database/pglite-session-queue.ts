import type { PGlite } from '@electric-sql/pglite';

interface Pending {
  connection: number;
  message: Uint8Array;
  onData: (data: Uint8Array) => void;
  resolve: (bytes: number) => void;
  reject: (error: unknown) => void;
}

const READY_FOR_QUERY = 0x5a; // 'Z'
const IDLE = 0x49; // 'I': not in a transaction

/**
 * Shares PGlite's single session between connections, one protocol exchange
 * at a time. pglite-socket's own queue interleaves connections message by
 * message, so outside a transaction one connection's Parse can land between
 * another's Parse and Bind ("bind message supplies 2 parameters, but prepared
 * statement requires 1"). Here a connection owns the session from its first
 * message until PGlite answers ReadyForQuery with status idle: a whole
 * extended-protocol exchange, or a whole transaction. Others wait.
 *
 * Implements pglite-socket's queue interface (enqueue, clearQueueForHandler,
 * clearTransactionIfNeeded, getQueueLength).
 */
export class PgliteSessionQueue {
  private readonly waiting: Pending[] = [];
  private owner: number | null = null;
  private pumping = false;

  constructor(private readonly db: PGlite) {}

  enqueue(connection: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ connection, message, onData, resolve, reject });
      void this.pump();
    });
  }

  getQueueLength(): number {
    return this.waiting.length;
  }

  clearQueueForHandler(connection: number): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (this.waiting[i].connection === connection) this.waiting.splice(i, 1)[0].reject(new Error('connection closed'));
    }
  }

  /** A connection went away: roll back what it left open and free the session. */
  async clearTransactionIfNeeded(connection: number): Promise<void> {
    if (this.owner !== connection) return;
    if (this.db.isInTransaction()) await this.db.exec('ROLLBACK').catch(() => undefined);
    this.owner = null;
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const index = this.owner === null ? (this.waiting.length ? 0 : -1) : this.waiting.findIndex((p) => p.connection === this.owner);
        if (index < 0) return;
        const [item] = this.waiting.splice(index, 1);
        this.owner = item.connection;
        let bytes = 0;
        let tail: Uint8Array = new Uint8Array(0);
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(item.message, {
              onRawData: (data: Uint8Array) => {
                bytes += data.length;
                tail = data.length >= 6 ? data.subarray(data.length - 6) : concatTail(tail, data);
                item.onData(data);
              },
            }),
          );
          item.resolve(bytes);
        } catch (error) {
          item.reject(error);
        }
        if (tail.length === 6 && tail[0] === READY_FOR_QUERY && tail[5] === IDLE) this.owner = null;
      }
    } finally {
      this.pumping = false;
    }
  }
}

function concatTail(previous: Uint8Array, data: Uint8Array): Uint8Array {
  const joined = new Uint8Array(previous.length + data.length);
  joined.set(previous);
  joined.set(data, previous.length);
  return joined.subarray(Math.max(0, joined.length - 6));
}
