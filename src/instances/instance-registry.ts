import { hostname } from 'node:os';
import { JsonLogger } from '../logging/json-logger';
import { InstanceRepository, InstanceView } from './instance.repository';

export type { InstanceView } from './instance.repository';

/** An instance whose heartbeat is older than this no longer counts among those sharing the work. */
export const INSTANCE_STALE_SECONDS = 5;
const HEARTBEAT_MS = 1000;
/** Rows of instances gone this long are removed; until then the CLI shows them as gone. */
const FORGET_AFTER_SECONDS = 3600;

/**
 * The gateways sharing one database, as each announces itself every second
 * in `gateway_instance`: how many are alive (relay slots are shared by that
 * count) and what each one owns (relay slots, consumer partitions), for
 * operators. A clean stop removes the row, so the others take over at once
 * rather than after the heartbeat goes stale.
 */
export class InstanceRegistry {
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;
  private liveCount = 1;
  private relaySlots: number[] = [];
  private readonly partitions = new Map<string, number[]>();
  private readonly startedAt = new Date();
  private failing = false;
  private readonly log: JsonLogger;

  constructor(
    private readonly instances: InstanceRepository,
    readonly instanceId: string,
    logger: JsonLogger,
  ) {
    this.log = logger.child('instances');
  }

  start(): void {
    if (this.timer) return;
    this.beating = this.beat();
    this.timer = setInterval(() => {
      this.beating ??= this.beat();
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Instances alive now, this one included (1 when the store cannot be read: act alone rather than not at all). */
  get live(): number {
    return this.liveCount;
  }

  ownsRelaySlots(slots: readonly number[]): void {
    this.relaySlots = [...slots].sort((a, b) => a - b);
  }

  ownsPartitions(topic: string, partitions: readonly number[]): void {
    this.partitions.set(topic, [...partitions].sort((a, b) => a - b));
  }

  /** What this instance owns, for /health/ready and metrics. */
  ownership(): { instanceId: string; liveInstances: number; relaySlots: number[]; partitions: Record<string, number[]> } {
    return { instanceId: this.instanceId, liveInstances: this.liveCount, relaySlots: this.relaySlots, partitions: Object.fromEntries(this.partitions) };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
    await this.instances.remove(this.instanceId).catch(() => undefined);
  }

  private async beat(): Promise<void> {
    try {
      this.liveCount = await this.instances.heartbeat(
        { instanceId: this.instanceId, host: hostname(), pid: process.pid, startedAt: this.startedAt, relaySlots: this.relaySlots, partitions: Object.fromEntries(this.partitions) },
        INSTANCE_STALE_SECONDS,
      );
      if (Math.random() < 0.01) {
        await this.instances.forgetSilentFor(FORGET_AFTER_SECONDS);
      }
      if (this.failing) this.log.emit('info', 'instance heartbeat written again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) this.log.emit('warn', 'instance heartbeat could not be written', { error: (error as Error).message });
      this.failing = true;
    } finally {
      this.beating = null;
    }
  }
}

/** Every instance the table knows, live or gone, for the operator CLI and the /ops page. */
export function listInstances(instances: InstanceRepository): Promise<InstanceView[]> {
  return instances.list(INSTANCE_STALE_SECONDS);
}
