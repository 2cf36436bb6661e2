import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { DevelopmentBroker } from '../../src/kafka/development-broker';
import { ALL_TOPICS, TOPIC_SETTINGS, TOPICS } from '../../src/kafka/topics';

/**
 * `npm run kafka:topics` (dist/tools/kafka-topics.js, built by the global
 * setup) as a process against the development broker. librdkafka's mock
 * cluster does not implement CreateTopics (nor DescribeConfigs), so what can
 * be proven here is: topics that exist are reported and left alone, a
 * different partition count or replication factor is reported as a
 * mismatch, --dry-run creates nothing, and a refused CreateTopics is a clear
 * error. Creating topics for real happens against the compose stack's Kafka.
 */
const TOOL = join(__dirname, '../../dist/tools/kafka-topics.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kafkaTopics(args: string[], env: Record<string, string>): Promise<Run> {
  const child = spawn(process.execPath, [TOOL, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** The report line of a topic: its state and detail. */
function lineOf(run: Run, topic: string): string {
  const line = run.stdout.split('\n').find((l) => l.startsWith(topic + ' '));
  if (!line) throw new Error(`no line for ${topic} in:\n${run.stdout}\n${run.stderr}`);
  return line.slice(topic.length).trim();
}

async function topicsOn(broker: DevelopmentBroker): Promise<string[]> {
  const admin = new Kafka({ clientId: 'test-admin', brokers: broker.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).sort();
  } finally {
    await admin.disconnect();
  }
}

describe('against a broker holding the topics with their settings, but one', () => {
  let broker: DevelopmentBroker;
  let env: Record<string, string>;
  const absent = TOPICS.deadLetters;

  beforeAll(async () => {
    broker = await DevelopmentBroker.start({ topics: [] });
    // As a cluster provisioned earlier would: each topic with its own partition count (the mock holds one replica).
    for (const topic of ALL_TOPICS.filter((t) => t !== absent)) await broker.control(`topic ${topic} ${TOPIC_SETTINGS[topic as keyof typeof TOPIC_SETTINGS].partitions}`);
    env = { KAFKA_BROKERS: broker.brokers.join(',') };
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('--dry-run reports the existing topics, says what it would create, and creates nothing', async () => {
    const run = await kafkaTopics(['--replication-factor', '1', '--dry-run'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^dry run: nothing is created\. Kafka at 127\.0\.0\.1:\d+.*, replication factor 1$/m);
    for (const topic of ALL_TOPICS.filter((t) => t !== absent)) {
      const settings = TOPIC_SETTINGS[topic as keyof typeof TOPIC_SETTINGS];
      const retention = settings.config['retention.ms'] ? `, retention.ms=${settings.config['retention.ms']}` : '';
      expect(lineOf(run, topic)).toBe(`EXISTS        ${settings.partitions} partitions, replication factor 1, min.insync.replicas=1, cleanup.policy=${settings.config['cleanup.policy']}${retention}`);
    }
    // One replica cannot have two in sync: min.insync.replicas follows the replication factor down.
    const absentRetention = TOPIC_SETTINGS[absent].config['retention.ms'];
    expect(lineOf(run, absent)).toBe(`WOULD CREATE  ${TOPIC_SETTINGS[absent].partitions} partitions, replication factor 1, min.insync.replicas=1, cleanup.policy=delete${absentRetention ? `, retention.ms=${absentRetention}` : ''}`);
    expect(run.stdout).toMatch(/^note: the configuration of existing topics was not compared: the cluster refused DescribeConfigs/m);
    expect(await topicsOn(broker)).not.toContain(absent);
  });

  it('a refused CreateTopics is a clear error naming the topic and the reason, with exit code 1', async () => {
    const run = await kafkaTopics(['--replication-factor', '1'], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`kafka:topics: the cluster refused to create ${absent}: The Kafka server does not support the requested API version\n`);
    expect(await topicsOn(broker)).not.toContain(absent);
  });

  it('once every topic exists: each is reported, nothing changes, and a second run says the same', async () => {
    await broker.control(`topic ${absent} ${TOPIC_SETTINGS[absent].partitions}`);
    const before = await topicsOn(broker);
    const first = await kafkaTopics(['--replication-factor', '1'], env);
    expect(first.code).toBe(0);
    for (const topic of ALL_TOPICS) expect(lineOf(first, topic)).toMatch(/^EXISTS {8}/);
    expect(first.stderr).toBe('');
    const second = await kafkaTopics(['--replication-factor=1'], env);
    expect(second).toEqual(first);
    expect(await topicsOn(broker)).toEqual(before);
  });

  it('the default replication factor, 3, is reported as a mismatch on a one-replica cluster (exit code 3), and nothing is changed', async () => {
    const run = await kafkaTopics([], env);
    expect(run.code).toBe(3);
    for (const topic of ALL_TOPICS) expect(lineOf(run, topic)).toBe('MISMATCH      has replication factor 1, the settings say 3 (left as it is)');
    expect(run.stderr).toBe(`kafka:topics: ${ALL_TOPICS.length} topic(s) differ from src/kafka/topics.ts; nothing was changed on them\n`);
  });
});

it('against the development broker as `npm start` runs it (3 partitions each): every other partition count is a mismatch', async () => {
  const broker = await DevelopmentBroker.start();
  try {
    const run = await kafkaTopics(['--replication-factor', '1'], { KAFKA_BROKERS: broker.brokers.join(',') });
    expect(run.code).toBe(3);
    for (const topic of ALL_TOPICS) {
      const { partitions } = TOPIC_SETTINGS[topic as keyof typeof TOPIC_SETTINGS];
      expect(lineOf(run, topic)).toEqual(partitions === 3 ? expect.stringMatching(/^EXISTS /) : `MISMATCH      has 3 partitions, the settings say ${partitions} (left as it is)`);
    }
  } finally {
    await broker.stop();
  }
});

describe('arguments and configuration', () => {
  it('--help prints the usage and exits 0', async () => {
    const run = await kafkaTopics(['--help'], {});
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^usage: npm run kafka:topics -- \[--replication-factor N\] \[--dry-run\]\n/);
  });

  it.each([
    [['--replication-factor', '0'], /^kafka:topics: --replication-factor must be a whole number of at least 1 \(got "0"\)\n/],
    [['--replication-factor'], /^kafka:topics: --replication-factor needs a value \(N\)\n/],
    [['--partitions', '7'], /^kafka:topics: unknown option --partitions\n/],
    [['--dry-run=yes'], /^kafka:topics: --dry-run takes no value\n/],
  ])('%j is refused with the usage, exit code 2', async (args, message) => {
    const run = await kafkaTopics(args, { KAFKA_BROKERS: '127.0.0.1:1' });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toMatch(/^usage: npm run kafka:topics -- /m);
  });

  it('without KAFKA_BROKERS it says so (exit code 78): it never falls back to a development broker', async () => {
    const run = await kafkaTopics([], {});
    expect(run.code).toBe(78);
    expect(run.stderr).toMatch(/^kafka:topics: KAFKA_BROKERS is required/);
  });

  it('reaches the cluster with the gateway’s own TLS settings: an unreadable KAFKA_SSL_CA_FILE is named (exit code 78)', async () => {
    const run = await kafkaTopics(['--dry-run'], { KAFKA_BROKERS: '127.0.0.1:1', KAFKA_SSL_CA_FILE: '/nonexistent/brokers-ca.pem' });
    expect(run.code).toBe(78);
    expect(run.stderr).toMatch(/^kafka:topics: KAFKA_SSL_CA_FILE \/nonexistent\/brokers-ca\.pem cannot be read/);
  });

  it('a cluster that cannot be reached is named, exit code 1', async () => {
    const run = await kafkaTopics(['--dry-run'], { KAFKA_BROKERS: '127.0.0.1:1' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^kafka:topics: cannot reach Kafka at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});
