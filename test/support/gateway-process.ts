import { ChildProcess, spawn } from 'node:child_process';
import { GATEWAY_MAIN } from './test-environment';

export interface GatewayProcessOptions {
  /** Working directory of the process (the test runner's by default). */
  cwd?: string;
  /** How long it may take to log what a test waits for, or to exit by itself. */
  startTimeoutMs?: number;
}

/**
 * A gateway as `npm start` runs it (`node dist/src/main.js`) with `env` (and
 * PATH) only; every log line it writes, on stdout or stderr, kept in `logs`.
 */
export class GatewayProcess {
  readonly logs: string[] = [];
  /** Resolves with the exit code once the process has ended (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private readonly startTimeoutMs: number;

  constructor(env: Record<string, string>, options: GatewayProcessOptions = {}) {
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
    this.child = spawn(process.execPath, [GATEWAY_MAIN], { cwd: options.cwd, env: { PATH: process.env.PATH ?? '', MANAGEMENT_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => this.logs.push(...chunk.toString().split('\n').filter(Boolean));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** All log lines, one a line. */
  get output(): string {
    return this.logs.join('\n');
  }

  /** The log lines that are JSON, parsed. */
  entries(): Array<Record<string, unknown>> {
    return this.logs.flatMap((line) => {
      try {
        const entry: unknown = JSON.parse(line);
        return typeof entry === 'object' && entry !== null ? [entry as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
  }

  /** The message of each JSON log line. */
  messages(): string[] {
    return this.entries().map((entry) => String(entry.message));
  }

  /** The first log entry with this message, once it is written; fails if the process exits first. */
  async logged(message: string): Promise<Record<string, unknown>> {
    return this.waitFor(`logging "${message}"`, 50, () => this.entries().find((entry) => entry.message === message));
  }

  /** The HTTP port, once it says it listens; fails if it exits first. */
  async httpPort(): Promise<number> {
    return this.waitFor('listening', 100, () => this.field('httpPort'));
  }

  /** The ports it listens on, once it says so; fails if it exits first. */
  async listening(): Promise<{ httpPort: number; iso8583Port: number }> {
    return this.waitFor('listening', 100, () => {
      const httpPort = this.field('httpPort');
      const iso8583Port = this.field('iso8583Port');
      return httpPort !== undefined && iso8583Port !== undefined ? { httpPort, iso8583Port } : undefined;
    });
  }

  /** Exits by itself (it must; killed with SIGKILL after the start timeout): its exit code. */
  async exitCode(): Promise<number | null> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), this.startTimeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** SIGTERM, as an operator stops it (SIGKILL after 20 s); waits for the process to end. */
  async stop(): Promise<void> {
    if (this.hasEnded()) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
  }

  private hasEnded(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  private field(name: string): number | undefined {
    const entry = this.entries().find((e) => typeof e[name] === 'number');
    return entry?.[name] as number | undefined;
  }

  /** Polls `probe` until it gives a value; fails if the process ends first or the start timeout passes. */
  private async waitFor<T>(what: string, intervalMs: number, probe: () => T | undefined): Promise<T> {
    const deadline = Date.now() + this.startTimeoutMs;
    for (;;) {
      const value = probe();
      if (value !== undefined) return value;
      if (this.hasEnded()) throw new Error(`gateway exited with ${this.child.exitCode ?? this.child.signalCode} before ${what}:\n${this.logs.slice(-15).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`gateway timed out before ${what}:\n${this.logs.slice(-15).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}
