import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigurationError } from '../config/gateway-config';
import { JsonLogger } from '../logging/json-logger';

/** In DATA_DIR while a gateway uses its embedded database: which instance it is. */
export const DATA_DIR_LOCK_FILE = 'gateway.lock';

/** What the lock file holds; the ports are added once the listeners are up. */
export interface DataDirHolder {
  pid: number;
  startedAt: string;
  httpPort?: number;
  iso8583Port?: number;
}

/** A second gateway was started on the DATA_DIR of a running one. */
export class DataDirInUseError extends ConfigurationError {
  constructor(dataDir: string, holder: DataDirHolder | null) {
    const who = !holder
      ? `its lock file ${DATA_DIR_LOCK_FILE} cannot be read; delete it if no gateway runs there`
      : holder.httpPort === undefined
        ? `pid ${holder.pid}, still starting, since ${holder.startedAt}`
        : `pid ${holder.pid}, HTTP port ${holder.httpPort}, ISO 8583 port ${holder.iso8583Port ?? 'unknown'}, since ${holder.startedAt}`;
    super(
      `DATA_DIR ${dataDir} is in use by another gateway (${who}): its embedded database takes one gateway only. ` +
        'Stop that one, or give this one its own DATA_DIR (and another HTTP_PORT and ISO8583_PORT), ' +
        'or run both on one PostgreSQL by setting DATABASE_URL',
    );
  }
}

/** Locks held by this process, by folder: Store.open finds the one main.ts took. */
const held = new Map<string, DataDirLock>();

/**
 * DATA_DIR belongs to one gateway while it uses the embedded database: PGlite
 * has no locking of its own, and a second instance opening the same folder
 * would corrupt it (and overwrite the first's database-url, so the operator
 * CLI would talk to the wrong one). The lock is a file created only if it
 * does not exist; a lock whose process is gone is taken over.
 */
export class DataDirLock {
  /** Files of this instance in the folder (database-url): removed with the lock. */
  private readonly owned = new Set<string>();
  private holder: DataDirHolder;
  private released = false;
  /** process.exit after a failed start skips Store.close: the lock must not outlive the process. */
  private readonly onExit = () => this.removeFiles();

  private constructor(
    readonly dataDir: string,
    private readonly file: string,
    holder: DataDirHolder,
  ) {
    this.holder = holder;
  }

  /** Takes DATA_DIR for this process (again, if it holds it already), or throws DataDirInUseError. */
  static acquire(dataDir: string, logger: JsonLogger): DataDirLock {
    const dir = resolve(dataDir);
    const existing = held.get(dir);
    if (existing) return existing;
    mkdirSync(dir, { recursive: true });
    const file = join(dir, DATA_DIR_LOCK_FILE);
    const holder: DataDirHolder = { pid: process.pid, startedAt: new Date().toISOString() };
    for (;;) {
      if (DataDirLock.create(file, holder)) break;
      const previous = DataDirLock.read(file);
      if (previous === undefined) continue; // removed in between: try again
      if (previous === null || isRunning(previous.pid)) throw new DataDirInUseError(dir, previous);
      logger.emit('warn', 'taking over DATA_DIR from a gateway that is no longer running', { dataDir: dir, previousPid: previous.pid, previousStartedAt: previous.startedAt });
      rmSync(file, { force: true });
    }
    const lock = new DataDirLock(dir, file, holder);
    held.set(dir, lock);
    process.once('exit', lock.onExit);
    return lock;
  }

  /** Once listening: a second instance's refusal names the ports of this one. */
  recordPorts(ports: { httpPort: number; iso8583Port?: number }): void {
    if (this.released) return;
    this.holder = { ...this.holder, ...ports };
    const next = `${this.file}.${process.pid}`;
    writeFileSync(next, JSON.stringify(this.holder));
    renameSync(next, this.file); // replaced whole: a reader never sees half of it
  }

  own(file: string): void {
    this.owned.add(file);
  }

  release(): void {
    if (this.released) return;
    process.removeListener('exit', this.onExit);
    this.removeFiles();
  }

  private removeFiles(): void {
    this.released = true;
    held.delete(this.dataDir);
    for (const file of this.owned) rmSync(file, { force: true });
    rmSync(this.file, { force: true });
  }

  /**
   * Written to a file of this process, then linked to the lock's name: the
   * link fails if the lock exists, and a reader never finds it empty.
   */
  private static create(file: string, holder: DataDirHolder): boolean {
    const draft = `${file}.${process.pid}`;
    writeFileSync(draft, JSON.stringify(holder));
    try {
      linkSync(draft, file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      rmSync(draft, { force: true });
    }
  }

  /** The holder; null if the file cannot be read as one; undefined if it is gone. */
  private static read(file: string): DataDirHolder | null | undefined {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const holder = JSON.parse(text) as DataDirHolder;
      return Number.isInteger(holder.pid) && holder.pid > 0 ? holder : null;
    } catch {
      return null;
    }
  }
}

/** ESRCH: no such process. EPERM means it runs as another user: still running. */
function isRunning(pid: number): boolean {
  if (pid === process.pid) return false; // a lock left by an earlier life of this pid (a container's pid 1 after a restart)
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
