import { hostname } from 'node:os';
import { DataSource } from 'typeorm';
import { JsonLogger } from '../logging/json-logger';

/** An instance whose heartbeat is older than this no longer counts among those sharing the work. */
export const INSTANCE_STALE_SECONDS = 5;
const HEARTBEAT_MS = 1000;
/** Rows of instances gone this long are removed; until then the CLI shows them as gone. */
const FORGET_AFTER_SECONDS = 3600;

export interface InstanceView {
  instanceId: string;
  host: string;
  pid: number;
  startedAt: string;
  heartbeatAt: string;
  live: boolean;
  relaySlots: number[];
  partitions: Record<string, number[]>;
}

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
    private readonly dataSource: DataSource,
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
    await this.dataSource.query(`DELETE FROM gateway_instance WHERE instance_id = $1`, [this.instanceId]).catch(() => undefined);
  }

  private async beat(): Promise<void> {
    try {
      const [row] = await this.dataSource.query(
        `WITH me AS (
           INSERT INTO gateway_instance (instance_id, host, pid, started_at, heartbeat_at, relay_slots, partitions)
           VALUES ($1, $2, $3, $4, now(), $5, $6)
           ON CONFLICT (instance_id) DO UPDATE SET host = $2, pid = $3, started_at = $4, heartbeat_at = now(), relay_slots = $5, partitions = $6
           RETURNING instance_id)
         SELECT 1 + count(*)::int AS live FROM gateway_instance
          WHERE heartbeat_at > now() - make_interval(secs => $7) AND instance_id <> (SELECT instance_id FROM me)`,
        [this.instanceId, hostname(), process.pid, this.startedAt, this.relaySlots, JSON.stringify(Object.fromEntries(this.partitions)), INSTANCE_STALE_SECONDS],
      );
      this.liveCount = row.live;
      if (Math.random() < 0.01) {
        await this.dataSource.query(`DELETE FROM gateway_instance WHERE heartbeat_at < now() - make_interval(secs => $1)`, [FORGET_AFTER_SECONDS]);
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

/** Every instance the table knows, live or gone, for the operator CLI. */
export async function listInstances(dataSource: DataSource): Promise<InstanceView[]> {
  const rows: Array<Record<string, unknown>> = await dataSource.query(
    `SELECT instance_id, host, pid, started_at, heartbeat_at, relay_slots, partitions,
            heartbeat_at > now() - make_interval(secs => $1) AS live
       FROM gateway_instance ORDER BY instance_id`,
    [INSTANCE_STALE_SECONDS],
  );
  return rows.map((row) => ({
    instanceId: String(row.instance_id),
    host: String(row.host),
    pid: Number(row.pid),
    startedAt: new Date(row.started_at as string).toISOString(),
    heartbeatAt: new Date(row.heartbeat_at as string).toISOString(),
    live: Boolean(row.live),
    relaySlots: (row.relay_slots as number[]).map(Number),
    partitions: row.partitions as Record<string, number[]>,
  }));
}
