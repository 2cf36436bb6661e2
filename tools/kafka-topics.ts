/**
 * `npm run kafka:topics`: creates every topic of spec section 5 on the
 * cluster of KAFKA_BROKERS, with the partitions, replication factor and
 * topic configuration of TOPIC_SETTINGS (src/kafka/topics.ts), reaching it
 * with the gateway's own TLS and SASL settings (KAFKA_SSL, KAFKA_SSL_CA_FILE,
 * KAFKA_SASL_*). For clusters where the compose job (which runs this same
 * file) is not used.
 *
 * Safe to run again: a topic that exists is reported, not changed. One that
 * exists with other settings is reported as a mismatch (exit code 3) and
 * still not changed: adding partitions would move keys to other partitions
 * and break the order per key, so that is an operator's decision.
 *
 * Exit codes: 0 done, 1 Kafka refused or could not be reached, 2 a
 * mistake on the command line, 3 a topic differs from its settings, 78 bad configuration.
 */
import { Admin, ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { ConfigurationError, loadConfig } from '../src/config/gateway-config';
import { kafkaClientOptions } from '../src/kafka/kafka-connection';
import { TOPIC_SETTINGS } from '../src/kafka/topics';
import { defineTool, parseOptions, runTool } from './options';

export const DEFAULT_REPLICATION_FACTOR = 3;

export const TOOL = defineTool({
  name: 'kafka:topics',
  summary: `Creates the topics of the partner interface (spec section 5) on the cluster of
KAFKA_BROKERS, with the partitions, min.insync.replicas, cleanup.policy and retention.ms of
src/kafka/topics.ts. TLS and SASL as for the gateway: KAFKA_SSL,
KAFKA_SSL_CA_FILE, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME,
KAFKA_SASL_PASSWORD, KAFKA_CLIENT_ID.`,
  options: {
    'replication-factor': {
      type: 'integer',
      value: 'N',
      min: 1,
      default: DEFAULT_REPLICATION_FACTOR,
      help: 'replicas per partition. Below 2, min.insync.replicas is lowered to N: a cluster with fewer replicas than that would refuse every write.',
    },
    'dry-run': { type: 'boolean', help: 'read the cluster and say what would be created; create nothing' },
  },
  more: `Existing topics are reported, never changed. Exit codes: 0 done, 1 Kafka
refused or could not be reached, 2 a mistake on the command line, 3 a topic
exists with other settings, 78 bad configuration.`,
});

export interface ProvisioningOptions {
  replicationFactor: number;
  dryRun: boolean;
  help: boolean;
}

/** Refused by the cluster (or not reachable): exit code 1. */
export class ProvisioningError extends Error {}

/** The command line as provisioning reads it; throws a UsageError naming a mistake. */
export function parseArguments(argv: readonly string[]): ProvisioningOptions {
  const parsed = parseOptions(TOOL, argv);
  if (parsed.help) return { replicationFactor: DEFAULT_REPLICATION_FACTOR, dryRun: false, help: true };
  return { replicationFactor: parsed.values['replication-factor'], dryRun: parsed.values['dry-run'], help: false };
}

export interface PlannedTopic {
  topic: string;
  numPartitions: number;
  replicationFactor: number;
  configEntries: { name: string; value: string }[];
}

/** What is created, from TOPIC_SETTINGS, with the replication factor given on the command line. */
export function topicPlan(replicationFactor: number): PlannedTopic[] {
  return Object.entries(TOPIC_SETTINGS).map(([topic, settings]) => {
    const config: Record<string, string> = { ...settings.config };
    config['min.insync.replicas'] = String(Math.min(Number(config['min.insync.replicas']), replicationFactor));
    return {
      topic,
      numPartitions: settings.partitions,
      replicationFactor,
      configEntries: Object.entries(config).map(([name, value]) => ({ name, value })),
    };
  });
}

export type TopicState = 'created' | 'would create' | 'exists' | 'mismatch';

export interface TopicOutcome {
  topic: string;
  state: TopicState;
  detail: string;
}

export interface ProvisioningReport {
  outcomes: TopicOutcome[];
  /** What could not be checked, and why. */
  notes: string[];
}

function describe(planned: PlannedTopic): string {
  return [`${planned.numPartitions} partitions`, `replication factor ${planned.replicationFactor}`, ...planned.configEntries.map((e) => `${e.name}=${e.value}`)].join(', ');
}

/** Creates what is missing (unless `dryRun`) and compares what exists with the plan. */
export async function provisionTopics(admin: Admin, plan: readonly PlannedTopic[], dryRun: boolean): Promise<ProvisioningReport> {
  const notes: string[] = [];
  // Listing does not create anything, where asking for a topic's metadata by name may (auto.create.topics.enable).
  const existing = new Set(await admin.listTopics());
  const present = plan.filter((p) => existing.has(p.topic));
  const missing = plan.filter((p) => !existing.has(p.topic));
  const differences = new Map<string, string[]>(plan.map((p) => [p.topic, []]));

  if (present.length > 0) {
    const metadata = await admin.fetchTopicMetadata({ topics: present.map((p) => p.topic) });
    for (const { name, partitions } of metadata.topics) {
      const planned = present.find((p) => p.topic === name)!;
      const replicas = Math.max(0, ...partitions.map((p) => p.replicas.length));
      if (partitions.length !== planned.numPartitions) differences.get(name)!.push(`has ${partitions.length} partitions, the settings say ${planned.numPartitions}`);
      if (replicas !== planned.replicationFactor) differences.get(name)!.push(`has replication factor ${replicas}, the settings say ${planned.replicationFactor}`);
    }
    try {
      const described = await admin.describeConfigs({
        resources: present.map((p) => ({ type: ConfigResourceTypes.TOPIC, name: p.topic, configNames: p.configEntries.map((e) => e.name) })),
        includeSynonyms: false,
      });
      for (const resource of described.resources) {
        const planned = present.find((p) => p.topic === resource.resourceName);
        if (!planned) continue;
        for (const entry of planned.configEntries) {
          const actual = resource.configEntries.find((c) => c.configName === entry.name)?.configValue;
          if (actual !== undefined && actual !== entry.value) differences.get(planned.topic)!.push(`has ${entry.name}=${actual}, the settings say ${entry.value}`);
        }
      }
    } catch (error) {
      notes.push(`the configuration of existing topics was not compared: the cluster refused DescribeConfigs (${(error as Error).message})`);
    }
  }

  if (missing.length > 0 && !dryRun) {
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((p) => ({ topic: p.topic, numPartitions: p.numPartitions, replicationFactor: p.replicationFactor, configEntries: p.configEntries })),
      });
    } catch (error) {
      throw new ProvisioningError(`the cluster refused to create ${missing.map((p) => p.topic).join(', ')}: ${explain(error)}`);
    }
  }

  const outcomes = plan.map((planned): TopicOutcome => {
    if (!existing.has(planned.topic)) return { topic: planned.topic, state: dryRun ? 'would create' : 'created', detail: describe(planned) };
    const found = differences.get(planned.topic)!;
    if (found.length > 0) return { topic: planned.topic, state: 'mismatch', detail: `${found.join('; ')} (left as it is)` };
    return { topic: planned.topic, state: 'exists', detail: describe(planned) };
  });
  return { outcomes, notes };
}

/** kafkajs hides the broker's reason for each topic in nested errors; they are what an operator needs. */
function explain(error: unknown): string {
  const e = error as Error & { errors?: unknown[]; type?: string };
  const parts = [e.message];
  if (e.type) parts.push(e.type);
  for (const inner of e.errors ?? []) {
    const innerError = inner as Error & { topic?: string; type?: string };
    parts.push(`${innerError.topic ? `${innerError.topic}: ` : ''}${innerError.type ?? innerError.message}`);
  }
  return parts.join('; ');
}

export function formatReport(report: ProvisioningReport): string {
  const width = Math.max(...report.outcomes.map((o) => o.topic.length));
  const lines = report.outcomes.map((o) => `${o.topic.padEnd(width)}  ${o.state.toUpperCase().padEnd(12)}  ${o.detail}`);
  return [...lines, ...report.notes.map((note) => `note: ${note}`)].join('\n');
}

/** The whole command once its options are read; returns its exit code. */
export async function run(options: Omit<ProvisioningOptions, 'help'>, env: Record<string, string | undefined>, out: (text: string) => void, err: (text: string) => void): Promise<number> {
  let admin: Admin;
  let brokers: string[];
  try {
    const config = loadConfig(env);
    if (!config.KAFKA_BROKERS) throw new ConfigurationError('KAFKA_BROKERS is required: it names the cluster to create the topics on (the development broker creates its own)');
    brokers = config.KAFKA_BROKERS.split(',');
    admin = new Kafka({ ...kafkaClientOptions(config), brokers, logLevel: logLevel.NOTHING }).admin();
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    err(`kafka:topics: ${error.message}`);
    return 78;
  }
  const plan = topicPlan(options.replicationFactor);
  out(`${options.dryRun ? 'dry run: nothing is created. ' : ''}Kafka at ${brokers.join(',')}, replication factor ${options.replicationFactor}`);
  try {
    await admin.connect();
  } catch (error) {
    err(`kafka:topics: cannot reach Kafka at ${brokers.join(',')}: ${explain(error)}`);
    return 1;
  }
  try {
    const report = await provisionTopics(admin, plan, options.dryRun);
    out(formatReport(report));
    const mismatches = report.outcomes.filter((o) => o.state === 'mismatch').length;
    if (mismatches > 0) {
      err(`kafka:topics: ${mismatches} topic(s) differ from src/kafka/topics.ts; nothing was changed on them`);
      return 3;
    }
    return 0;
  } catch (error) {
    err(`kafka:topics: ${error instanceof ProvisioningError ? error.message : `failed: ${explain(error)}`}`);
    return 1;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

if (require.main === module) {
  runTool(TOOL, (values) =>
    run(
      { replicationFactor: values['replication-factor'], dryRun: values['dry-run'] },
      process.env,
      (text) => process.stdout.write(text + '\n'),
      (text) => process.stderr.write(text + '\n'),
    ),
  );
}
