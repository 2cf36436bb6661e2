import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayProcess } from '../support/gateway-process';
import { TestEnvironment } from '../support/test-environment';

/**
 * The embedded database (PGlite) and the development broker are for the
 * development defaults only: a gateway given DATABASE_URL and KAFKA_BROKERS
 * never loads their code. Each gateway here is started with a preload that,
 * on SIGUSR2, writes the files its process has loaded (Node's require cache).
 */
const ROOT = join(__dirname, '../..');
const START_TIMEOUT_MS = 90_000;
const work = mkdtempSync(join(tmpdir(), 'gateway-loaded-modules-'));
const PRELOAD = join(work, 'write-loaded-modules.js');
writeFileSync(
  PRELOAD,
  "process.on('SIGUSR2', () => require('node:fs').writeFileSync(process.env.LOADED_MODULES_FILE, JSON.stringify(Object.keys(require.cache))));\n",
);

let runs = 0;
/** Environment that has the gateway write its loaded modules to a file of its own. */
function preloaded(): { env: Record<string, string>; file: string } {
  const file = join(work, `loaded-${++runs}.json`);
  return { env: { NODE_OPTIONS: `--require ${PRELOAD}`, LOADED_MODULES_FILE: file }, file };
}

/** Asks the running gateway `pid` for the files it has loaded. */
async function loadedModules(pid: number, file: string): Promise<string[]> {
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 10_000;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`gateway ${pid} wrote no ${file} within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return JSON.parse(readFileSync(file, 'utf8')) as string[];
}

const PGLITE = /\/node_modules\/@electric-sql\/pglite(-socket)?\//;
const DEVELOPMENT_CODE = /\/dist\/src\/(development-infrastructure\.module|database\/embedded-postgres|database\/pglite-session-queue|kafka\/development-broker)\.js$/;

afterAll(() => rmSync(work, { recursive: true, force: true }));

it('with DATABASE_URL and KAFKA_BROKERS set, neither PGlite nor the development broker is loaded', async () => {
  const { env: preload, file } = preloaded();
  const environment = await TestEnvironment.start(preload);
  try {
    const loaded = await loadedModules(environment.gateway!.pid!, file);
    // The list is the gateway's own: its store and Kafka connection are in it.
    expect(loaded).toEqual(expect.arrayContaining([join(ROOT, 'dist/src/database/store.js'), join(ROOT, 'dist/src/kafka/kafka-connection.js')]));
    expect(loaded.filter((path) => PGLITE.test(path) || DEVELOPMENT_CODE.test(path))).toEqual([]);
  } finally {
    await environment.stop();
  }
});

it('on the embedded defaults (no DATABASE_URL, no KAFKA_BROKERS), PGlite and the development broker are loaded', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'gateway-data-dir-'));
  const { env: preload, file } = preloaded();
  const gateway = new GatewayProcess(
    { DATA_DIR: dataDir, HTTP_HOST: '127.0.0.1', ISO8583_HOST: '127.0.0.1', HTTP_PORT: '0', ISO8583_PORT: '0', LOG_LEVEL: 'info', ...preload },
    { cwd: ROOT, startTimeoutMs: START_TIMEOUT_MS },
  );
  try {
    await gateway.listening();
    const loaded = await loadedModules(gateway.pid, file);
    expect(loaded.some((path) => /\/node_modules\/@electric-sql\/pglite\//.test(path))).toBe(true);
    expect(loaded.some((path) => /\/node_modules\/@electric-sql\/pglite-socket\//.test(path))).toBe(true);
    expect(loaded).toEqual(expect.arrayContaining([join(ROOT, 'dist/src/development-infrastructure.module.js'), join(ROOT, 'dist/src/kafka/development-broker.js')]));
  } finally {
    await gateway.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}, START_TIMEOUT_MS + 30_000);
