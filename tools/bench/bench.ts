import { ChildProcess, spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/common/project-root';
import { BenchEnvironment, Customer, GatewayInstance, peakRssMb } from './bench-environment';
import { CLOCK_TICKS, CpuFigures, CpuSource, measureCpu, processCpu, processesNamedCpu, processTreeCpu, selfCpu } from './cpu';
import { ActivationTopicWatcher, cryptoRates, LoadFigures, prepareJsonRequests, round, runHttpLoad, runIsoLoad } from './load';
import { defineTool, readOptions } from '../options';

/**
 * `npm run bench`: drives the built gateway (its own process, real
 * PostgreSQL, the Kafka broker) and prints what it sustains, next to the
 * ceilings measured on the same machine in the same run, then the same load
 * on two gateway instances (same database, same broker, a round-robin client)
 * next to one. Each step also reports the CPU time per activation of each
 * gateway process, of PostgreSQL, of the broker and of the load generator
 * (/proc/<pid>/stat). Writes the figures as JSON to bench/results/.
 */
const TOOL = defineTool({
  name: 'bench',
  summary: `Drives the built gateway (its own process, real PostgreSQL, the Kafka broker)
and prints what it sustains next to the ceilings measured in the same run, then
one instance against two, with the CPU each process spends per activation.
Writes the figures as JSON to bench/results/.`,
  options: {
    seconds: { type: 'integer', value: 'N', min: 1, help: 'length of each load step (default 8; 2 with --quick)' },
    quick: { type: 'boolean', help: '2 s steps and fewer levels: a smoke run, not a measurement' },
    'no-multi': { type: 'boolean', help: 'skip the one-instance-vs-two step (a second gateway, its own ports and GATEWAY_INSTANCE_ID, next to the first)' },
  },
  more: `Environment: BENCH_POSTGRES_URL (an admin connection to PostgreSQL; the
benchmark creates and drops a database of its own; default
postgres://postgres@127.0.0.1:5432/postgres), KAFKA_BROKERS (a real
cluster; default: the development broker).`,
});
const options = readOptions(TOOL);
const quick = options.quick;
const multi = !options['no-multi'];
const seconds = options.seconds ?? (quick ? 2 : 8);
const HTTP_LEVELS = quick ? [1, 64] : [1, 16, 64, 256];
const ISO_LEVELS = quick ? [8] : [1, 8, 32];
/** Where one instance and two are compared (the one-instance figures above are reused where they exist). */
const MULTI_HTTP_LEVELS = [16, 64];
const MULTI_ISO_LEVELS = [8];
const ISO_WINDOW = 16;
const CUSTOMERS = quick ? 2000 : 20_000;
/** Requests signed ahead per client-second: more than the gateway can take, so no step runs dry. */
const SIGNED_PER_SECOND = 4000;

const log = (line: string) => process.stdout.write(`${line}\n`);

type EndToEnd = Awaited<ReturnType<ActivationTopicWatcher['collect']>>;
type HttpStep = LoadFigures & { endToEnd: EndToEnd; cpu: CpuFigures };
type IsoStep = LoadFigures & { endToEnd: EndToEnd; cpu: CpuFigures };

interface TwoInstances {
  instanceIds: string[];
  signedJson: Record<string, { oneInstance?: HttpStep; oneInstanceMeasured?: 'with the one-instance steps' | 'for this comparison'; twoInstances?: HttpStep }>;
  iso8583: Record<string, { oneInstance?: IsoStep; oneInstanceMeasured?: 'with the one-instance steps' | 'for this comparison'; twoInstances?: IsoStep }>;
  gatewayPeakRssMb?: Record<string, number | null>;
  /** CPU ms per second with no load, both instances running. */
  atRestCpuMsPerSecond?: Record<string, number | null>;
  error?: string;
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

const instancesLabel = (instances: GatewayInstance[]) => (instances.length === 1 ? `1 instance` : `${instances.length} instances`);
const split = (figures: LoadFigures) => (figures.perInstance ? ` (served ${figures.perInstance.join(' / ')})` : '');
const cpuLine = (cpu: CpuFigures) =>
  `CPU µs/activation ${Object.entries(cpu.usPerActivation)
    .map(([name, us]) => `${name} ${us ?? '–'}`)
    .join(', ')}`;

async function main(): Promise<void> {
  const env = new BenchEnvironment();
  const report: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: round(totalmem() / 2 ** 30, 1), node: process.version },
    secondsPerStep: seconds,
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

    watcher = new ActivationTopicWatcher(env.brokers);
    await watcher.start();
    const steps = new Steps(env, customers, watcher, shared);
    await steps.warmUp([first]);
    report.atRestCpuMsPerSecond = await steps.atRest([first]);

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

    printTable(report, http, iso, ceilingLevels, crypto);
    if (twoInstances) printInstancesTable(twoInstances);
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

function printTable(
  report: Record<string, unknown>,
  http: Record<string, HttpStep>,
  iso: Record<string, IsoStep>,
  ceiling: Record<string, LoadFigures>,
  crypto: ReturnType<typeof cryptoRates>,
): void {
  const machine = report.machine as { cpus: number; cpuModel: string; memoryGb: number; node: string };
  // Half the requests are PS256, half ES256: the verification ceiling is their harmonic mix on one core.
  const verifyCeiling = Math.round(2 / (1 / crypto.ps256Verify + 1 / crypto.es256Verify));
  log('');
  log(`absher-bank-gateway benchmark, ${report.startedAt}`);
  log(`machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGb} GB, Node ${machine.node}; load generator on the same machine`);
  log(`store: ${report.store}; Kafka: ${report.kafka}`);
  log(`node:crypto, one core: verify PS256 ${crypto.ps256Verify}/s, ES256 ${crypto.es256Verify}/s (mix ${verifyCeiling}/s); sign PS256 ${crypto.ps256Sign}/s, ES256 ${crypto.es256Sign}/s`);
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

const atRest = (ms: Record<string, number | null>) =>
  Object.entries(ms)
    .map(([name, value]) => `${name} ${dash(value)}`)
    .join(', ');
const CPU_HEADING = 'CPU µs/activation: gateway / PostgreSQL / broker / load generator';
const dash = (value: number | null | undefined) => (value === null || value === undefined ? '–' : String(value));

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
