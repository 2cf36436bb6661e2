import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of the processes a benchmark step exercises, read from
 * /proc/<pid>/stat (utime + stime, all threads, in clock ticks) before and
 * after the step, and divided by the requests the step served.
 */

/** Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless told otherwise). */
export const CLOCK_TICKS = ((): number => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime, ticks. */
  own: number;
  /** cutime + cstime: children waited for, ticks. */
  reaped: number;
}

/** /proc/<pid>/stat, or null when the process is gone or not visible. */
export function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm sits in parentheses and may itself contain spaces or parentheses: the fields follow the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < 0) return null;
  const fields = text.slice(close + 2).split(' '); // fields[0] is field 3 (state)
  const at = (field: number) => Number(fields[field - 3]);
  return { pid, comm: text.slice(open + 1, close), ppid: at(4), own: at(14) + at(15), reaped: at(16) + at(17) };
}

/** Every process visible in /proc. */
export function allProcesses(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** Cumulative CPU time of something, µs; null when it cannot be read. */
export type CpuSource = () => number | null;

const ticksToUs = (ticks: number) => (ticks * 1_000_000) / CLOCK_TICKS;

/** One process (all its threads). */
export function processCpu(pid: number | undefined): CpuSource {
  return () => {
    const stat = pid ? readStat(pid) : null;
    return stat ? ticksToUs(stat.own) : null;
  };
}

/**
 * A server and every process it forked: the root, its children alive now,
 * and (through the root's cutime + cstime) those that exited and were
 * reaped, so a PostgreSQL backend ending during a step is not lost.
 */
export function processTreeCpu(rootPid: number): CpuSource {
  return () => {
    const root = readStat(rootPid);
    if (!root) return null;
    let ticks = root.own + root.reaped;
    for (const stat of allProcesses()) if (stat.ppid === rootPid) ticks += stat.own + stat.reaped;
    return ticksToUs(ticks);
  };
}

/** Every process whose name is `comm` (e.g. all `postgres` processes when the server's pid is unknown). */
export function processesNamedCpu(comm: string): CpuSource {
  return () => {
    const named = allProcesses().filter((stat) => stat.comm === comm);
    return named.length ? ticksToUs(named.reduce((sum, stat) => sum + stat.own, 0)) : null;
  };
}

/** This process: the load generator. */
export const selfCpu: CpuSource = () => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

export interface CpuFigures {
  /** CPU time used from the start of the step until it settled, ms, per process or group. */
  ms: Record<string, number | null>;
  /** The same divided by the requests served, µs per request. */
  usPerActivation: Record<string, number | null>;
}

/**
 * Runs `step` (the load, then whatever lets its trailing work finish, such as
 * the outbox relay publishing the decisions) and returns its result with the
 * CPU each source used meanwhile, per request served.
 */
export async function measureCpu<T extends { requests: number }>(sources: Record<string, CpuSource>, step: () => Promise<T>): Promise<T & { cpu: CpuFigures }> {
  const sample = () => Object.fromEntries(Object.entries(sources).map(([name, source]) => [name, source()]));
  const before = sample();
  const result = await step();
  const after = sample();
  const ms: Record<string, number | null> = {};
  const usPerActivation: Record<string, number | null> = {};
  for (const name of Object.keys(sources)) {
    const start = before[name];
    const end = after[name];
    const used = start === null || end === null ? null : end - start;
    ms[name] = used === null ? null : Math.round(used / 1000);
    usPerActivation[name] = used === null || result.requests === 0 ? null : Math.round(used / result.requests);
  }
  return { ...result, cpu: { ms, usPerActivation } };
}
