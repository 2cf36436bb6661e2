import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getMetadataStorage } from 'class-validator';
import { parse } from 'yaml';
import { ACTIVATION_RESULTS_GROUP } from '../src/activation/activation-results-consumer';
import { ConfigurationError, GatewayConfig, loadConfig } from '../src/config/gateway-config';
import { ALL_TOPICS, TOPIC_SETTINGS, TOPICS } from '../src/kafka/topics';
import { GatewayMetrics } from '../src/ops/gateway-metrics';
import { REGISTRATIONS_GROUP } from '../src/registry/registrations-consumer';
import { parseArguments, topicPlan } from '../tools/kafka-topics';

/**
 * docker/compose.yml, docker/haproxy.cfg, docker/Dockerfile and the
 * monitoring files (docker/prometheus/, docker/grafana/), checked without a
 * Docker engine (there is none on the development machines): against the
 * spec's topics, the topic settings table, the configuration schema, the
 * build, the metrics the gateway exports, the runbook's alert rules, and
 * each other.
 */
const ROOT = join(__dirname, '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

type EnvironmentValue = string | number | boolean | null;
interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[] | string;
  environment?: Record<string, EnvironmentValue> | string[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  depends_on?: Record<string, { condition: string }> | string[];
  ports?: (string | { published?: string | number; target?: number; host_ip?: string })[];
  volumes?: string[];
  restart?: string;
  init?: boolean;
  stop_grace_period?: string;
  deploy?: { replicas?: number };
}

const COMPOSE_TEXT = read('docker/compose.yml');
// Compose resolves `<<` merge keys, so the test does too.
const compose: { services: Record<string, Service> } = parse(COMPOSE_TEXT, { merge: true });
const services = compose.services;

/** The variables docker/README.md's recipe writes to docker/.env, made as it makes them (`openssl rand -hex N`). */
const README = read('docker/README.md');
const RECIPE = new Map([...README.matchAll(/^([A-Z_]+)=\$\(openssl rand -hex (\d+)\)$/gm)].map((m) => [m[1], randomBytes(Number(m[2])).toString('hex')]));

/** `${NAME:?message}` and the like, as compose substitutes them. */
const SUBSTITUTION = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[?-])([^}]*))?\}/g;

function substitute(value: string, variables: Map<string, string>): string {
  return value.replace(SUBSTITUTION, (_whole, name: string, operator: string | undefined, rest: string | undefined) => {
    const set = variables.get(name);
    if (set !== undefined && set !== '') return set;
    if (operator?.endsWith('-')) return rest ?? '';
    throw new Error(`compose would refuse to start: ${name} is unset (${rest ?? 'no message'})`);
  });
}

/** A service's environment as written (map or list form). */
function rawEnvironment(service: Service): Record<string, string> {
  const environment = service.environment ?? {};
  if (Array.isArray(environment)) return Object.fromEntries(environment.map((entry) => entry.split(/=(.*)/s, 2) as [string, string]));
  return Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, value === null ? '' : String(value)]));
}

/** ... and as the container sees it, with docker/.env made by the README's recipe. */
function environment(service: Service): Record<string, string> {
  return Object.fromEntries(Object.entries(rawEnvironment(service)).map(([name, value]) => [name, substitute(value, RECIPE)]));
}

/** apache/kafka turns KAFKA_FOO_BAR into the broker property foo.bar. */
function brokerProperties(service: Service): Record<string, string> {
  const properties: Record<string, string> = {};
  for (const [name, value] of Object.entries(environment(service))) {
    if (name.startsWith('KAFKA_')) properties[name.slice('KAFKA_'.length).toLowerCase().replace(/_/g, '.')] = value;
  }
  return properties;
}

function dependsOn(service: Service): Record<string, string> {
  const list = service.depends_on ?? {};
  if (Array.isArray(list)) return Object.fromEntries(list.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(list).map(([name, { condition }]) => [name, condition]));
}

function command(service: Service): string[] {
  if (Array.isArray(service.command)) return service.command;
  return (service.command ?? '').split(/\s+/).filter(Boolean);
}

/** The ports a service publishes on the host: the host address (empty: all), the host port (NaN: one Docker picks) and the container's. */
function published(service: Service): { hostIp: string; host: number; container: number }[] {
  return (service.ports ?? []).map((port) => {
    if (typeof port === 'object') return { hostIp: port.host_ip ?? '', host: Number(port.published ?? NaN), container: Number(port.target) };
    const parts = port.replace(/\/(tcp|udp)$/, '').split(':');
    const container = Number(parts.pop());
    const host = parts.length > 0 ? Number(parts.pop()) : NaN;
    return { hostIp: parts.join(':'), host, container };
  });
}

/** Whether a service publishes something, and only on the host's loopback. */
const onLoopbackOnly = (service: Service) => published(service).length > 0 && published(service).every((port) => port.hostIp === '127.0.0.1');

/** The shell command of a service's health check. */
function healthcheckCommand(service: Service): string {
  const test = service.healthcheck?.test;
  if (typeof test === 'string') return test;
  return test?.[0] === 'CMD-SHELL' ? test[1] : (test ?? []).slice(1).join(' ');
}

/** Where a host path (relative to docker/) is mounted in a service, and whether read-only. */
function mountOf(service: Service, hostPath: string): { target: string; readOnly: boolean } | undefined {
  const volume = service.volumes?.find((v) => v.split(':')[0] === hostPath);
  if (!volume) return undefined;
  const [, target, mode = ''] = volume.split(':');
  return { target, readOnly: mode.split(',').includes('ro') };
}

const kafkaNames = Object.keys(services).filter((name) => services[name].image?.startsWith('apache/kafka:'));
const kafkaServices = kafkaNames.map((name) => services[name]);
/** Where the other containers reach each broker: its advertised PLAINTEXT listener. */
const internalBrokers = kafkaServices.map((service) => /PLAINTEXT:\/\/([^,]+)/.exec(brokerProperties(service)['advertised.listeners'])![1]);
const isGatewayImage = (service: Service) => service.build?.dockerfile === 'docker/Dockerfile';
/** Every gateway instance: the gateway image running its own command. */
const gatewayNames = Object.keys(services).filter((name) => isGatewayImage(services[name]) && command(services[name]).length === 0);
const gateways = gatewayNames.map((name) => services[name]);
/** What they all share (checked below): the first stands for all where one is enough. */
const gateway = gateways[0];
const loadBalancerName = Object.keys(services).find((name) => /^haproxy:/.test(services[name].image ?? ''))!;
const loadBalancer = services[loadBalancerName];
const jobName = Object.keys(services).find((name) => command(services[name]).some((part) => part.includes('kafka-topics')))!;
const job = services[jobName];
const REPLICATION_FACTORS = new Set(Object.values(TOPIC_SETTINGS).map((s) => s.replicationFactor));
const MIN_IN_SYNC = new Set(Object.values(TOPIC_SETTINGS).map((s) => s.config['min.insync.replicas']));

describe('the topic settings table (src/kafka/topics.ts)', () => {
  it('covers exactly the topics of spec section 5, each replicated 3 times with 2 in sync, and compacts only the registrations', () => {
    expect(Object.keys(TOPIC_SETTINGS).sort()).toEqual([...ALL_TOPICS].sort());
    for (const [topic, settings] of Object.entries(TOPIC_SETTINGS)) {
      expect({ topic, replicationFactor: settings.replicationFactor, minInSync: settings.config['min.insync.replicas'] }).toEqual({ topic, replicationFactor: 3, minInSync: '2' });
      expect({ topic, policy: settings.config['cleanup.policy'] }).toEqual({ topic, policy: topic === TOPICS.registrations ? 'compact' : 'delete' });
      // The topics that carry national IDs and mobiles in clear keep them for an explicit time, not the cluster's default.
      const personalData = topic === TOPICS.activations || topic === TOPICS.deadLetters;
      expect({ topic, retentionMs: settings.config['retention.ms'] }).toEqual({ topic, retentionMs: personalData ? String(7 * 24 * 3600 * 1000) : undefined });
      expect(settings.partitions).toBeGreaterThanOrEqual(1);
    }
  });

  it('is what docker/README.md tells operators', () => {
    const rows = [...README.matchAll(/^\| `(absher\.[^`]+)` \| (\d+) \| (\w+) \| ([^|]+) \|$/gm)].map((m) => [m[1], Number(m[2]), m[3], m[4].trim()]);
    const retention = (ms?: string) => (ms ? `${Number(ms) / 86_400_000} days` : 'cluster default');
    expect(rows).toEqual(Object.entries(TOPIC_SETTINGS).map(([topic, s]) => [topic, s.partitions, s.config['cleanup.policy'], retention(s.config['retention.ms'])]));
  });
});

describe('docker/compose.yml', () => {
  it('runs three Kafka nodes in KRaft mode, each broker and controller, in one quorum of all three', () => {
    expect(kafkaNames).toHaveLength(3);
    const properties = kafkaServices.map(brokerProperties);
    const nodeIds = properties.map((p) => p['node.id']);
    expect(new Set(nodeIds).size).toBe(3);
    for (const [index, p] of properties.entries()) {
      expect(p['process.roles']).toBe('broker,controller');
      expect(p['zookeeper.connect']).toBeUndefined();
      // Every node knows all three voters, each at its own service name and controller port.
      const voters = p['controller.quorum.voters'].split(',').map((voter) => /^(\d+)@([^:]+):(\d+)$/.exec(voter)!);
      expect(voters.map((v) => v[1]).sort()).toEqual([...nodeIds].sort());
      for (const voter of voters) expect(kafkaNames[nodeIds.indexOf(voter[1])]).toBe(voter[2]);
      const listeners = Object.fromEntries(p.listeners.split(',').map((l) => /^(\w+):\/\/[^:]*:(\d+)$/.exec(l)!.slice(1, 3) as [string, string]));
      expect(voters.every((v) => v[3] === listeners[p['controller.listener.names']])).toBe(true);
      expect(listeners[p['inter.broker.listener.name']]).toBeDefined();
      // Advertised to the other containers under its own name.
      expect(internalBrokers[index]).toBe(`${kafkaNames[index]}:${listeners.PLAINTEXT}`);
      expect(environment(kafkaServices[index]).CLUSTER_ID).toMatch(/^[A-Za-z0-9_-]{22}$/);
    }
    expect(new Set(properties.map((p) => p['controller.quorum.voters'])).size).toBe(1);
    expect(new Set(kafkaServices.map((s) => environment(s).CLUSTER_ID)).size).toBe(1);
  });

  it('replicates every topic, the internal ones too, as the settings table says, and creates no topic by itself', () => {
    expect([...REPLICATION_FACTORS]).toEqual([kafkaNames.length]);
    const [replicationFactor] = [...REPLICATION_FACTORS].map(String);
    const [minInSync] = [...MIN_IN_SYNC];
    for (const p of kafkaServices.map(brokerProperties)) {
      expect(p).toMatchObject({
        'default.replication.factor': replicationFactor,
        'min.insync.replicas': minInSync,
        'offsets.topic.replication.factor': replicationFactor,
        'transaction.state.log.replication.factor': replicationFactor,
        'transaction.state.log.min.isr': minInSync,
        'auto.create.topics.enable': 'false',
        'unclean.leader.election.enable': 'false',
      });
      expect(p['log.dirs']).toBeDefined();
    }
    // Each node keeps its log in a volume of its own.
    const dataVolumes = kafkaServices.map((s, i) => s.volumes?.find((v) => v.endsWith(`:${brokerProperties(s)['log.dirs']}`)) ?? `none for ${kafkaNames[i]}`);
    expect(new Set(dataVolumes.map((v) => v.split(':')[0])).size).toBe(3);
  });

  it('has PostgreSQL 16, and the gateway reaches it with its user, database and password', () => {
    const postgres = services.postgres;
    expect(postgres.image).toMatch(/^postgres:16\b/);
    expect(rawEnvironment(postgres).POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?[^}]+\}$/);
    const env = environment(postgres);
    for (const instance of gateways) {
      const url = new URL(environment(instance).DATABASE_URL);
      expect(url.protocol).toBe('postgres:');
      expect({ host: url.hostname, port: url.port || '5432', user: url.username, password: url.password, database: url.pathname.slice(1) }).toEqual({
        host: 'postgres',
        port: '5432',
        user: env.POSTGRES_USER,
        password: env.POSTGRES_PASSWORD,
        database: env.POSTGRES_DB,
      });
    }
  });

  it('has a read-only Kafka web UI over all three brokers, behind a login, on the host loopback only', () => {
    const [uiName] = Object.keys(services).filter((name) => /kafka-ui|redpandadata\/console/.test(services[name].image ?? ''));
    const ui = services[uiName];
    // The maintained fork (provectuslabs/kafka-ui is no longer maintained), at a release tag.
    expect(ui.image).toMatch(/^kafbat\/kafka-ui:v\d+\.\d+\.\d+$/);
    const env = environment(ui);
    expect(env.KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS.split(',').sort()).toEqual([...internalBrokers].sort());
    expect(env.KAFKA_CLUSTERS_0_READONLY).toBe('true');
    expect(env.AUTH_TYPE).toBe('LOGIN_FORM');
    expect(rawEnvironment(ui).SPRING_SECURITY_USER_PASSWORD).toMatch(/^\$\{KAFKA_UI_PASSWORD:\?[^}]+\}$/);
    expect(onLoopbackOnly(ui)).toBe(true);
    // Spring's actuator, which kafbat leaves open without a login; the image is Alpine, with busybox wget.
    expect(healthcheckCommand(ui)).toMatch(/^wget .*http:\/\/127\.0\.0\.1:8080\/actuator\/health\b/);
    for (const broker of kafkaNames) expect(dependsOn(ui)[broker]).toBe('service_healthy');
  });

  it('has a one-shot job, on the gateway image, that creates exactly the topics of src/kafka/topics.ts with their settings', () => {
    expect(job.build).toEqual(gateway.build);
    expect(job.image).toBe(gateway.image);
    const [node, script, ...args] = command(job);
    expect([node, script]).toEqual(['node', 'dist/tools/kafka-topics.js']);
    expect(existsSync(join(ROOT, 'tools/kafka-topics.ts'))).toBe(true);
    // What it creates, worked out by the tool's own code from the arguments compose gives it.
    const options = parseArguments(args);
    expect(options).toEqual({ replicationFactor: kafkaNames.length, dryRun: false, help: false });
    const plan = topicPlan(options.replicationFactor);
    expect(plan.map((p) => p.topic).sort()).toEqual([...ALL_TOPICS].sort());
    for (const planned of plan) {
      const settings = TOPIC_SETTINGS[planned.topic as keyof typeof TOPIC_SETTINGS];
      expect({ topic: planned.topic, partitions: planned.numPartitions, replicationFactor: planned.replicationFactor, config: Object.fromEntries(planned.configEntries.map((e) => [e.name, e.value])) }).toEqual({
        topic: planned.topic,
        partitions: settings.partitions,
        replicationFactor: 3,
        config: settings.config,
      });
    }
    expect(environment(job).KAFKA_BROKERS.split(',').sort()).toEqual([...internalBrokers].sort());
    expect(() => loadConfig(environment(job))).not.toThrow();
    for (const broker of kafkaNames) expect(dependsOn(job)[broker]).toBe('service_healthy');
    expect(job.restart).toBe('no');
  });

  it('gives the gateway every variable the configuration requires with a real database, and none it does not know', () => {
    for (const instance of gateways) expect(() => loadConfig(environment(instance))).not.toThrow();
    const env = environment(gateway);
    // What loadConfig demands once DATABASE_URL is set, from its own complaints.
    let complaint = '';
    try {
      loadConfig({ DATABASE_URL: env.DATABASE_URL, KAFKA_BROKERS: env.KAFKA_BROKERS });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigurationError);
      complaint = (error as Error).message;
    }
    const required = [...complaint.matchAll(/^\s+- ([A-Z][A-Z0-9_]+) /gm)].map((m) => m[1]);
    expect(required).toEqual(expect.arrayContaining(['PAN_HASH_KEY', 'SUBJECT_HASH_KEY', 'KEY_ENCRYPTION_KEY', 'OPS_TOKEN']));
    for (const name of required) expect(Object.keys(env)).toContain(name);
    const known = new Set(getMetadataStorage().getTargetValidationMetadatas(GatewayConfig, '', true, false).map((m) => m.propertyName));
    for (const instance of gateways) {
      for (const name of Object.keys(environment(instance))) expect(known.has(name) ? name : `${name} is not in the configuration schema`).toBe(name);
    }
  });

  it('mounts the real PKI read-only in place of the development files, which are not in the image', () => {
    const env = environment(gateway);
    const mount = gateway.volumes?.find((v) => v.startsWith('./secrets:'));
    expect(mount).toMatch(/^\.\/secrets:\/[^:]+:ro$/);
    const target = mount!.split(':')[1];
    // Whatever defaults to a file of config/ (development only), and the development signing pair.
    const defaults = new GatewayConfig() as unknown as Record<string, unknown>;
    const developmentFiles = Object.keys(defaults).filter((name) => String(defaults[name]).startsWith('config/'));
    expect(developmentFiles).toEqual(expect.arrayContaining(['BANKS_FILE', 'TRUST_ANCHORS']));
    for (const name of [...developmentFiles, 'GATEWAY_SIGNING_KEY', 'GATEWAY_SIGNING_CERT']) expect(env[name]).toMatch(new RegExp(`^${target}/[^/].*\\.(pem|yaml)$`));
  });

  it('connects every gateway to the three brokers and starts it only when everything it needs is ready', () => {
    for (const instance of gateways) {
      const env = environment(instance);
      expect(env.KAFKA_BROKERS.split(',').sort()).toEqual([...internalBrokers].sort());
      const config = loadConfig(env);
      expect([config.HTTP_PORT, config.ISO8583_PORT]).toEqual([8080, 8583]);
      expect(instance.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
      expect(dependsOn(instance)).toEqual({
        postgres: 'service_healthy',
        ...Object.fromEntries(kafkaNames.map((name) => [name, 'service_healthy'])),
        [jobName]: 'service_completed_successfully',
      });
    }
  });

  it('runs at least two gateway instances from the same image and configuration, each with its own GATEWAY_INSTANCE_ID', () => {
    expect(gatewayNames.length).toBeGreaterThanOrEqual(2);
    // Named services, one per instance (the load balancer lists each by name), not replicas of one.
    for (const instance of gateways) expect(instance.deploy?.replicas ?? 1).toBe(1);
    const shared = (instance: Service) => {
      const { environment: _environment, ...rest } = instance;
      const { GATEWAY_INSTANCE_ID: _id, ...env } = rawEnvironment(instance);
      return { ...rest, environment: env };
    };
    for (const instance of gateways) expect(shared(instance)).toEqual(shared(gateway));
    expect(gateway.image).toBeDefined();
    expect(gateway.init).toBe(true);
    // The id each instance is told is the one the configuration reads, and no two share one.
    const ids = gateways.map((instance) => environment(instance).GATEWAY_INSTANCE_ID);
    for (const [index, id] of ids.entries()) {
      expect({ service: gatewayNames[index], id }).toEqual({ service: gatewayNames[index], id: expect.stringMatching(/\S/) });
      expect(loadConfig(environment(gateways[index])).GATEWAY_INSTANCE_ID).toBe(id);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('publishes 8080 and 8583 through the load balancer only; no gateway publishes a port', () => {
    expect(loadBalancerName).toBeDefined();
    const config = loadConfig(environment(gateway));
    const entryPorts = [config.HTTP_PORT, config.ISO8583_PORT];
    const lbPorts = published(loadBalancer);
    for (const port of entryPorts) expect(lbPorts).toContainEqual({ hostIp: '', host: port, container: port });
    // Anything else it publishes (its statistics page) is on the host's loopback only.
    for (const port of lbPorts.filter((p) => !entryPorts.includes(p.host))) expect(port.hostIp).toBe('127.0.0.1');
    for (const name of gatewayNames) expect({ service: name, ports: services[name].ports ?? [] }).toEqual({ service: name, ports: [] });
    for (const [name, service] of Object.entries(services)) {
      if (name === loadBalancerName) continue;
      for (const port of published(service)) expect({ service: name, host: port.host, entry: entryPorts.includes(port.host) }).toEqual({ service: name, host: port.host, entry: false });
    }
  });

  it('starts the load balancer with every gateway, on docker/haproxy.cfg, from a pinned HAProxy 3 image', () => {
    expect(loadBalancer.image).toMatch(/^haproxy:3\.\d+(\.\d+)?(-[a-z0-9.]+)?$/);
    expect(loadBalancer.volumes).toContain('./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
    // Started, not healthy: its own checks decide which gateways get traffic, so one gateway down does not keep it from starting.
    expect(Object.keys(dependsOn(loadBalancer)).sort()).toEqual([...gatewayNames].sort());
  });

  it('checks the health of every long-running service; the one-shot job has none', () => {
    const dockerfileHealthcheck = /^HEALTHCHECK .*\/health\/ready/m.test(read('docker/Dockerfile'));
    for (const [name, service] of Object.entries(services)) {
      if (name === jobName) {
        expect(service.healthcheck).toEqual({ disable: true });
        continue;
      }
      const own = service.healthcheck;
      const checked = (own !== undefined && !own.disable && (own.test?.length ?? 0) > 0) || (own === undefined && isGatewayImage(service) && dockerfileHealthcheck);
      expect({ name, checked }).toEqual({ name, checked: true });
    }
    // A condition on every dependency: completion for the one-shot job, health for the rest,
    // except the load balancer's on the gateways (its own health checks take over from there).
    for (const [name, service] of Object.entries(services)) {
      expect(Array.isArray(service.depends_on)).toBe(false);
      for (const [target, condition] of Object.entries(dependsOn(service))) {
        const expected = target === jobName ? ['service_completed_successfully'] : name === loadBalancerName && gatewayNames.includes(target) ? ['service_started', 'service_healthy'] : ['service_healthy'];
        expect({ name, target, condition, allowed: expected.includes(condition) }).toEqual({ name, target, condition, allowed: true });
      }
    }
  });

  it('holds no secret in clear: each is a required ${VAR:?} from docker/.env, whose recipe is in docker/README.md', () => {
    const references = [...COMPOSE_TEXT.replace(/^\s*#.*$/gm, '').matchAll(SUBSTITUTION)];
    expect(references.length).toBeGreaterThan(0);
    // Required, never with a default: a default would be a secret in the file.
    for (const [whole, , operator] of references) expect({ whole, operator }).toEqual({ whole, operator: ':?' });
    const names = new Set(references.map((m) => m[1]));
    expect([...RECIPE.keys()].sort()).toEqual([...names].sort());
    const example = read('docker/.env.example');
    expect([...example.matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]])).toEqual([...RECIPE.keys()].map((name) => [name, '']));
    for (const [serviceName, service] of Object.entries(services)) {
      for (const [name, value] of Object.entries(rawEnvironment(service))) {
        if (!/PASSWORD|SECRET|TOKEN|_KEY$|KEY_/.test(name)) continue;
        const isFile = value.startsWith('/');
        const isRequiredSubstitution = /^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$/.test(value);
        expect({ service: serviceName, name, inClear: !isFile && !isRequiredSubstitution }).toEqual({ service: serviceName, name, inClear: false });
      }
    }
    expect(rawEnvironment(gateway).DATABASE_URL).toMatch(/^postgres:\/\/[^:]+:\$\{POSTGRES_PASSWORD:\?[^}]+\}@/);
    expect(COMPOSE_TEXT).not.toMatch(/-----BEGIN|[0-9a-fA-F]{32}/);
    // The places the secrets live are kept out of git and out of the image's build context.
    expect(read('docker/.gitignore').split('\n')).toEqual(expect.arrayContaining(['.env', 'secrets/']));
    expect(read('docker/Dockerfile.dockerignore').split('\n')).toEqual(expect.arrayContaining(['docker/secrets', '**/.env']));
  });
});

/** A section of haproxy.cfg: its keyword (global, defaults, frontend, backend…), name, lines, and the defaults section before it. */
interface HaproxySection {
  kind: string;
  name: string;
  lines: string[];
  defaults?: HaproxySection;
}

/** haproxy.cfg as sections of lines (comments dropped, blanks squeezed): a line that is not indented opens a section. */
function haproxySections(text: string): HaproxySection[] {
  const sections: HaproxySection[] = [];
  let defaults: HaproxySection | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '').trimEnd();
    if (!line.trim()) continue;
    if (!/^\s/.test(line)) {
      const [kind, name = ''] = line.split(/\s+/);
      const section: HaproxySection = { kind, name, lines: [], defaults: kind === 'defaults' ? undefined : defaults };
      if (kind === 'defaults') defaults = section;
      sections.push(section);
    } else {
      sections[sections.length - 1].lines.push(line.trim().replace(/\s+/g, ' '));
    }
  }
  return sections;
}

/** The lines of a section that start with a keyword (`option httpchk`, `timeout tunnel`…), its own first, then its defaults'; each without the keyword. */
function directives(section: HaproxySection, keyword: string): string[] {
  const own = (s: HaproxySection) => s.lines.filter((line) => line === keyword || line.startsWith(`${keyword} `)).map((line) => line.slice(keyword.length).trim());
  return [...own(section), ...(section.defaults ? own(section.defaults) : [])];
}

/** The value in effect: the section's own setting, else its defaults'. */
const setting = (section: HaproxySection, keyword: string) => directives(section, keyword)[0];

const HAPROXY_TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** An HAProxy time (`500`, `10s`, `1h`…) in milliseconds. */
function haproxyTime(value: string): number {
  const [, amount, unit = 'ms'] = /^(\d+)(us|ms|s|m|h|d)?$/.exec(value)!;
  return Number(amount) * HAPROXY_TIME_UNITS[unit];
}

function haproxyServers(backend: HaproxySection): { name: string; host: string; port: number; options: string[] }[] {
  return backend.lines
    .filter((line) => line.startsWith('server '))
    .map((line) => {
      const [, name, address, ...options] = line.split(' ');
      const [, host, port] = /^(.+):(\d+)$/.exec(address)!;
      return { name, host, port: Number(port), options };
    });
}

/** Whether haproxy is installed here: `haproxy -c` validates the file only where it is. */
const HAPROXY_VERSION = (() => {
  const probe = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  return probe.status === 0 ? (/version (\S+)/.exec(probe.stdout)?.[1] ?? 'unknown') : undefined;
})();

describe('docker/haproxy.cfg', () => {
  const CONFIG_PATH = 'docker/haproxy.cfg';
  const sections = haproxySections(read(CONFIG_PATH));
  const config = loadConfig(environment(gateway));
  const frontendOn = (port: number) => {
    const found = sections.filter((s) => (s.kind === 'frontend' || s.kind === 'listen') && directives(s, 'bind').some((bind) => new RegExp(`^\\S*:${port}(\\s|$)`).test(bind)));
    expect({ port, frontends: found.length }).toEqual({ port, frontends: 1 });
    return found[0];
  };
  const backendOf = (frontend: HaproxySection) => {
    const name = setting(frontend, 'default_backend');
    const found = sections.find((s) => s.kind === 'backend' && s.name === name);
    expect({ frontend: frontend.name, backend: found?.name }).toEqual({ frontend: frontend.name, backend: name });
    return found!;
  };

  /** A backend of every gateway, each at its own service name, health-checked on its HTTP readiness endpoint. */
  function expectEveryGatewayChecked(backend: HaproxySection, port: (env: GatewayConfig) => number): void {
    const servers = haproxyServers(backend);
    expect(servers.map((s) => s.host).sort()).toEqual([...gatewayNames].sort());
    expect(new Set(servers.map((s) => s.name)).size).toBe(servers.length);
    for (const server of servers) {
      const gatewayConfig = loadConfig(environment(services[server.host]));
      expect({ server: server.name, port: server.port }).toEqual({ server: server.name, port: port(gatewayConfig) });
      expect(server.options).toContain('check');
      // Checked on the gateway's HTTP port (the server's own port when that is it, else `port`).
      const checkPort = server.options.includes('port') ? Number(server.options[server.options.indexOf('port') + 1]) : server.port;
      expect({ server: server.name, checkPort }).toEqual({ server: server.name, checkPort: gatewayConfig.HTTP_PORT });
    }
    expect(setting(backend, 'option httpchk')).toBe('GET /health/ready');
    expect(setting(backend, 'http-check expect')).toBe('status 200');
    // A gateway marked down is drained, not cut off: what it has in flight finishes.
    const serverOptions = [...directives(backend, 'default-server'), ...backend.lines.filter((l) => l.startsWith('server '))].join('\n');
    expect(serverOptions).not.toMatch(/on-marked-down\s+shutdown-sessions/);
  }

  it('checks the endpoint the gateway serves as its readiness probe, the same the image health check uses', () => {
    const controller = read('src/channels/http/health.controller.ts');
    expect(controller).toMatch(/@Controller\('health'\)/);
    expect(controller).toMatch(/@Get\('ready'\)/);
    expect(read('docker/Dockerfile')).toMatch(/^HEALTHCHECK .*\/health\/ready/m);
  });

  it('serves the signed JSON channel in HTTP mode on 8080, round robin over every gateway', () => {
    const frontend = frontendOn(config.HTTP_PORT);
    expect(setting(frontend, 'mode')).toBe('http');
    const backend = backendOf(frontend);
    expect(setting(backend, 'mode')).toBe('http');
    expect(setting(backend, 'balance')).toBe('roundrobin');
    expectEveryGatewayChecked(backend, (c) => c.HTTP_PORT);
  });

  it('serves ISO 8583 in TCP mode on 8583, least connections over every gateway, and outlasts the gateway idle timeout', () => {
    const frontend = frontendOn(config.ISO8583_PORT);
    expect(setting(frontend, 'mode')).toBe('tcp');
    const backend = backendOf(frontend);
    expect(setting(backend, 'mode')).toBe('tcp');
    expect(setting(backend, 'balance')).toBe('leastconn');
    expectEveryGatewayChecked(backend, (c) => c.ISO8583_PORT);
    // An ATM switch connection stays open: the gateway closes it after ISO8583_IDLE_TIMEOUT_MS of
    // silence, so HAProxy's limit is longer and never the one that cuts a working switch off.
    const tunnel = setting(backend, 'timeout tunnel') ?? setting(frontend, 'timeout tunnel');
    expect(tunnel).toBeDefined();
    for (const instance of gateways) expect(haproxyTime(tunnel)).toBeGreaterThan(loadConfig(environment(instance)).ISO8583_IDLE_TIMEOUT_MS);
  });

  it('binds only the ports compose publishes, and starts without resolving the gateways (their addresses come from Docker DNS at run time)', () => {
    const bound = sections.flatMap((s) => directives(s, 'bind')).map((bind) => Number(/:(\d+)(\s|$)/.exec(bind)![1]));
    expect(bound.sort()).toEqual(published(loadBalancer).map((p) => p.container).sort());
    for (const backend of sections.filter((s) => s.kind === 'backend')) {
      const serverDefaults = directives(backend, 'default-server').join(' ');
      expect(/init-addr (\S+)/.exec(serverDefaults)?.[1].split(',')).toContain('none');
      const resolvers = /resolvers (\S+)/.exec(serverDefaults)?.[1];
      expect(sections.some((s) => s.kind === 'resolvers' && s.name === resolvers)).toBe(true);
    }
  });

  (HAPROXY_VERSION ? it : it.skip)(
    HAPROXY_VERSION
      ? `is a valid configuration for haproxy -c (HAProxy ${HAPROXY_VERSION} on this machine)`
      : 'is a valid configuration for haproxy -c: SKIPPED, haproxy is not installed here (apt-get install haproxy runs it)',
    () => {
      const check = spawnSync('haproxy', ['-c', '-f', join(ROOT, CONFIG_PATH)], { encoding: 'utf8' });
      const output = `${check.stdout}${check.stderr}`;
      expect({ status: check.status, output }).toEqual({ status: 0, output: expect.stringContaining('Configuration file is valid') });
      // The one warning expected here: the gateways' names resolve only on the compose network.
      const warnings = output.split('\n').filter((line) => /\[(WARNING|ALERT)\]/.test(line));
      for (const warning of warnings) expect(warning).toMatch(/could not resolve address '([^']+)'/);
    },
  );
});

/** The exported metrics of the gateway, built as test/docs.spec.ts builds them: names (histograms with their series) and label names. */
const gatewayMetrics = new GatewayMetrics({ outboxBacklog: async () => ({ count: 0, oldestAgeSeconds: 0, parked: 0 }), isoConnections: () => 0, ownership: () => ({ liveInstances: 1, relaySlots: [], partitions: {} }) });
async function exportedMetrics(): Promise<Map<string, Set<string>>> {
  const exported = new Map<string, Set<string>>();
  for (const metric of await gatewayMetrics.registry.getMetricsAsJSON()) {
    const labels = new Set((gatewayMetrics.registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] }).labelNames ?? []);
    exported.set(metric.name, labels);
    if (String(metric.type) === 'histogram') {
      exported.set(`${metric.name}_bucket`, new Set([...labels, 'le']));
      for (const suffix of ['_sum', '_count']) exported.set(metric.name + suffix, labels);
    }
  }
  return exported;
}

/** Every label a PromQL expression names: in selectors, in `by`/`without`/`on`/`ignoring` lists, and in label_values(). */
function labelsNamed(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const inSelectors = [...withoutStrings.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1].matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]));
  const inLists = [...withoutStrings.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(',').map((l) => l.trim()).filter(Boolean));
  const inLabelValues = [...withoutStrings.matchAll(/label_values\([^,]*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)/g)].map((m) => m[1]);
  return [...inSelectors, ...inLists, ...inLabelValues];
}

/** Labels every scraped series has: the target's, from prometheus.yml. */
const TARGET_LABELS = ['instance', 'job'];

/**
 * What an expression (with its legend, for the dashboard) names that the gateway does not export: every
 * `absher_gateway_*` name must be a series it exports, and where the expression reads only the gateway's
 * series (and `up`), every label it names must be one of theirs.
 */
function unknownNames(expr: string, exported: Map<string, Set<string>>, legend = ''): string[] {
  const names = [...new Set([...expr.matchAll(/\babsher_gateway_[a-z0-9_]+/g)].map((m) => m[0]))];
  const unknown = names.filter((name) => !exported.has(name));
  const others = [...expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g)].map((m) => m[1]).filter((name) => !name.startsWith('absher_gateway_') && name !== 'up');
  if (unknown.length > 0 || others.length > 0) return unknown;
  const known = new Set([...TARGET_LABELS, ...names.flatMap((name) => [...exported.get(name)!])]);
  const legendLabels = [...legend.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)].map((m) => m[1]);
  return [...labelsNamed(expr), ...legendLabels].filter((label) => label !== '__name__' && !known.has(label)).map((label) => `label ${label} in ${expr}`);
}

/** Whether promtool is installed here: it validates the Prometheus files only where it is. */
const PROMTOOL_VERSION = (() => {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? (/version (\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1] ?? 'unknown') : undefined;
})();
const withPromtool = (title: string) => (PROMTOOL_VERSION ? `${title} (promtool ${PROMTOOL_VERSION} on this machine)` : `${title}: SKIPPED, promtool is not installed here (Debian's prometheus package has it)`);

function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** The `--flag=value` options of a command. */
function flags(args: string[]): Record<string, string> {
  return Object.fromEntries(args.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split(/=(.*)/s, 2) as [string, string]));
}

const prometheusName = Object.keys(services).find((name) => /^prom\/prometheus:/.test(services[name].image ?? ''))!;
const prometheus = services[prometheusName];
const grafanaName = Object.keys(services).find((name) => /^grafana\/grafana:/.test(services[name].image ?? ''))!;
const grafana = services[grafanaName];

interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  scrape_interval?: string;
  static_configs?: { targets: string[]; labels?: Record<string, string> }[];
  relabel_configs?: { source_labels?: string[]; regex?: string; target_label?: string; replacement?: string; action?: string; separator?: string }[];
}
const PROMETHEUS_CONFIG: { global?: { scrape_interval?: string; evaluation_interval?: string }; rule_files?: string[]; scrape_configs: ScrapeConfig[] } = parse(read('docker/prometheus/prometheus.yml'));

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const ALERTS_TEXT = read('docker/prometheus/alerts.yml');
const ALERT_RULES: AlertRule[] = (parse(ALERTS_TEXT) as { groups: { name: string; rules: AlertRule[] }[] }).groups.flatMap((group) => group.rules);

/** The Prometheus rules block of docs/operations-runbook.md's "Alerts" section. */
function runbookAlertRules(): string {
  const runbook = read('docs/operations-runbook.md');
  const block = /^## Alerts\n[\s\S]*?^```yaml\n([\s\S]*?)^```$/m.exec(runbook);
  if (!block) throw new Error('docs/operations-runbook.md has no ```yaml block under "## Alerts"');
  return block[1];
}

/** Where Prometheus takes a target's instance label from: its relabel rules applied to the address. */
function instanceLabel(job: ScrapeConfig, address: string): string {
  const labels: Record<string, string> = { __address__: address, job: job.job_name };
  for (const rule of job.relabel_configs ?? []) {
    expect(rule.action ?? 'replace').toBe('replace');
    const value = (rule.source_labels ?? []).map((name) => labels[name] ?? '').join(rule.separator ?? ';');
    const match = new RegExp(`^(?:${rule.regex ?? '(.*)'})$`).exec(value);
    if (match && rule.target_label) labels[rule.target_label] = (rule.replacement ?? '$1').replace(/\$(\d+)|\$\{(\d+)\}/g, (_whole, a, b) => match[Number(a ?? b)] ?? '');
  }
  return labels.instance ?? address;
}

describe('docker/prometheus', () => {
  const job = PROMETHEUS_CONFIG.scrape_configs.find((c) => (c.static_configs ?? []).some((s) => s.targets.some((t) => gatewayNames.includes(t.split(':')[0]))));

  it('runs a pinned official Prometheus on docker/prometheus/, on the host loopback only, with data in a volume', () => {
    expect(prometheus.image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    const options = flags(command(prometheus));
    const mount = mountOf(prometheus, './prometheus');
    expect(mount).toEqual({ target: expect.stringMatching(/^\//), readOnly: true });
    expect(options['config.file']).toBe(`${mount!.target}/prometheus.yml`);
    const dataVolume = prometheus.volumes?.find((v) => v.endsWith(`:${options['storage.tsdb.path']}`));
    expect(dataVolume?.split(':')[0]).toMatch(/^[a-z][a-z0-9-]*$/);
    expect(onLoopbackOnly(prometheus)).toBe(true);
    // busybox image: wget, on Prometheus's own readiness endpoint.
    expect(healthcheckCommand(prometheus)).toMatch(/^wget .*http:\/\/127\.0\.0\.1:9090\/-\/(ready|healthy)\b/);
  });

  it('scrapes /metrics on the management port of every gateway every 15 s, each labelled with its name', () => {
    expect(job).toBeDefined();
    expect(job!.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job!.scrape_interval ?? PROMETHEUS_CONFIG.global?.scrape_interval).toBe('15s');
    const targets = job!.static_configs!.flatMap((s) => s.targets);
    const expected = gatewayNames.map((name) => {
      const config = loadConfig(environment(services[name]));
      // Listening on the stack's network, not the loopback of its container.
      expect({ name, host: config.MANAGEMENT_HOST }).toEqual({ name, host: '0.0.0.0' });
      expect(config.MANAGEMENT_PORT).not.toBe(0);
      return `${name}:${config.MANAGEMENT_PORT}`;
    });
    expect([...targets].sort()).toEqual([...expected].sort());
    for (const target of targets) {
      const name = target.split(':')[0];
      expect(instanceLabel(job!, target)).toBe(environment(services[name]).GATEWAY_INSTANCE_ID);
    }
  });

  it('leaves the management port unpublished: no gateway publishes a port, and HAProxy does not forward to it', () => {
    for (const name of gatewayNames) expect({ name, ports: services[name].ports ?? [] }).toEqual({ name, ports: [] });
    const managementPorts = new Set(gatewayNames.map((name) => loadConfig(environment(services[name])).MANAGEMENT_PORT));
    const forwarded = read('docker/haproxy.cfg').split('\n').filter((line) => /^\s*server\s/.test(line)).map((line) => Number(/:(\d+)\b/.exec(line)![1]));
    for (const port of forwarded) expect(managementPorts.has(port)).toBe(false);
  });

  it('loads docker/prometheus/alerts.yml, which is the runbook’s alert rules block verbatim', () => {
    expect(PROMETHEUS_CONFIG.rule_files).toEqual(['alerts.yml']);
    // The file's own header (comment lines) first, then the block as it stands in the runbook.
    const body = ALERTS_TEXT.replace(/^(#.*\n)+/, '');
    expect(body).toBe(runbookAlertRules());
    expect(ALERT_RULES.length).toBeGreaterThan(5);
    for (const rule of ALERT_RULES) expect({ alert: rule.alert, severity: rule.labels?.severity }).toEqual({ alert: rule.alert, severity: expect.stringMatching(/^(critical|warning)$/) });
  });

  it('selects in its alert rules only the jobs it scrapes (GatewayDown would otherwise never fire)', () => {
    const jobs = new Set(PROMETHEUS_CONFIG.scrape_configs.map((c) => c.job_name));
    const selected = ALERT_RULES.flatMap((rule) => [...rule.expr.matchAll(/\bjob\s*=\s*"([^"]*)"/g)].map((m) => m[1]));
    expect(selected.length).toBeGreaterThan(0);
    for (const name of selected) expect({ job: name, scraped: jobs.has(name) }).toEqual({ job: name, scraped: true });
  });

  it('names in its alert rules only metrics and labels the gateway exports', async () => {
    const exported = await exportedMetrics();
    const unknown = ALERT_RULES.flatMap((rule) => unknownNames(rule.expr, exported).map((name) => `${rule.alert}: ${name}`));
    expect(unknown).toEqual([]);
  });

  (PROMTOOL_VERSION ? it : it.skip)(withPromtool('is a valid configuration, with valid rules, for promtool check'), () => {
    const config = promtool('check', 'config', join(ROOT, 'docker/prometheus/prometheus.yml'));
    expect(config).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
    const rules = promtool('check', 'rules', join(ROOT, 'docker/prometheus/alerts.yml'));
    expect(rules).toEqual({ status: 0, output: expect.stringContaining(`SUCCESS: ${ALERT_RULES.length} rules found`) });
  });
});

interface GrafanaTarget {
  datasource?: { type?: string; uid?: string };
  expr?: string;
  legendFormat?: string;
  refId?: string;
}
interface GrafanaPanel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: GrafanaTarget[];
  panels?: GrafanaPanel[];
}
interface GrafanaDashboard {
  uid: string;
  title: string;
  panels: GrafanaPanel[];
  templating?: { list: { name: string; type: string; datasource?: { type?: string; uid?: string }; query?: string | { query: string } }[] };
}

describe('docker/grafana', () => {
  const PROVISIONING = 'docker/grafana/provisioning';
  const DASHBOARDS = 'docker/grafana/dashboards';
  const yamlFiles = (dir: string) => readdirSync(join(ROOT, dir)).filter((name) => /\.ya?ml$/.test(name)).map((name) => `${dir}/${name}`);
  const datasources: { name: string; uid: string; type: string; url: string; access?: string; isDefault?: boolean; jsonData?: { timeInterval?: string } }[] = yamlFiles(`${PROVISIONING}/datasources`).flatMap((file) => parse(read(file)).datasources ?? []);
  const providers: { name: string; type: string; options: { path: string } }[] = yamlFiles(`${PROVISIONING}/dashboards`).flatMap((file) => parse(read(file)).providers ?? []);
  const dashboardFiles = readdirSync(join(ROOT, DASHBOARDS)).filter((name) => name.endsWith('.json'));
  const dashboards = new Map(dashboardFiles.map((name) => [name, JSON.parse(read(`${DASHBOARDS}/${name}`)) as GrafanaDashboard]));
  /** Every panel, those in collapsed rows included. */
  const panelsOf = (dashboard: GrafanaDashboard) => dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
  /** Every PromQL query of a dashboard, with its legend, Grafana's variables given a value Prometheus accepts. */
  const queriesOf = (dashboard: GrafanaDashboard) => [
    ...panelsOf(dashboard).flatMap((panel) => (panel.targets ?? []).map((target) => ({ where: `${panel.title} ${target.refId}`, expr: target.expr ?? '', legend: target.legendFormat ?? '' }))),
    ...(dashboard.templating?.list ?? []).filter((v) => v.type === 'query').map((v) => ({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : (v.query?.query ?? ''), legend: '' })),
  ].map((query) => ({ ...query, promql: query.expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '1m').replace(/\$\{?\w+\}?/g, '.*') }));

  it('runs a pinned official Grafana, behind its login with the admin password from docker/.env, no anonymous access, on the host loopback only', () => {
    expect(grafana.image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
    const raw = rawEnvironment(grafana);
    expect(raw.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}$/);
    expect(raw.GF_AUTH_ANONYMOUS_ENABLED).toBe('false');
    expect(raw.GF_USERS_ALLOW_SIGN_UP).toBe('false');
    expect(raw.GF_AUTH_DISABLE_LOGIN_FORM ?? 'false').toBe('false');
    expect(onLoopbackOnly(grafana)).toBe(true);
    expect(published(grafana).map((p) => p.container)).toEqual([3000]);
    // Alpine image: busybox wget, on Grafana's own health endpoint.
    expect(healthcheckCommand(grafana)).toMatch(/^wget .*http:\/\/127\.0\.0\.1:3000\/api\/health\b/);
    expect(dependsOn(grafana)).toEqual({ [prometheusName]: 'service_healthy' });
    expect(grafana.volumes?.some((v) => v.endsWith(':/var/lib/grafana'))).toBe(true);
  });

  it('mounts its provisioning files and dashboards read-only, every file valid YAML or JSON', () => {
    for (const kind of ['datasources', 'dashboards']) {
      expect(mountOf(grafana, `./grafana/provisioning/${kind}`)).toEqual({ target: `/etc/grafana/provisioning/${kind}`, readOnly: true });
      const files = readdirSync(join(ROOT, PROVISIONING, kind));
      expect(files.length).toBeGreaterThan(0);
      for (const file of files) {
        expect({ file, yaml: /\.ya?ml$/.test(file) }).toEqual({ file, yaml: true });
        expect(parse(read(`${PROVISIONING}/${kind}/${file}`)).apiVersion).toBe(1);
      }
    }
    expect(mountOf(grafana, './grafana/dashboards')?.readOnly).toBe(true);
    expect(dashboardFiles.length).toBeGreaterThan(0);
  });

  it('has the stack’s Prometheus as its one, default data source', () => {
    expect(datasources).toHaveLength(1);
    const [source] = datasources;
    expect(source).toMatchObject({ type: 'prometheus', access: 'proxy', isDefault: true });
    const url = new URL(source.url);
    const listen = flags(command(prometheus))['web.listen-address'] ?? ':9090';
    expect({ host: url.hostname, port: url.port }).toEqual({ host: prometheusName, port: listen.split(':').pop() });
    expect(source.jsonData?.timeInterval).toBe(PROMETHEUS_CONFIG.global?.scrape_interval);
  });

  it('loads the dashboards from where docker/grafana/dashboards is mounted, and opens on the gateway dashboard', () => {
    const target = mountOf(grafana, './grafana/dashboards')!.target;
    expect(providers.map((p) => ({ type: p.type, path: p.options.path }))).toEqual([{ type: 'file', path: target }]);
    const home = rawEnvironment(grafana).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    expect(home.startsWith(`${target}/`)).toBe(true);
    expect(dashboardFiles).toContain(home.slice(target.length + 1));
  });

  it('has dashboards Grafana can load: unique uids and panel ids, panels within the 24-column grid, every query on the provisioned data source', () => {
    const [source] = datasources;
    expect(new Set([...dashboards.values()].map((d) => d.uid)).size).toBe(dashboards.size);
    for (const [file, dashboard] of dashboards) {
      expect({ file, uid: dashboard.uid, title: dashboard.title }).toEqual({ file, uid: expect.stringMatching(/^[A-Za-z0-9_-]{1,40}$/), title: expect.any(String) });
      const panels = panelsOf(dashboard);
      expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
      for (const panel of panels) {
        const { x, w } = panel.gridPos;
        expect({ file, panel: panel.title, fits: x >= 0 && w > 0 && x + w <= 24 }).toEqual({ file, panel: panel.title, fits: true });
        if (panel.type === 'row') continue;
        expect({ file, panel: panel.title, datasource: panel.datasource?.uid }).toEqual({ file, panel: panel.title, datasource: source.uid });
        expect({ file, panel: panel.title, queries: (panel.targets ?? []).length > 0 }).toEqual({ file, panel: panel.title, queries: true });
        for (const target of panel.targets ?? []) expect({ file, panel: panel.title, datasource: target.datasource?.uid ?? source.uid }).toEqual({ file, panel: panel.title, datasource: source.uid });
      }
      for (const variable of dashboard.templating?.list ?? []) if (variable.datasource) expect(variable.datasource.uid).toBe(source.uid);
    }
  });

  it('shows what the runbook asks to watch, from metrics and labels the gateway exports', async () => {
    const exported = await exportedMetrics();
    const dashboard = dashboards.get('absher-gateway.json')!;
    const queries = queriesOf(dashboard);
    const unknown = queries.flatMap((q) => unknownNames(q.expr, exported, q.legend).map((name) => `${q.where}: ${name}`));
    expect(unknown).toEqual([]);
    const named = new Set(queries.flatMap((q) => [...q.expr.matchAll(/\babsher_gateway_[a-z0-9_]+/g)].map((m) => m[0])));
    expect([...named]).toEqual(
      expect.arrayContaining([
        'absher_gateway_requests_total',
        'absher_gateway_decision_latency_seconds_bucket',
        'absher_gateway_outbox_backlog',
        'absher_gateway_outbox_oldest_age_seconds',
        'absher_gateway_outbox_parked',
        'absher_gateway_consumer_lag',
        'absher_gateway_instances_live',
        'absher_gateway_relay_slots_owned',
        'absher_gateway_iso8583_connections_open',
        'absher_gateway_process_resident_memory_bytes',
        'absher_gateway_nodejs_eventloop_lag_p99_seconds',
      ]),
    );
    // The latency percentiles are worked out from the histogram's buckets, by le.
    const quantiles = queries.filter((q) => q.expr.includes('absher_gateway_decision_latency_seconds_bucket')).map((q) => /histogram_quantile\((0\.\d+),/.exec(q.expr)?.[1]);
    expect(quantiles).toEqual(expect.arrayContaining(['0.5', '0.99']));
    // Requests are broken down by bank, channel and outcome, and errors by code.
    expect(queries.some((q) => /sum by \(bank, channel, outcome\) \(rate\(absher_gateway_requests_total/.test(q.expr))).toBe(true);
    expect(queries.some((q) => /by \(error_code\) \(rate\(absher_gateway_requests_total/.test(q.expr))).toBe(true);
    // Filtered by the scrape job's instances (its variable reads the job Prometheus scrapes).
    const job = PROMETHEUS_CONFIG.scrape_configs[0].job_name;
    for (const q of queries.filter((q) => /\bup\{/.test(q.expr))) expect(q.expr).toContain(`job="${job}"`);
  });

  (PROMTOOL_VERSION ? it : it.skip)(withPromtool('has queries that are valid PromQL for promtool'), () => {
    const dashboard = dashboards.get('absher-gateway.json')!;
    // promtool parses a query only within a rule: each becomes a recording rule of a throwaway file.
    const queries = queriesOf(dashboard).filter((q) => !q.expr.startsWith('label_values('));
    const rules = { groups: [{ name: 'dashboard', rules: queries.map((q, index) => ({ record: `dashboard:query_${index}`, expr: q.promql })) }] };
    const dir = mkdtempSync(join(tmpdir(), 'dashboard-promql-'));
    try {
      writeFileSync(join(dir, 'rules.yml'), JSON.stringify(rules));
      expect(promtool('check', 'rules', join(dir, 'rules.yml'))).toEqual({ status: 0, output: expect.stringContaining(`SUCCESS: ${queries.length} rules found`) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docker/README.md', () => {
  it('explains how several instances share the work, with the consumer groups the code uses', () => {
    const section = /^## Several instances\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(README)?.[1] ?? '';
    expect(section).not.toBe('');
    for (const group of [REGISTRATIONS_GROUP, ACTIVATION_RESULTS_GROUP]) expect(section).toContain(`\`${group}\``);
    for (const name of gatewayNames) expect(section).toContain(`\`${name}\``);
    expect(section).toMatch(/advisory lock/);
    expect(section).toMatch(/X-Request-Id/);
  });
});

/** The Dockerfile as instructions (continuations joined, comments dropped), per stage. */
function dockerfileStages(text: string): { from: string; instructions: string[] }[] {
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const stages: { from: string; instructions: string[] }[] = [];
  for (const instruction of instructions) {
    if (/^FROM\s/i.test(instruction)) stages.push({ from: instruction, instructions: [] });
    else stages[stages.length - 1].instructions.push(instruction);
  }
  return stages;
}

describe('docker/Dockerfile', () => {
  const stages = dockerfileStages(read('docker/Dockerfile'));
  const build = stages[0];
  const final = stages[stages.length - 1];
  const buildName = /\sAS\s+(\S+)/i.exec(build.from)?.[1];
  const copiedInto = (stage: { instructions: string[] }) =>
    stage.instructions.filter((i) => /^COPY\s/.test(i) && !/--from=/.test(i)).flatMap((i) => i.replace(/^COPY\s+(--\S+\s+)*/, '').split(/\s+/).slice(0, -1));

  it('is multi-stage: built in one, run from another that takes only the results', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(buildName).toBeDefined();
    const fromBuild = final.instructions.filter((i) => i.startsWith(`COPY --from=${buildName} `)).map((i) => i.split(/\s+/)[2]);
    expect(fromBuild.sort()).toEqual(['/app/dist', '/app/node_modules']);
  });

  it('installs exactly the locked dependencies, builds, then drops the development ones', () => {
    const runs = build.instructions.filter((i) => i.startsWith('RUN ')).join(' && ');
    const order = ['npm ci', 'npm run build', 'npm prune --omit=dev'].map((step) => runs.indexOf(step));
    expect(order.every((position) => position >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(copiedInto(build)).toEqual(expect.arrayContaining(['package.json', 'package-lock.json']));
  });

  it('can compile the native addons among the dependencies (pkcs11js) before npm ci', () => {
    const dependencies = Object.keys(JSON.parse(read('package.json')).dependencies as Record<string, string>);
    const native = dependencies.filter((name) => existsSync(join(ROOT, 'node_modules', name, 'binding.gyp')));
    expect(native).toContain('pkcs11js');
    const runs = build.instructions.filter((i) => i.startsWith('RUN '));
    const toolchain = runs.findIndex((i) => /apt-get install[^&]*\bpython3\b/.test(i) && /\bmake\b/.test(i) && /\bg\+\+/.test(i));
    expect(toolchain).toBeGreaterThanOrEqual(0);
    expect(toolchain).toBeLessThan(runs.findIndex((i) => i.includes('npm ci')));
  });

  it('gives `npm run build` everything it reads', () => {
    const buildScript: string = JSON.parse(read('package.json')).scripts.build;
    const tsconfigBuild = JSON.parse(read('tsconfig.build.json'));
    const needed = [
      ...[...buildScript.matchAll(/(?:-p\s+|node\s+)(\S+)/g)].map((m) => m[1]),
      tsconfigBuild.extends.replace(/^\.\//, ''),
      ...(tsconfigBuild.include as string[]),
    ];
    expect(needed).toEqual(expect.arrayContaining(['tsconfig.build.json', 'scripts/copy-assets.js', 'tsconfig.json', 'src', 'libs', 'tools']));
    expect(copiedInto(build)).toEqual(expect.arrayContaining(needed));
  });

  it('leaves the development broker and the development PKI out', () => {
    const all = stages.flatMap((s) => s.instructions).join('\n');
    expect(all).not.toMatch(/kafka:build|build-kafka-broker|kafka-broker|\.cache|prestart/);
    expect(copiedInto(final)).not.toContain('config');
    expect(copiedInto(final).some((path) => path.startsWith('config'))).toBe(false);
  });

  it('runs the built gateway as a non-root user, with what it reads at run time, ports 8080 and 8583 and a readiness health check', () => {
    const users = final.instructions.filter((i) => i.startsWith('USER '));
    expect(users.length).toBeGreaterThan(0);
    expect(users[users.length - 1]).not.toMatch(/^USER\s+(root|0)(:|$)/);
    expect(final.instructions).toContain('ENV NODE_ENV=production');
    // package.json marks the project root (src/common/project-root.ts); contracts/iso8583 is read by libs/iso8583.
    expect(copiedInto(final)).toEqual(expect.arrayContaining(['package.json', 'contracts']));
    expect(existsSync(join(ROOT, 'contracts/iso8583/fields.json'))).toBe(true);
    const exposed = final.instructions.filter((i) => i.startsWith('EXPOSE ')).flatMap((i) => i.split(/\s+/).slice(1));
    const defaults = new GatewayConfig();
    expect(exposed.sort()).toEqual([String(defaults.HTTP_PORT), String(defaults.ISO8583_PORT)].sort());
    expect(final.instructions.find((i) => i.startsWith('HEALTHCHECK '))).toMatch(/\/health\/ready/);
    const cmd = final.instructions.find((i) => i.startsWith('CMD '))!;
    expect(JSON.parse(cmd.slice('CMD '.length))).toEqual(['node', 'dist/src/main.js']);
    expect(existsSync(join(ROOT, 'src/main.ts'))).toBe(true);
  });
});
