import { Sql } from '../database/sql';

/** An instance as it announces itself. */
export interface InstanceHeartbeat {
  instanceId: string;
  host: string;
  pid: number;
  startedAt: Date;
  relaySlots: number[];
  partitions: Record<string, number[]>;
}

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

/** gateway_instance: every statement on it. */
export class InstanceRepository {
  constructor(private readonly sql: Sql) {}

  /** Writes this instance's heartbeat; returns how many instances are alive, this one included. */
  async heartbeat(instance: InstanceHeartbeat, staleAfterSeconds: number): Promise<number> {
    const [row]: { live: number }[] = await this.sql.query(
      `WITH me AS (
         INSERT INTO gateway_instance (instance_id, host, pid, started_at, heartbeat_at, relay_slots, partitions)
         VALUES ($1, $2, $3, $4, now(), $5, $6)
         ON CONFLICT (instance_id) DO UPDATE SET host = $2, pid = $3, started_at = $4, heartbeat_at = now(), relay_slots = $5, partitions = $6
         RETURNING instance_id)
       SELECT 1 + count(*)::int AS live FROM gateway_instance
        WHERE heartbeat_at > now() - make_interval(secs => $7) AND instance_id <> (SELECT instance_id FROM me)`,
      [instance.instanceId, instance.host, instance.pid, instance.startedAt, instance.relaySlots, JSON.stringify(instance.partitions), staleAfterSeconds],
    );
    return row.live;
  }

  /** Removes the rows of instances silent this long. */
  async forgetSilentFor(seconds: number): Promise<void> {
    await this.sql.query(`DELETE FROM gateway_instance WHERE heartbeat_at < now() - make_interval(secs => $1)`, [seconds]);
  }

  async remove(instanceId: string): Promise<void> {
    await this.sql.query(`DELETE FROM gateway_instance WHERE instance_id = $1`, [instanceId]);
  }

  /** Every instance the table knows, live or gone. */
  async list(staleAfterSeconds: number): Promise<InstanceView[]> {
    const rows: Array<Record<string, unknown>> = await this.sql.query(
      `SELECT instance_id, host, pid, started_at, heartbeat_at, relay_slots, partitions,
              heartbeat_at > now() - make_interval(secs => $1) AS live
         FROM gateway_instance ORDER BY instance_id`,
      [staleAfterSeconds],
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
}
