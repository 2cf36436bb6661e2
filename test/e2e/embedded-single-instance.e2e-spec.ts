import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA_DIR_LOCK_FILE } from '../../src/database/data-dir-lock';
import { EMBEDDED_DATABASE_URL_FILE } from '../../src/database/store';
import { GatewayProcess } from '../support/gateway-process';

/**
 * Without DATABASE_URL the gateway keeps its embedded database in DATA_DIR,
 * and DATA_DIR belongs to one gateway: a second `npm start` there stops at
 * once, says which gateway holds it and what to change, and leaves the first
 * one (and the operator CLI's way to it) alone. A port already taken is
 * said in the words of the variable that sets it.
 */
const ROOT = join(__dirname, '../..');
const CLI = join(ROOT, 'dist/tools/cli.js');
const START_TIMEOUT_MS = 90_000;

const started: GatewayProcess[] = [];
/** A gateway as `npm start` runs it: no DATABASE_URL, no KAFKA_BROKERS (the embedded defaults), DATA_DIR `dataDir`, from the project root. */
function start(dataDir: string, env: Record<string, string> = {}): GatewayProcess {
  const gateway = new GatewayProcess(
    { DATA_DIR: dataDir, HTTP_HOST: '127.0.0.1', ISO8583_HOST: '127.0.0.1', HTTP_PORT: '0', ISO8583_PORT: '0', LOG_LEVEL: 'info', ...env },
    { cwd: ROOT, startTimeoutMs: START_TIMEOUT_MS },
  );
  started.push(gateway);
  return gateway;
}

const dataDirs: string[] = [];
function freshDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-data-dir-'));
  dataDirs.push(dir);
  return dir;
}

/** A pid that surely belongs to no process: one that has just ended. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

afterAll(async () => {
  await Promise.all(started.map((gateway) => gateway.stop()));
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

describe('a second gateway on the DATA_DIR of a running one', () => {
  const dataDir = freshDataDir();
  let first: GatewayProcess;
  let ports: { httpPort: number; iso8583Port: number };

  beforeAll(async () => {
    first = start(dataDir);
    ports = await first.listening();
  }, START_TIMEOUT_MS + 10_000);

  it('the lock file names the running gateway and its ports', () => {
    const holder = JSON.parse(readFileSync(join(dataDir, DATA_DIR_LOCK_FILE), 'utf8'));
    expect(holder).toMatchObject({ pid: first.pid, httpPort: ports.httpPort, iso8583Port: ports.iso8583Port });
    expect(typeof holder.startedAt).toBe('string');
  });

  it('stops at once with a message naming the running gateway and what to change; the first one is untouched and keeps serving', async () => {
    const urlFile = join(dataDir, EMBEDDED_DATABASE_URL_FILE);
    const lockFile = join(dataDir, DATA_DIR_LOCK_FILE);
    const before = { url: readFileSync(urlFile, 'utf8'), urlChanged: statSync(urlFile).mtimeMs, lock: readFileSync(lockFile, 'utf8'), brokers: readFileSync(join(dataDir, 'kafka-brokers'), 'utf8') };

    const second = start(dataDir); // ports 0: other ports than the first's
    expect(await second.exitCode()).toBe(78);

    const errors = second.entries().filter((e) => e.level === 'error');
    expect(errors).toHaveLength(1);
    const message = String(errors[0].message);
    expect(message).toContain(`in use by another gateway (pid ${first.pid}, HTTP port ${ports.httpPort}, ISO 8583 port ${ports.iso8583Port}`);
    for (const variable of ['DATA_DIR', 'HTTP_PORT', 'ISO8583_PORT', 'DATABASE_URL']) expect(message).toContain(variable);
    // It stopped before starting anything of its own: no embedded database, no development broker.
    expect(second.output).not.toMatch(/using embedded PostgreSQL|started the development Kafka broker/);
    expect(second.output).not.toMatch(/^\s+at /m); // no stack trace

    // The first gateway's files are as they were.
    expect(readFileSync(urlFile, 'utf8')).toBe(before.url);
    expect(statSync(urlFile).mtimeMs).toBe(before.urlChanged);
    expect(readFileSync(lockFile, 'utf8')).toBe(before.lock);
    expect(readFileSync(join(dataDir, 'kafka-brokers'), 'utf8')).toBe(before.brokers);

    // And it still serves: HTTP, and the operator CLI through database-url.
    const live = await fetch(`http://127.0.0.1:${ports.httpPort}/health/live`);
    expect(live.status).toBe(200);
    const cli = spawnSync(process.execPath, [CLI, 'banks', 'list', '--operator', 'test-operator'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir },
      encoding: 'utf8',
    });
    expect(cli.stderr).not.toMatch(/"level":"error"/);
    expect(cli.status).toBe(0);
    expect(cli.stdout).toMatch(/^DEVB\s/m);
  }, START_TIMEOUT_MS + 10_000);

  it.each([
    ['HTTP_PORT', 'HTTP_HOST', (p: typeof ports) => ({ HTTP_PORT: String(p.httpPort) }), (p: typeof ports) => p.httpPort],
    ['ISO8583_PORT', 'ISO8583_HOST', (p: typeof ports) => ({ ISO8583_PORT: String(p.iso8583Port) }), (p: typeof ports) => p.iso8583Port],
  ])(
    'a port already in use (here by the first gateway) is named by %s, in one line',
    async (portVariable, hostVariable, env, port) => {
      const elsewhere = freshDataDir();
      const other = start(elsewhere, env(ports));
      expect(await other.exitCode()).toBe(78);
      const errors = other.entries().filter((e) => e.level === 'error');
      expect(errors.map((e) => e.message)).toEqual([
        `${portVariable} ${port(ports)} on ${hostVariable} 127.0.0.1 is already in use: another process (perhaps another gateway) listens there. ` +
          `Stop it, or set ${portVariable} to a free port (0 picks one) or another ${hostVariable}`,
      ]);
      expect(other.output).not.toMatch(/^\s+at /m);
      // A start that failed leaves no lock and no database address behind.
      expect(existsSync(join(elsewhere, DATA_DIR_LOCK_FILE))).toBe(false);
      expect(existsSync(join(elsewhere, EMBEDDED_DATABASE_URL_FILE))).toBe(false);
      expect((await fetch(`http://127.0.0.1:${ports.httpPort}/health/live`)).status).toBe(200);
    },
    START_TIMEOUT_MS + 10_000,
  );
});

it('a lock left by a gateway that is no longer running is taken over, and removed on a clean stop', async () => {
  const dataDir = freshDataDir();
  const lockFile = join(dataDir, DATA_DIR_LOCK_FILE);
  const gone = deadPid();
  writeFileSync(lockFile, JSON.stringify({ pid: gone, startedAt: '2026-01-01T00:00:00.000Z', httpPort: 8080, iso8583Port: 8583 }));

  const gateway = start(dataDir);
  const ports = await gateway.listening();
  const takeover = gateway.entries().find((e) => e.message === 'taking over DATA_DIR from a gateway that is no longer running');
  expect(takeover).toMatchObject({ level: 'warn', previousPid: gone });
  expect(JSON.parse(readFileSync(lockFile, 'utf8'))).toMatchObject({ pid: gateway.pid, httpPort: ports.httpPort, iso8583Port: ports.iso8583Port });
  expect((await fetch(`http://127.0.0.1:${ports.httpPort}/health/live`)).status).toBe(200);

  await gateway.stop();
  expect(existsSync(lockFile)).toBe(false);
  expect(existsSync(join(dataDir, EMBEDDED_DATABASE_URL_FILE))).toBe(false);
}, START_TIMEOUT_MS + 30_000);
