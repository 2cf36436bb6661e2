import { ChildProcess, spawn } from 'node:child_process';
import { Kafka, logLevel } from 'kafkajs';
import { cpus, totalmem } from 'node:os';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/common/project-root';
import { BenchEnvironment, Customer, GatewayInstance, KEY_STORES, KeyStoreKind, peakRssMb } from './bench-environment';
import { summariseCpuProfile } from './cpu-profile';
import { CLOCK_TICKS, CpuFigures, CpuSource, measureCpu, processCpu, processesNamedCpu, processTreeCpu, selfCpu } from './cpu';
import { ActivationTopicWatcher, cryptoRates, LoadFigures, prepareJsonRequests, round, runHttpLoad, runIsoLoad } from './load';
import { OPEN_LOOP_TIMEOUT_MS, OpenLoopFigures, runOpenLoopHttp, runOpenLoopIso } from './open-loop';
import { MAX_SEEDED_REGISTRATIONS, REPLAYED_VERSION, ReplayFigures, replayRegistrations, rowsAtReplayedVersion, seedRegistrationsTable, vacuumRegistrations } from './seeded-registrations';
import { defineTool, readOptions, reportUsageError, UsageError } from '../options';

/** Where the key stores are compared: loads that keep the gateway busy, so that its CPU per activation is the requests' and not its timers' (one client's would be mostly timers). */
const KEY_STORE_HTTP_LEVELS = [16, 64];
const KEY_STORE_ISO_LEVELS = [8];

/**
 * `npm run bench`: drives the built gateway (its own process, real
 * PostgreSQL, the Kafka broker) and prints what it sustains, next to the
 * ceilings measured on the same machine in the same run, then the same load
 * on two gateway instances (same database, same broker, a round-robin client)
 * next to one. Each step also reports the CPU time per activation of each
 * gateway process, of PostgreSQL, of the broker and of the load generator
 * (/proc/<pid>/stat). Writes the figures as JSON to bench/results/.
 *
 * With --rate / --rate-iso, open-loop steps at those rates (open-loop.ts)
 * replace the closed-loop ones, the comparison and the ceilings; with
 * --key-store software,pkcs11, a comparison of the two key stores does. With
 * --registrations N, N more registrations are seeded into the read model
 * first, and the registrations consumer's replay throughput is measured
 * before the load steps (seeded-registrations.ts).
 */
const TOOL = defineTool({
  name: 'bench',
  summary: `Drives the built gateway (its own process, real PostgreSQL, the Kafka broker)
and prints what it sustains next to the ceilings measured in the same run, then
one instance against two, with the CPU each process spends per activation.
With --rate or --rate-iso, it sends at fixed rates instead (open loop) and
reports the latency from each request's scheduled time. With --registrations,
it decides against a larger read model and times a replay of it through the
registrations consumer. With --key-store software,pkcs11, it compares the
gateway's keys in memory with keys in a PKCS#11 token. Writes the figures as
JSON to bench/results/.`,
  options: {
    seconds: { type: 'integer', value: 'N', min: 1, help: 'length of each load step (default 8; 2 with --quick)' },
    quick: { type: 'boolean', help: '2 s steps and fewer levels: a smoke run, not a measurement' },
    'no-multi': { type: 'boolean', help: 'skip the one-instance-vs-two step (a second gateway, its own ports and GATEWAY_INSTANCE_ID, next to the first)' },
    rate: {
      type: 'string',
      value: 'N[,N…]',
      help: "open loop, instead of the closed-loop steps, the two-instance comparison and the ceilings: signed JSON sent on a fixed schedule, N requests per second whatever the answers, one step per rate (e.g. 1000,2000); latencies count from each request's scheduled time, so a queue anywhere counts. Up to N/10 keep-alive connections (16 to 512). ISO 8583 runs at the same rates unless --rate-iso is given",
    },
    'rate-iso': {
      type: 'string',
      value: 'N[,N…]',
      help: `open loop for ISO 8583: 0200s on a fixed schedule, N per second, one step per rate (e.g. 4000), pipelined over one connection per 500/s (2 to 16). Given alone, only ISO 8583 runs. Unanswered requests are abandoned ${OPEN_LOOP_TIMEOUT_MS / 1000} s after their scheduled time, in either channel, and counted as timeouts`,
    },
    'cpu-prof': {
      type: 'string',
      value: 'DIR',
      help: "each gateway process writes a V8 CPU profile (node --cpu-prof) to DIR/<instance>.cpuprofile when the bench stops it; the bench prints where each one's busy time went, by package or file of ours and by function; open a profile in Chrome's DevTools for the call trees (default: off)",
    },
    'key-store': {
      type: 'string',
      value: 'STORE[,STORE]',
      help: `where the gateways keep their secret keys (KEY_STORE): software (default), or pkcs11: a SoftHSM2 token of the bench's own, the signing and hash keys made in it, the banks' MAC keys imported with mac-key import. Given both (software,pkcs11), the usual steps give way to a comparison: signed JSON at ${KEY_STORE_HTTP_LEVELS.join(' and ')} clients and ISO 8583 at ${KEY_STORE_ISO_LEVELS.join(', ')} connections on a gateway of each in turn, software first (same database, broker and customers), then a table of both side by side with the difference in the gateway's CPU per activation; not with --rate or --rate-iso`,
    },
    registrations: {
      type: 'integer',
      value: 'N',
      min: 1,
      max: MAX_SEEDED_REGISTRATIONS,
      help: "seed N registrations straight into PostgreSQL before the load steps (the bench's customers are still registered through Kafka), so decisions run against a read model that large; first, publish a replay of all N (versions above the stored ones) to the running gateway and time its registrations consumer applying them (registrations/s). Default: off",
    },
  },
  more: `Examples: --rate 2000 --rate-iso 4000 (the targets); --rate 1000 (request to
Kafka at 1,000/s); --rate 500,1000,2000 --rate-iso 2000,4000 --seconds 5;
--registrations 1000000 --quick.

Environment: BENCH_POSTGRES_URL (an admin connection to PostgreSQL; the
benchmark creates and drops a database of its own; default
postgres://postgres@127.0.0.1:5432/postgres), KAFKA_BROKERS (a real
cluster; default: the development broker), KAFKA_COMPRESSION (passed on to
the gateways: the relay's codec, gzip unless set).`,
});
const options = readOptions(TOOL);
/** The usage error every tool gives for a bad value. */
const usageError = (message: string): never => process.exit(reportUsageError(TOOL, new UsageError(message)));
/** A list of rates, or a usage error. */
function rates(name: 'rate' | 'rate-iso', text: string | undefined): number[] {
  if (text === undefined) return [];
  const values = text.split(',').map((part) => part.trim());
  if (values.every((value) => /^[0-9]+$/.test(value) && Number(value) >= 1 && Number(value) <= 100_000)) return values.map(Number);
  return usageError(`--${name} must be rates per second from 1 to 100000, separated by commas (got ${JSON.stringify(text)})`);
}
const JSON_RATES = rates('rate', options.rate);
const ISO_RATES = options['rate-iso'] === undefined ? JSON_RATES : rates('rate-iso', options['rate-iso']);
const openLoop = JSON_RATES.length + ISO_RATES.length > 0;
/** The key stores to run, software first whatever the order given (see compareKeyStores); or a usage error. */
function keyStores(text: string): KeyStoreKind[] {
  const given = text.split(',').map((part) => part.trim());
  if (!given.every((name) => (KEY_STORES as readonly string[]).includes(name))) return usageError(`--key-store takes software, pkcs11 or both, separated by a comma (got ${JSON.stringify(text)})`);
  return KEY_STORES.filter((store) => given.includes(store));
}
const KEY_STORE_RUNS = keyStores(options['key-store'] ?? 'software');
const comparingKeyStores = KEY_STORE_RUNS.length > 1;
if (comparingKeyStores && openLoop) usageError('--key-store software,pkcs11 compares closed-loop steps: it does not go with --rate or --rate-iso');
const seededRegistrations = options.registrations;
const quick = options.quick;
const multi = !options['no-multi'];
const seconds = options.seconds ?? (quick ? 2 : 8);
const HTTP_LEVELS = quick ? [1, 64] : [1, 16, 64, 256];
const ISO_LEVELS = quick ? [8] : [1, 8, 32];
/** Where one instance and two are compared (the one-instance figures above are reused where they exist). */
const MULTI_HTTP_LEVELS = [16, 64];
const MULTI_ISO_LEVELS = [8];
const ISO_WINDOW = 16;
/** Enough keep-alive connections for 100 ms per answer at the rate; past them requests wait in the generator (counted). */
const openLoopHttpConnections = (rate: number) => Math.min(512, Math.max(16, Math.ceil(rate / 10)));
/** A few pipelined connections, as switches keep: each carries 500/s, within the gateway's 64 in flight per connection up to 128 ms per answer. */
const openLoopIsoConnections = (rate: number) => Math.min(16, Math.max(2, Math.ceil(rate / 500)));
const CUSTOMERS = quick ? 2000 : 20_000;
/** Requests signed ahead per client-second: more than the gateway can take, so no step runs dry. */
const SIGNED_PER_SECOND = 4000;

const log = (line: string) => process.stdout.write(`${line}\n`);

type EndToEnd = Awaited<ReturnType<ActivationTopicWatcher['collect']>>;
type HttpStep = LoadFigures & { endToEnd: EndToEnd; cpu: CpuFigures };
type IsoStep = LoadFigures & { endToEnd: EndToEnd; cpu: CpuFigures };
type OpenLoopStep = OpenLoopFigures & { endToEnd: EndToEnd; cpu: CpuFigures };

interface OpenLoop {
  /** Latencies count from each request's scheduled send time; requests unanswered this long after it are timeouts. */
  timeoutMs: number;
  signedJson: Record<string, OpenLoopStep>;
  iso8583: Record<string, OpenLoopStep>;
}

interface RegistrationsReplay {
  figures?: ReplayFigures & { rowsAtReplayedVersion: number };
  /** The VACUUM (ANALYZE) after it, before the load steps. */
  vacuumSeconds?: number;
  /** CPU from the first update published to the last applied, per update. */
  cpu?: { ms: Record<string, number | null>; usPerRegistration: Record<string, number | null> };
  error?: string;
}

interface TwoInstances {
  instanceIds: string[];
  signedJson: Record<string, { oneInstance?: HttpStep; oneInstanceMeasured?: 'with the one-instance steps' | 'for this comparison'; twoInstances?: HttpStep }>;
  iso8583: Record<string, { oneInstance?: IsoStep; oneInstanceMeasured?: 'with the one-instance steps' | 'for this comparison'; twoInstances?: IsoStep }>;
  gatewayPeakRssMb?: Record<string, number | null>;
  /** CPU ms per second with no load, both instances running. */
  atRestCpuMsPerSecond?: Record<string, number | null>;
  error?: string;
}

/** The same steps on a gateway of each key store (KEY_STORE=software, then pkcs11). */
interface KeyStoreComparison {
  instanceIds: Partial<Record<KeyStoreKind, string>>;
  signedJson: Record<string, Partial<Record<KeyStoreKind, HttpStep>>>;
  iso8583: Record<string, Partial<Record<KeyStoreKind, IsoStep>>>;
}

/** What every load step needs: the environment, the seeded customers, the Kafka watcher, and what CPU to count. */
class Steps {
  constructor(
    private readonly env: BenchEnvironment,
    private readonly customers: Customer[],
    private readonly watcher: ActivationTopicWatcher,
    private readonly shared: Record<string, CpuSource>,
  ) {}

  /** The CPU sources of a step: each gateway instance, PostgreSQL, the broker, the load generator. */
  private sources(instances: GatewayInstance[]): Record<string, CpuSource> {
    return { ...Object.fromEntries(instances.map((instance) => [`gateway:${instance.id}`, processCpu(instance.process.pid)])), ...this.shared };
  }

  async http(instances: GatewayInstance[], concurrency: number): Promise<HttpStep> {
    const signStarted = performance.now();
    const tag = `http${concurrency}x${instances.length}-${Date.now()}`;
    const requests = await prepareJsonRequests(Math.min(SIGNED_PER_SECOND * seconds, concurrency === 1 ? 3000 * seconds : Infinity), this.env.banks, this.customers, tag);
    const signMs = performance.now() - signStarted;
    const step = await measureCpu(this.sources(instances), async () => {
      const figures = await runHttpLoad(
        instances.map((instance) => instance.baseUrl),
        requests,
        concurrency,
        seconds * 1000,
        (id, at) => this.watcher.sent(id, at),
      );
      const endToEnd = await this.watcher.collect();
      await this.watcher.settle();
      return { ...figures, endToEnd };
    });
    log(`bench: signed JSON, ${concurrency} clients, ${instancesLabel(instances)}: ${step.perSecond}/s, p50 ${step.p50} ms, p99 ${step.p99} ms, to Kafka p99 ${step.endToEnd.p99} ms${split(step)}; ${cpuLine(step.cpu)} (signed ${requests.length} ahead in ${Math.round(signMs)} ms)`);
    return step;
  }

  async iso(instances: GatewayInstance[], connections: number): Promise<IsoStep> {
    const step = await measureCpu(this.sources(instances), async () => {
      const figures = await runIsoLoad(
        instances.map((instance) => instance.isoPort),
        this.env.banks,
        this.customers,
        connections,
        ISO_WINDOW,
        seconds * 1000,
        `iso${connections}x${instances.length}-${Date.now()}`,
        (id, at) => this.watcher.sent(id, at),
      );
      const endToEnd = await this.watcher.collect();
      await this.watcher.settle();
      return { ...figures, endToEnd };
    });
    log(`bench: ISO 8583, ${connections} connections × ${ISO_WINDOW} in flight, ${instancesLabel(instances)}: ${step.perSecond}/s, p50 ${step.p50} ms, p99 ${step.p99} ms, to Kafka p99 ${step.endToEnd.p99} ms${split(step)}; ${cpuLine(step.cpu)}`);
    return step;
  }

  /** Open loop, signed JSON: `rate` pre-signed requests per second for the step's length (open-loop.ts). */
  async openHttp(instance: GatewayInstance, rate: number): Promise<OpenLoopStep> {
    const signStarted = performance.now();
    const requests = await prepareJsonRequests(rate * seconds, this.env.banks, this.customers, `open${rate}-${Date.now()}`);
    const signMs = performance.now() - signStarted;
    const step = await measureCpu(this.sources([instance]), async () => {
      const figures = await runOpenLoopHttp(instance.baseUrl, requests, rate, seconds * 1000, openLoopHttpConnections(rate), (id, at) => this.watcher.sent(id, at));
      const endToEnd = await this.watcher.collect();
      await this.watcher.settle();
      return { ...figures, endToEnd };
    });
    log(`bench: open loop, signed JSON at ${rate}/s: ${openLoopLine(step)} (signed ${requests.length} ahead in ${Math.round(signMs)} ms)`);
    return step;
  }

  /** Open loop, ISO 8583: `rate` 0200s per second for the step's length, pipelined (open-loop.ts). */
  async openIso(instance: GatewayInstance, rate: number): Promise<OpenLoopStep> {
    const step = await measureCpu(this.sources([instance]), async () => {
      const figures = await runOpenLoopIso(instance.isoPort, this.env.banks, this.customers, rate, seconds * 1000, openLoopIsoConnections(rate), (id, at) => this.watcher.sent(id, at));
      const endToEnd = await this.watcher.collect();
      await this.watcher.settle();
      return { ...figures, endToEnd };
    });
    log(`bench: open loop, ISO 8583 at ${rate}/s: ${openLoopLine(step)}`);
    return step;
  }

  /**
   * CPU at rest, ms per second, for a second with no load once the last
   * decisions reached Kafka: what the per-activation figures include
   * regardless of the load (timers, consumers' fetches, the relay's polls).
   */
  async atRest(instances: GatewayInstance[]): Promise<Record<string, number | null>> {
    await this.watcher.settle();
    const { cpu } = await measureCpu(this.sources(instances), async () => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      return { requests: 0 };
    });
    log(`bench: at rest, ${instancesLabel(instances)}: CPU ms/s ${Object.entries(cpu.ms).map(([name, ms]) => `${name} ${ms ?? '–'}`).join(', ')}`);
    return cpu.ms;
  }

  /** The warm-up: JIT, connection pools, the relays' producers. */
  async warmUp(instances: GatewayInstance[]): Promise<void> {
    await runHttpLoad(instances.map((instance) => instance.baseUrl), await prepareJsonRequests(2000, this.env.banks, this.customers, `warm${instances.length}-${Date.now()}`), 32, 2000);
    await this.watcher.collect();
  }
}

const openLoopLine = (step: OpenLoopStep) =>
  `achieved ${step.achievedPerSecond}/s; from the scheduled time p50 ${step.p50} ms, p95 ${step.p95} ms, p99 ${step.p99} ms, max ${step.max} ms; ${step.errors} errors, ${step.timeouts} timeouts; to Kafka p50 ${step.endToEnd.p50} ms, p99 ${step.endToEnd.p99} ms${step.endToEnd.missing ? ` (${step.endToEnd.missing} not seen)` : ''}; sent late p99 ${step.sentLateP99} ms; ${step.connections} connections; ${cpuLine(step.cpu)}`;
const instancesLabel = (instances: GatewayInstance[]) => (instances.length === 1 ? `1 instance` : `${instances.length} instances`);
const split = (figures: LoadFigures) => (figures.perInstance ? ` (served ${figures.perInstance.join(' / ')})` : '');
const cpuLine = (cpu: CpuFigures) =>
  `CPU µs/activation ${Object.entries(cpu.usPerActivation)
    .map(([name, us]) => `${name} ${us ?? '–'}`)
    .join(', ')}`;

async function main(): Promise<void> {
  const env = new BenchEnvironment(KEY_STORE_RUNS[0], options['cpu-prof']);
  const report: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: round(totalmem() / 2 ** 30, 1), node: process.version },
    secondsPerStep: seconds,
    mode: openLoop ? 'open loop' : comparingKeyStores ? 'closed loop, key stores compared' : 'closed loop',
    keyStores: KEY_STORE_RUNS,
  };
  let ceiling: ChildProcess | null = null;
  let watcher: ActivationTopicWatcher | null = null;
  try {
    log('bench: measuring node:crypto on one core…');
    const crypto = cryptoRates();
    report.crypto = crypto;

    await env.createDatabase(process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    const brokerLabel = await env.startBroker();
    report.store = env.postgresVersion;
    report.kafka = brokerLabel;
    const first = await env.startGateway({ GATEWAY_INSTANCE_ID: 'bench-1' });
    log(`bench: gateway ${first.id} at ${first.baseUrl} (ISO 8583 on ${first.isoPort}); ${env.postgresVersion}; ${brokerLabel}`);

    // CPU accounting: the PostgreSQL server (its postmaster and every process it forked), the broker, this process.
    const postmaster = await env.postmasterPid();
    const brokerPid = env.brokerPid();
    report.cpuAccounting = {
      clockTicksPerSecond: CLOCK_TICKS,
      postgres: postmaster ? `postmaster ${postmaster} and its children (all databases on that server)` : 'all processes named postgres on this machine',
      broker: brokerPid ? `development broker, pid ${brokerPid}` : 'not on this machine (KAFKA_BROKERS)',
      client: 'this process: the load generator and the Kafka watcher',
      window: 'from the start of a step until its decisions reached Kafka and the topic was quiet for 300 ms; divided by the requests answered',
    };
    const shared: Record<string, CpuSource> = {
      postgres: postmaster ? processTreeCpu(postmaster) : processesNamedCpu('postgres'),
      broker: brokerPid ? processCpu(brokerPid) : () => null,
      client: selfCpu,
    };

    log(`bench: registering ${CUSTOMERS} customers through absher.registrations.v1…`);
    const customers = await env.seedRegistrations(CUSTOMERS);
    let replay: RegistrationsReplay | null = null;
    if (seededRegistrations) {
      log(`bench: seeding ${seededRegistrations.toLocaleString('en')} more registrations straight into PostgreSQL…`);
      const seed = await seedRegistrationsTable(env.databaseUrl, seededRegistrations, log);
      report.readModel = { seededRegistrations: seed.rows, method: 'INSERT … SELECT FROM generate_series, computed in PostgreSQL (pg-copy-streams is not installed)', ...seed, customers: CUSTOMERS };
      log(
        `bench: seeded ${seed.rows.toLocaleString('en')} registrations straight into PostgreSQL in ${seed.seconds} s (${seed.perSecond.toLocaleString('en')}/s), then VACUUM (ANALYZE) in ${seed.vacuumSeconds} s. ` +
          `Not with COPY: pg-copy-streams is not installed, and an INSERT … SELECT FROM generate_series computed in the server sends no rows, which makes it about as fast. ` +
          `The load steps decide against ${(seed.rows + CUSTOMERS).toLocaleString('en')} registrations.`,
      );
      // Before the load steps, on a quiet machine: after them, their outbox and autovacuums halve the figure.
      // A failure here leaves the rest of the run standing.
      replay = {};
      report.registrationsReplay = replay;
      try {
        await measureReplay(env, { [`gateway:${first.id}`]: processCpu(first.process.pid), ...shared }, seededRegistrations, replay);
      } catch (error) {
        replay.error = (error as Error).message;
        log(`bench: the registrations replay failed (the rest of the run goes on): ${(error as Error).message}`);
      }
      replay.vacuumSeconds = await vacuumRegistrations(env.databaseUrl);
    }

    watcher = new ActivationTopicWatcher(env.brokers);
    await watcher.start();
    const steps = new Steps(env, customers, watcher, shared);
    await steps.warmUp([first]);
    report.atRestCpuMsPerSecond = await steps.atRest([first]);

    let openLoopSteps: OpenLoop | null = null;
    let closedLoop: { http: Record<string, HttpStep>; iso: Record<string, IsoStep>; twoInstances: TwoInstances | null } | null = null;
    let keyStoreComparison: KeyStoreComparison | null = null;
    if (comparingKeyStores) {
      keyStoreComparison = { instanceIds: {}, signedJson: {}, iso8583: {} };
      report.keyStoreComparison = keyStoreComparison;
      await compareKeyStores(env, steps, first, keyStoreComparison);
    } else if (openLoop) {
      openLoopSteps = { timeoutMs: OPEN_LOOP_TIMEOUT_MS, signedJson: {}, iso8583: {} };
      report.openLoop = openLoopSteps;
      for (const rate of JSON_RATES) openLoopSteps.signedJson[rate] = await steps.openHttp(first, rate);
      for (const rate of ISO_RATES) openLoopSteps.iso8583[rate] = await steps.openIso(first, rate);
      report.gatewayPeakRssMb = env.gatewayPeakRssMb();
    } else {
      const http: Record<string, HttpStep> = {};
      for (const concurrency of HTTP_LEVELS) http[concurrency] = await steps.http([first], concurrency);
      report.signedJson = http;

      const iso: Record<string, IsoStep> = {};
      for (const connections of ISO_LEVELS) iso[connections] = await steps.iso([first], connections);
      report.iso8583 = iso;
      report.gatewayPeakRssMb = env.gatewayPeakRssMb();

      // One instance vs two on the same database and broker. A failure here leaves the figures above standing.
      let twoInstances: TwoInstances | null = null;
      if (multi) {
        twoInstances = { instanceIds: [first.id], signedJson: {}, iso8583: {} };
        report.twoInstances = twoInstances;
        try {
          await compareInstances(env, steps, first, http, iso, twoInstances);
        } catch (error) {
          twoInstances.error = (error as Error).message;
          log(`bench: the two-instance step failed (the one-instance figures stand): ${(error as Error).message}`);
        }
      }

      closedLoop = { http, iso, twoInstances };
    }

    if (closedLoop) {
      // The ceiling: the same HTTP stack with the signature checked, no store, no Kafka.
      const ceilingConfig = join(env.dir, 'ceiling.json');
      writeFileSync(ceilingConfig, JSON.stringify({ certificates: env.banks.map((b) => b.identity.certificatePem), gatewayKeyFile: env.gatewayKeyFile, gatewayCertFile: env.gatewayCertFile }));
      const started = await startCeiling(ceilingConfig);
      ceiling = started.process;
      const ceilingLevels: Record<string, LoadFigures> = {};
      for (const concurrency of HTTP_LEVELS) {
        const requests = await prepareJsonRequests(Math.min(SIGNED_PER_SECOND * 2 * seconds, 40_000), env.banks, customers, `ceiling${concurrency}`);
        ceilingLevels[concurrency] = await runHttpLoad(started.baseUrl, requests, concurrency, seconds * 1000);
        log(`bench: ceiling (HTTP + signature check only), ${concurrency} clients: ${ceilingLevels[concurrency].perSecond}/s, p99 ${ceilingLevels[concurrency].p99} ms`);
      }
      report.ceiling = { http: ceilingLevels, peakRssMb: peakRssMb(ceiling.pid) };

      printTable(report, closedLoop.http, closedLoop.iso, ceilingLevels, crypto);
      if (closedLoop.twoInstances) printInstancesTable(closedLoop.twoInstances);
    } else {
      printHeader(report, crypto);
    }
    if (openLoopSteps) printOpenLoopTable(openLoopSteps);
    if (keyStoreComparison) printKeyStoreTable(keyStoreComparison);
    if (replay) printReplay(replay);
    const dir = join(projectRoot(), 'bench/results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${String(report.startedAt).replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    log(`\nbench: figures written to ${file}`);
  } finally {
    await watcher?.stop();
    if (ceiling && ceiling.exitCode === null) ceiling.kill('SIGTERM');
    await env.stop();
  }
  if (options['cpu-prof']) printProfiles(options['cpu-prof']);
}

/** Each gateway's profile, written when it stopped: where its busy CPU went. */
function printProfiles(dir: string): void {
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))) {
    const summary = summariseCpuProfile(join(dir, file));
    log(`\nCPU profile ${summary.file}: ${summary.busyMs.toLocaleString('en')} ms busy (idle left out); self time`);
    log(`  by place: ${summary.byPlace.map((share) => `${share.name} ${share.percent}%`).join(', ')}`);
    for (const share of summary.byFunction) log(`  ${String(share.percent).padStart(5)}%  ${share.name}`);
  }
}

/**
 * The same steps with a second gateway (its own ports and instance id, the
 * same database and broker) next to the first, the load spread over both by
 * a round-robin client. The first instance keeps running throughout, so the
 * registrations are seeded once; the second is stopped at the end, whatever
 * happens. Figures go into `result` as they are measured.
 */
async function compareInstances(env: BenchEnvironment, steps: Steps, first: GatewayInstance, http: Record<string, HttpStep>, iso: Record<string, IsoStep>, result: TwoInstances): Promise<void> {
  // One instance at the comparison's levels: the steps above where they ran, else measured now.
  for (const concurrency of MULTI_HTTP_LEVELS) {
    const measured = http[concurrency];
    result.signedJson[concurrency] = measured
      ? { oneInstance: measured, oneInstanceMeasured: 'with the one-instance steps' }
      : { oneInstance: await steps.http([first], concurrency), oneInstanceMeasured: 'for this comparison' };
  }
  for (const connections of MULTI_ISO_LEVELS) {
    const measured = iso[connections];
    result.iso8583[connections] = measured
      ? { oneInstance: measured, oneInstanceMeasured: 'with the one-instance steps' }
      : { oneInstance: await steps.iso([first], connections), oneInstanceMeasured: 'for this comparison' };
  }

  log('bench: starting a second gateway on the same database and broker…');
  const second = await env.startGateway({ GATEWAY_INSTANCE_ID: 'bench-2' });
  try {
    result.instanceIds = [first.id, second.id];
    log(`bench: gateway ${second.id} at ${second.baseUrl} (ISO 8583 on ${second.isoPort}); the clients go round-robin over ${first.id} and ${second.id}`);
    const both = [first, second];
    await steps.warmUp(both);
    result.atRestCpuMsPerSecond = await steps.atRest(both);
    for (const concurrency of MULTI_HTTP_LEVELS) result.signedJson[concurrency].twoInstances = await steps.http(both, concurrency);
    for (const connections of MULTI_ISO_LEVELS) result.iso8583[connections].twoInstances = await steps.iso(both, connections);
  } finally {
    result.gatewayPeakRssMb = { [first.id]: peakRssMb(first.process.pid), [second.id]: peakRssMb(second.process.pid) };
    await env.stopGateway(second);
  }
}

/**
 * The same closed-loop steps on a gateway of each key store in turn, on the
 * same database, broker and customers: software first (the first gateway),
 * because mac-key import leaves the banks with references to the token's
 * keys, which a software gateway cannot use. One gateway at a time, so that
 * no idle one's outbox relay takes a share of the work. Figures go into
 * `result` as they are measured.
 */
async function compareKeyStores(env: BenchEnvironment, steps: Steps, first: GatewayInstance, result: KeyStoreComparison): Promise<void> {
  let gateway = first;
  for (const keyStore of KEY_STORE_RUNS) {
    if (gateway.keyStore !== keyStore) {
      await env.stopGateway(gateway);
      log(`bench: starting a gateway with KEY_STORE=${keyStore} instead…`);
      gateway = await env.startGateway({ GATEWAY_INSTANCE_ID: `bench-${keyStore}` }, keyStore);
      await steps.warmUp([gateway]);
    }
    log(`bench: KEY_STORE=${keyStore}: gateway ${gateway.id} at ${gateway.baseUrl} (ISO 8583 on ${gateway.isoPort})`);
    result.instanceIds[keyStore] = gateway.id;
    for (const concurrency of KEY_STORE_HTTP_LEVELS) (result.signedJson[concurrency] ??= {})[keyStore] = await steps.http([gateway], concurrency);
    for (const connections of KEY_STORE_ISO_LEVELS) (result.iso8583[connections] ??= {})[keyStore] = await steps.iso([gateway], connections);
  }
}

/**
 * The registrations consumer's own throughput: a replay of every seeded
 * registration published to the running gateway, timed until its consumer
 * has applied the last one (seeded-registrations.ts), then the table counted.
 * The figures go into `result` as they are measured.
 */
async function measureReplay(env: BenchEnvironment, sources: Record<string, CpuSource>, count: number, result: RegistrationsReplay): Promise<void> {
  log(`bench: registrations replay: publishing ${count.toLocaleString('en')} updates to absher.registrations.v1 as the gateway applies them…`);
  const kafka = new Kafka({ clientId: 'bench-identity-core', brokers: env.brokers, logLevel: logLevel.NOTHING });
  const { cpu, figures } = await measureCpu(sources, async () => ({ figures: await replayRegistrations(kafka, count, log), requests: count }));
  result.figures = { ...figures, rowsAtReplayedVersion: await rowsAtReplayedVersion(env.databaseUrl) };
  result.cpu = { ms: cpu.ms, usPerRegistration: cpu.usPerActivation };
  log(`bench: registrations consumer: ${figures.perSecond.toLocaleString('en')} registrations/s (${count.toLocaleString('en')} in ${figures.seconds} s); ${result.figures.rowsAtReplayedVersion.toLocaleString('en')} rows at the replayed version; CPU µs/registration ${Object.entries(cpu.usPerActivation).map(([name, us]) => `${name} ${dash(us)}`).join(', ')}`);
}

function startCeiling(configFile: string): Promise<{ process: ChildProcess; baseUrl: string }> {
  const child = spawn(process.execPath, [join(projectRoot(), 'dist/tools/bench/ceiling-server.js'), '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => {
      const port = (JSON.parse(chunk.toString().split('\n')[0]) as { httpPort: number }).httpPort;
      resolve({ process: child, baseUrl: `http://127.0.0.1:${port}` });
    });
    child.once('exit', (code) => reject(new Error(`the ceiling server exited with ${code}`)));
  });
}

/** The run's heading: when, on what, against what. Returns the verification ceiling (the PS256/ES256 mix on one core). */
function printHeader(report: Record<string, unknown>, crypto: ReturnType<typeof cryptoRates>): number {
  const machine = report.machine as { cpus: number; cpuModel: string; memoryGb: number; node: string };
  // Half the requests are PS256, half ES256: the verification ceiling is their harmonic mix on one core.
  const verifyCeiling = Math.round(2 / (1 / crypto.ps256Verify + 1 / crypto.es256Verify));
  const readModel = report.readModel as { seededRegistrations: number; customers: number } | undefined;
  log('');
  log(`absher-bank-gateway benchmark, ${report.startedAt}`);
  log(`machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGb} GB, Node ${machine.node}; load generator on the same machine`);
  log(`store: ${report.store}; Kafka: ${report.kafka}; KEY_STORE: ${(report.keyStores as KeyStoreKind[]).map((store) => (store === 'pkcs11' ? 'pkcs11 (SoftHSM2)' : store)).join(' and ')}`);
  if (readModel) log(`read model: ${(readModel.seededRegistrations + readModel.customers).toLocaleString('en')} registrations (${readModel.seededRegistrations.toLocaleString('en')} seeded in PostgreSQL, ${readModel.customers.toLocaleString('en')} through Kafka)`);
  log(`node:crypto, one core: verify PS256 ${crypto.ps256Verify}/s, ES256 ${crypto.es256Verify}/s (mix ${verifyCeiling}/s); sign PS256 ${crypto.ps256Sign}/s, ES256 ${crypto.es256Sign}/s`);
  return verifyCeiling;
}

function printTable(
  report: Record<string, unknown>,
  http: Record<string, HttpStep>,
  iso: Record<string, IsoStep>,
  ceiling: Record<string, LoadFigures>,
  crypto: ReturnType<typeof cryptoRates>,
): void {
  const verifyCeiling = printHeader(report, crypto);
  log('');
  log(`| signed JSON (50% PS256, 50% ES256) | req/s | p50 ms | p95 ms | p99 ms | to Kafka p50 / p99 ms | of HTTP ceiling | of verify ceiling | ${CPU_HEADING} | answers |`);
  log('|---|---|---|---|---|---|---|---|---|---|');
  for (const [level, f] of Object.entries(http)) {
    const c = ceiling[level];
    log(`| ${level} clients | ${f.perSecond} | ${f.p50} | ${f.p95} | ${f.p99} | ${f.endToEnd.p50} / ${f.endToEnd.p99}${f.endToEnd.missing ? ` (${f.endToEnd.missing} not seen)` : ''} | ${c ? `${Math.round((100 * f.perSecond) / c.perSecond)}% of ${c.perSecond}/s` : '–'} | ${Math.round((100 * f.perSecond) / verifyCeiling)}% | ${cpuCell(f.cpu)} | ${JSON.stringify(f.answers)} |`);
  }
  log('');
  log(`| ISO 8583 (pipelined, ${ISO_WINDOW} in flight per connection) | req/s | p50 ms | p95 ms | p99 ms | to Kafka p50 / p99 ms | ${CPU_HEADING} | field 39 |`);
  log('|---|---|---|---|---|---|---|---|');
  for (const [level, f] of Object.entries(iso)) log(`| ${level} connections | ${f.perSecond} | ${f.p50} | ${f.p95} | ${f.p99} | ${f.endToEnd.p50} / ${f.endToEnd.p99}${f.endToEnd.missing ? ` (${f.endToEnd.missing} not seen)` : ''} | ${cpuCell(f.cpu)} | ${JSON.stringify(f.answers)} |`);
  log('');
  log(`CPU at rest (ms per second, no load): ${atRest(report.atRestCpuMsPerSecond as Record<string, number | null>)}; each step's CPU counts from its start until its decisions were on Kafka, divided by the requests answered`);
  log(`gateway peak RSS: ${report.gatewayPeakRssMb} MB; ceiling server peak RSS: ${(report.ceiling as { peakRssMb: number }).peakRssMb} MB`);
}

function printOpenLoopTable(open: OpenLoop): void {
  const rows = (channel: string, steps: Record<string, OpenLoopStep>) => {
    if (Object.keys(steps).length === 0) return;
    log('');
    log(`| open loop, ${channel} | offered /s | achieved /s | p50 ms | p95 ms | p99 ms | max ms | errors | timeouts | to Kafka p50 / p99 / max ms | sent late p99 ms | connections | ${CPU_HEADING} | answers |`);
    log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const [rate, f] of Object.entries(steps)) {
      const e = f.endToEnd;
      log(`| ${rate}/s | ${f.offeredPerSecond} | ${f.achievedPerSecond} | ${f.p50} | ${f.p95} | ${f.p99} | ${f.max} | ${f.errors} | ${f.timeouts} | ${e.p50} / ${e.p99} / ${e.max}${e.missing ? ` (${e.missing} not seen)` : ''} | ${f.sentLateP99} | ${f.connections} | ${cpuCell(f.cpu)} | ${JSON.stringify(f.answers)} |`);
    }
  };
  rows('signed JSON (50% PS256, 50% ES256, pre-signed)', open.signedJson);
  rows('ISO 8583 (pipelined, no window)', open.iso8583);
  log('');
  log(`Open loop: requests leave on a fixed schedule whatever the answers; every latency (to Kafka too) counts from the request's scheduled time, so queueing in the generator counts. Unanswered after ${open.timeoutMs / 1000} s: a timeout, counted in the latencies at ${open.timeoutMs / 1000} s. Errors: HTTP 429/5xx, field 39 91/96, requests lost with their connection. Sent late: how far behind schedule requests got onto a socket (the generator's lag, waiting for a connection), already in the latencies.`);
}

function printKeyStoreTable(result: KeyStoreComparison): void {
  log('');
  log(`KEY_STORE=software vs KEY_STORE=pkcs11 (SoftHSM2): the same steps on ${result.instanceIds.software} then ${result.instanceIds.pkcs11}, one at a time (same database, broker and customers)`);
  log('| step | req/s software / pkcs11 | p50 ms software / pkcs11 | p99 ms software / pkcs11 | gateway CPU µs/activation software / pkcs11 | pkcs11 − software, µs/activation |');
  log('|---|---|---|---|---|---|');
  const row = (step: string, pair: Partial<Record<KeyStoreKind, LoadFigures & { cpu: CpuFigures }>>) => {
    const both = (figure: (f: LoadFigures & { cpu: CpuFigures }) => number | null) => `${dash(pair.software && figure(pair.software))} / ${dash(pair.pkcs11 && figure(pair.pkcs11))}`;
    const software = pair.software && gatewayUs(pair.software.cpu);
    const pkcs11 = pair.pkcs11 && gatewayUs(pair.pkcs11.cpu);
    const difference = typeof software === 'number' && typeof pkcs11 === 'number' ? `${pkcs11 >= software ? '+' : ''}${pkcs11 - software}` : '–';
    log(`| ${step} | ${both((f) => f.perSecond)} | ${both((f) => f.p50)} | ${both((f) => f.p99)} | ${both((f) => gatewayUs(f.cpu))} | ${difference} |`);
  };
  for (const [level, pair] of Object.entries(result.signedJson)) row(`signed JSON, ${level} clients`, pair);
  for (const [level, pair] of Object.entries(result.iso8583)) row(`ISO 8583, ${level} connections × ${ISO_WINDOW}`, pair);
  log('');
  log(`Through the token, a signed JSON activation costs 1 ES256 signature and 1 subject HMAC; an ISO 8583 one, 2 MACs (the request's check, the answer's) and 1 PAN HMAC. The gateway's CPU counts the token too (SoftHSM2 runs in its process); the pkcs11 steps run second, on a database that holds the software steps' activations too.`);
}

function printReplay(replay: RegistrationsReplay): void {
  log('');
  const { figures: f, cpu } = replay;
  if (f) {
    log(`registrations replay: ${f.registrations.toLocaleString('en')} updates (version ${REPLAYED_VERSION} over ${REPLAYED_VERSION - 1}) applied in ${f.seconds} s: ${f.perSecond.toLocaleString('en')} registrations/s, from the first published to the last applied`);
    log(`published at most ${f.backlogLimit.toLocaleString('en')} ahead of the consumer (${f.partitions} partitions); the publisher waited for it ${f.publisherHeldBackSeconds} s${f.publisherHeldBackSeconds < 0.1 * f.seconds ? ' (hardly: the publisher set the pace, so the consumer may be faster than this)' : ''}`);
    log(`rows at the replayed version afterwards: ${f.rowsAtReplayedVersion.toLocaleString('en')} of ${f.registrations.toLocaleString('en')}${f.rowsAtReplayedVersion === f.registrations ? '' : ' (NOT all: see the dead-letter topic)'}`);
  }
  if (replay.vacuumSeconds !== undefined) log(`then VACUUM (ANALYZE) registration in ${replay.vacuumSeconds} s, before the load steps`);
  if (cpu) log(`CPU µs per registration: ${Object.entries(cpu.usPerRegistration).map(([name, us]) => `${name} ${dash(us)}`).join(', ')} (the load generator publishes the replay)`);
  if (replay.error) log(`the registrations replay failed: ${replay.error}`);
}

const atRest = (ms: Record<string, number | null>) =>
  Object.entries(ms)
    .map(([name, value]) => `${name} ${dash(value)}`)
    .join(', ');
const CPU_HEADING = 'CPU µs/activation: gateway / PostgreSQL / broker / load generator';
const dash = (value: number | null | undefined) => (value === null || value === undefined ? '–' : String(value));

/** The one gateway's CPU per activation of a one-instance step. */
const gatewayUs = (cpu: CpuFigures) => Object.entries(cpu.usPerActivation).find(([name]) => name.startsWith('gateway:'))?.[1] ?? null;

/** The gateway instances' CPU per activation, each (`a + b`) when there are several. */
function gatewayCpu(cpu: CpuFigures): string {
  const each = Object.entries(cpu.usPerActivation).filter(([name]) => name.startsWith('gateway:'));
  if (each.length === 1) return dash(each[0][1]);
  const values = each.map(([, us]) => us);
  const total = values.every((us) => us !== null) ? ` = ${values.reduce((sum, us) => sum! + us!, 0)}` : '';
  return `${values.map(dash).join(' + ')}${total}`;
}

function cpuCell(cpu: CpuFigures): string {
  const us = cpu.usPerActivation;
  return `${gatewayCpu(cpu)} / ${dash(us.postgres)} / ${dash(us.broker)} / ${dash(us.client)}`;
}

/** Every process counted, per activation: what one decision costs the machine. */
function totalCpu(cpu: CpuFigures): string {
  const values = Object.values(cpu.usPerActivation);
  return values.some((us) => us === null) ? '–' : String(values.reduce((sum, us) => sum! + us!, 0));
}

function printInstancesTable(result: TwoInstances): void {
  log('');
  log(`one instance vs two instances (${result.instanceIds.join(', ')}: same database, same broker; round-robin client on this machine)`);
  log('| step | instances | req/s | p50 ms | p99 ms | to Kafka p99 ms | served per instance | CPU µs/activation: gateway(s) | PostgreSQL | broker | load generator | all processes |');
  log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  const row = (step: string, instances: number, f: (LoadFigures & { cpu: CpuFigures; endToEnd?: EndToEnd }) | undefined, note = '') => {
    if (!f) {
      log(`| ${step} | ${instances} | not measured | | | | | | | | | |`);
      return;
    }
    const us = f.cpu.usPerActivation;
    log(`| ${step} | ${instances}${note} | ${f.perSecond} | ${f.p50} | ${f.p99} | ${f.endToEnd ? f.endToEnd.p99 : '–'} | ${f.perInstance ? f.perInstance.join(' / ') : f.requests} | ${gatewayCpu(f.cpu)} | ${dash(us.postgres)} | ${dash(us.broker)} | ${dash(us.client)} | ${totalCpu(f.cpu)} |`);
  };
  for (const [level, pair] of Object.entries(result.signedJson)) {
    row(`signed JSON, ${level} clients`, 1, pair.oneInstance, pair.oneInstanceMeasured === 'for this comparison' ? ' (measured for this table)' : '');
    row(`signed JSON, ${level} clients`, 2, pair.twoInstances);
  }
  for (const [level, pair] of Object.entries(result.iso8583)) {
    row(`ISO 8583, ${level} connections × ${ISO_WINDOW}`, 1, pair.oneInstance, pair.oneInstanceMeasured === 'for this comparison' ? ' (measured for this table)' : '');
    row(`ISO 8583, ${level} connections × ${ISO_WINDOW}`, 2, pair.twoInstances);
  }
  if (result.atRestCpuMsPerSecond) log(`\nCPU at rest with both instances (ms per second, no load): ${atRest(result.atRestCpuMsPerSecond)}`);
  if (result.gatewayPeakRssMb) log(`gateway peak RSS after the two-instance steps: ${Object.entries(result.gatewayPeakRssMb).map(([id, mb]) => `${id} ${dash(mb)} MB`).join(', ')}`);
  if (result.error) log(`\nthe two-instance step failed: ${result.error}`);
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? error}\n`);
  process.exit(1);
});
