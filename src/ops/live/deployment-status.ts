import { InstanceView } from '../../instances/instance.repository';

/** Where the deployment's state is read: the instances sharing the store, and the parked events. */
export interface DeploymentReads {
  instances(): Promise<InstanceView[]>;
  parkedEvents(): Promise<number>;
}

/** Pages push every second and scripts may poll: the store is asked at most this often, whoever asks. */
export const READ_EVERY_MS = 2000;
/** A page connecting or a script asking waits this long for a read under way, then gets what is known. */
const WAIT_FOR_READ_MS = 1000;
/** Values older than this (reads failing or hanging) are shown as stale. */
const STALE_AFTER_MS = 3 * READ_EVERY_MS;

/** One gateway as the page shows it: what it owns, not where it runs (no host, no pid). */
export interface DeploymentInstance {
  instanceId: string;
  live: boolean;
  heartbeatAt: string;
  relaySlots: number[];
  partitions: Record<string, number[]>;
}

export interface Deployment {
  liveInstances: number;
  /** Every instance `gateway_instance` knows, live or gone (gone ones are forgotten after an hour). */
  instances: DeploymentInstance[];
  /** Outbox rows Kafka kept refusing: they wait for an operator (npm run cli -- outbox parked / requeue). */
  parkedEvents: number;
  /** When these values were read, milliseconds since the epoch; null until the first read answers. */
  readAt: number | null;
  /** The last read failed or is late: these are the last values known. */
  stale: boolean;
}

/**
 * The deployment for the live page: the instances sharing the database and
 * the parked outbox rows. Read at most every READ_EVERY_MS, one read (and
 * one query) at a time, so any number of pages and scripts cost the store
 * the same. A failing store gives the last values marked stale, never an
 * error: the page must keep working when the store is the problem.
 */
export class DeploymentStatus {
  private values: Omit<Deployment, 'readAt' | 'stale'> = { liveInstances: 0, instances: [], parkedEvents: 0 };
  private readAt: number | null = null;
  private failed = false;
  private lastStart = Number.NEGATIVE_INFINITY;
  private reading: Promise<void> | null = null;

  constructor(
    private readonly reads: DeploymentReads,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** What is known now, without waiting (for the stream's pushes); starts a read when one is due. */
  current(): Deployment {
    this.readIfDue();
    const stale = this.failed || this.readAt === null || this.now() - this.readAt > STALE_AFTER_MS;
    return { ...this.values, readAt: this.readAt, stale };
  }

  /** As current(), after waiting (briefly) for a read that is due or under way: for a page connecting and /ops/snapshot. */
  async read(): Promise<Deployment> {
    this.readIfDue();
    if (this.reading) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.reading, new Promise((resolve) => (timer = setTimeout(resolve, WAIT_FOR_READ_MS)))]);
      clearTimeout(timer);
    }
    return this.current();
  }

  private readIfDue(): void {
    if (this.reading || this.now() - this.lastStart < READ_EVERY_MS) return;
    this.lastStart = this.now();
    this.reading = this.readStore().finally(() => (this.reading = null));
  }

  private async readStore(): Promise<void> {
    try {
      // One after the other: one pooled connection at most, however slow the store.
      const instances = await this.reads.instances();
      const parked = await this.reads.parkedEvents();
      this.values = {
        liveInstances: instances.filter((i) => i.live).length,
        instances: instances.map(({ instanceId, live, heartbeatAt, relaySlots, partitions }) => ({ instanceId, live, heartbeatAt, relaySlots, partitions })),
        parkedEvents: parked,
      };
      this.readAt = this.now();
      this.failed = false;
    } catch {
      this.failed = true;
    }
  }
}
