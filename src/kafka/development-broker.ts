import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../common/project-root';
import { createInterface, Interface } from 'node:readline';
import { ALL_TOPICS } from './topics';

export const DEVELOPMENT_BROKER_BINARY = join(projectRoot(), '.cache/kafka-broker/mock-broker');

/**
 * The development and test broker: librdkafka's mock cluster (a Kafka
 * protocol broker by the librdkafka authors) in a child process, built by
 * scripts/build-kafka-broker.sh. It keeps everything in memory and dies
 * with its parent (its stdin closes). Tests use it to inject faults.
 */
export class DevelopmentBroker {
  private readonly replies: Interface;
  private pending: Array<(line: string) => void> = [];

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly brokers: string[],
    lines: Interface,
  ) {
    this.replies = lines;
    lines.on('line', (line) => this.pending.shift()?.(line));
  }

  static async start(options: { topics?: readonly string[]; partitions?: number; binary?: string } = {}): Promise<DevelopmentBroker> {
    const binary = options.binary ?? resolveBinary();
    const args = ['--partitions', String(options.partitions ?? 3), ...(options.topics ?? ALL_TOPICS)];
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    const bootstrap = await new Promise<string>((resolve, reject) => {
      // Generous: on a loaded 2-core machine (a CI run with two test workers) it has taken over 10 s.
      const timer = setTimeout(() => reject(new Error('development broker did not start within 30 s')), 30_000);
      lines.once('line', (line) => {
        clearTimeout(timer);
        if (line.startsWith('BOOTSTRAP ')) resolve(line.slice('BOOTSTRAP '.length));
        else reject(new Error(`development broker said: ${line}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`development broker exited with ${code}: ${stderr}`));
      });
    });
    return new DevelopmentBroker(child, bootstrap.split(','), lines);
  }

  /** Sends one control command (see mock-broker.c) and waits for its answer. */
  async control(command: string): Promise<void> {
    const answer = await new Promise<string>((resolve) => {
      this.pending.push(resolve);
      this.child.stdin.write(command + '\n');
    });
    if (!answer.startsWith('OK')) throw new Error(`broker refused "${command}": ${answer}`);
  }

  takeDown(): Promise<void> {
    return this.control('down -1');
  }

  bringUp(): Promise<void> {
    return this.control('up -1');
  }

  /** The next `count` requests of a Kafka API (0 = Produce) fail with `errorCode`. */
  failRequests(apiKey: number, count: number, errorCode: number): Promise<void> {
    return this.control(`errors ${apiKey} ${count} ${errorCode}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    this.child.kill('SIGTERM');
    await exited;
    this.replies.close();
  }
}

function resolveBinary(): string {
  if (!existsSync(DEVELOPMENT_BROKER_BINARY)) {
    throw new Error(
      `the development Kafka broker is not built (${DEVELOPMENT_BROKER_BINARY}); run "npm run kafka:build" or set KAFKA_BROKERS`,
    );
  }
  return DEVELOPMENT_BROKER_BINARY;
}
