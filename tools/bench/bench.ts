import { ChildProcess, spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/common/project-root';
import { BenchEnvironment, peakRssMb } from './bench-environment';
import { ActivationTopicWatcher, cryptoRates, LoadFigures, prepareJsonRequests, round, runHttpLoad, runIsoLoad } from './load';

/**
 * `npm run bench`: drives the built gateway (its own process, real
 * PostgreSQL, the Kafka broker) and prints what it sustains, next to the
 * ceilings measured on the same machine in the same run. Writes the figures
 * as JSON to bench/results/.
 *
 *   --seconds N     length of each load step (default 8)
 *   --quick         2 s steps and fewer levels: a smoke run, not a measurement
 *
 * Environment: BENCH_POSTGRES_URL (an admin connection to PostgreSQL; the
 * benchmark creates and drops a database of its own; default
 * postgres://postgres@127.0.0.1:5432/postgres), KAFKA_BROKERS (a real
 * cluster; default: the development broker).
 */
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const seconds = Number(args[args.indexOf('--seconds') + 1]) || (quick ? 2 : 8);
const HTTP_LEVELS = quick ? [1, 64] : [1, 16, 64, 256];
const ISO_LEVELS = quick ? [8] : [1, 8, 32];
const ISO_WINDOW = 16;
const CUSTOMERS = quick ? 2000 : 20_000;
/** Requests signed ahead per client-second: more than the gateway can take, so no step runs dry. */
const SIGNED_PER_SECOND = 4000;

const log = (line: string) => process.stdout.write(`${line}\n`);

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
    await env.startGateway();
    log(`bench: gateway at ${env.baseUrl} (ISO 8583 on ${env.isoPort}); ${env.postgresVersion}; ${brokerLabel}`);
    log(`bench: registering ${CUSTOMERS} customers through absher.registrations.v1…`);
    const customers = await env.seedRegistrations(CUSTOMERS);

    watcher = new ActivationTopicWatcher(env.brokers);
    await watcher.start();

    // Warm-up: JIT, connection pools, the relay's producer.
    await runHttpLoad(env.baseUrl, prepareJsonRequests(2000, env.banks, customers, 'warm'), 32, 2000);
    await watcher.collect();

    const http: Record<string, LoadFigures & { endToEnd: Awaited<ReturnType<ActivationTopicWatcher['collect']>> }> = {};
    for (const concurrency of HTTP_LEVELS) {
      const signStarted = performance.now();
      const requests = prepareJsonRequests(Math.min(SIGNED_PER_SECOND * seconds, concurrency === 1 ? 3000 * seconds : Infinity), env.banks, customers, `http${concurrency}-${Date.now()}`);
      const signMs = performance.now() - signStarted;
      const figures = await runHttpLoad(env.baseUrl, requests, concurrency, seconds * 1000, (id, at) => watcher!.sent(id, at));
      const endToEnd = await watcher.collect();
      http[concurrency] = { ...figures, endToEnd };
      log(`bench: signed JSON, ${concurrency} clients: ${figures.perSecond}/s, p50 ${figures.p50} ms, p99 ${figures.p99} ms, to Kafka p99 ${endToEnd.p99} ms (signed ${requests.length} ahead in ${Math.round(signMs)} ms)`);
    }
    report.signedJson = http;

    const iso: Record<string, LoadFigures> = {};
    for (const connections of ISO_LEVELS) {
      const figures = await runIsoLoad(env.isoPort, env.banks, customers, connections, ISO_WINDOW, seconds * 1000, `iso${connections}-${Date.now()}`);
      iso[connections] = figures;
      log(`bench: ISO 8583, ${connections} connections × ${ISO_WINDOW} in flight: ${figures.perSecond}/s, p50 ${figures.p50} ms, p99 ${figures.p99} ms`);
    }
    report.iso8583 = iso;
    report.gatewayPeakRssMb = env.gatewayPeakRssMb();

    // The ceiling: the same HTTP stack with the signature checked, no store, no Kafka.
    const ceilingConfig = join(env.dir, 'ceiling.json');
    writeFileSync(ceilingConfig, JSON.stringify({ certificates: env.banks.map((b) => b.identity.certificatePem), gatewayKeyFile: env.gatewayKeyFile, gatewayCertFile: env.gatewayCertFile }));
    const started = await startCeiling(ceilingConfig);
    ceiling = started.process;
    const ceilingLevels: Record<string, LoadFigures> = {};
    for (const concurrency of HTTP_LEVELS) {
      const requests = prepareJsonRequests(Math.min(SIGNED_PER_SECOND * 2 * seconds, 40_000), env.banks, customers, `ceiling${concurrency}`);
      ceilingLevels[concurrency] = await runHttpLoad(started.baseUrl, requests, concurrency, seconds * 1000);
      log(`bench: ceiling (HTTP + signature check only), ${concurrency} clients: ${ceilingLevels[concurrency].perSecond}/s, p99 ${ceilingLevels[concurrency].p99} ms`);
    }
    report.ceiling = { http: ceilingLevels, peakRssMb: peakRssMb(ceiling.pid) };

    printTable(report, http, iso, ceilingLevels, crypto);
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

function startCeiling(configFile: string): Promise<{ process: ChildProcess; baseUrl: string }> {
  const child = spawn(process.execPath, [join(projectRoot(), 'dist/tools/bench/ceiling-server.js'), configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
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
  http: Record<string, LoadFigures & { endToEnd: { p50: number; p99: number; missing: number } }>,
  iso: Record<string, LoadFigures>,
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
  log('| signed JSON (50% PS256, 50% ES256) | req/s | p50 ms | p95 ms | p99 ms | to Kafka p50 / p99 ms | of HTTP ceiling | of verify ceiling | answers |');
  log('|---|---|---|---|---|---|---|---|---|');
  for (const [level, f] of Object.entries(http)) {
    const c = ceiling[level];
    log(`| ${level} clients | ${f.perSecond} | ${f.p50} | ${f.p95} | ${f.p99} | ${f.endToEnd.p50} / ${f.endToEnd.p99}${f.endToEnd.missing ? ` (${f.endToEnd.missing} not seen)` : ''} | ${c ? `${Math.round((100 * f.perSecond) / c.perSecond)}% of ${c.perSecond}/s` : '–'} | ${Math.round((100 * f.perSecond) / verifyCeiling)}% | ${JSON.stringify(f.answers)} |`);
  }
  log('');
  log(`| ISO 8583 (pipelined, ${ISO_WINDOW} in flight per connection) | req/s | p50 ms | p95 ms | p99 ms | field 39 |`);
  log('|---|---|---|---|---|---|');
  for (const [level, f] of Object.entries(iso)) log(`| ${level} connections | ${f.perSecond} | ${f.p50} | ${f.p95} | ${f.p99} | ${JSON.stringify(f.answers)} |`);
  log('');
  log(`gateway peak RSS: ${report.gatewayPeakRssMb} MB; ceiling server peak RSS: ${(report.ceiling as { peakRssMb: number }).peakRssMb} MB`);
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? error}\n`);
  process.exit(1);
});
