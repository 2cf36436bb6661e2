import { createPublicKey } from 'node:crypto';
import { Kafka, logLevel, Producer } from 'kafkajs';
import request from 'supertest';
import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { BankSigningIdentity, signBankRequest } from '../../libs/jws/request-signing';
import { isUnbound, verifyResponseSignature } from '../../src/channels/http/response-signer';
import { DevelopmentBroker } from '../../src/kafka/development-broker';
import { EVENT_TYPES, TOPICS } from '../../src/kafka/topics';
import { REGISTRATIONS_GROUP } from '../../src/registry/registrations-consumer';
import { createTestDatabase, TestDatabase } from './test-database';
import { TestPki } from './test-pki';
import { TopicReader } from './topic-reader';
import { cliOk } from './operator-cli';
import { aesZoneCryptogram, SoftHsmToken } from '../../tools/softhsm-token';
import { keyCheckValue } from '../../libs/iso8583';

export const SUBJECT_HASH_KEY = 'test-subject-hash-key-0123456789abcdef';
export const OPS_TOKEN = 'test-operator-token-0123456789';
export const TEST_KEY_ENCRYPTION_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

/** The zone master key the tests load into their tokens, to import the banks' MAC keys under it (KEY_STORE=pkcs11). */
const TEST_ZONE_KEY = { label: 'zmk:test', value: Buffer.from('00112233445566778899AABBCCDDEEFF', 'hex') };

/**
 * TEST_KEY_STORE=pkcs11 runs every test gateway with its keys in a SoftHSM2 token of its environment's own
 * (pkcs11-channels.e2e-spec.ts runs the channels' suites so); otherwise KEY_STORE=software.
 */
const testKeyStore = (): 'software' | 'pkcs11' => (process.env.TEST_KEY_STORE === 'pkcs11' ? 'pkcs11' : 'software');

/** Configuration a test gateway runs with: its own database, broker and PKI (and token, under KEY_STORE=pkcs11). */
export function testGatewayEnv(pki: TestPki, database: TestDatabase, broker: DevelopmentBroker, env: Record<string, string> = {}, token: SoftHsmToken | null = null): Record<string, string> {
  const keys: Record<string, string> = token
    ? token.gatewayEnv()
    : { GATEWAY_SIGNING_KEY: pki.gatewayKeyFile, PAN_HASH_KEY: 'test-pan-hash-key-0123456789abcdefgh', SUBJECT_HASH_KEY, KEY_ENCRYPTION_KEY: TEST_KEY_ENCRYPTION_KEY };
  return {
    DATABASE_URL: database.url,
    KAFKA_BROKERS: broker.brokers.join(','),
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    ISO8583_PORT: '0',
    ISO8583_HOST: '127.0.0.1',
    MANAGEMENT_PORT: '0',
    BANKS_FILE: pki.banksFile,
    TRUST_ANCHORS: pki.trustAnchorsFile,
    GATEWAY_SIGNING_CERT: pki.gatewayCertFile,
    ...keys,
    OPS_TOKEN,
    LOG_LEVEL: 'warn',
    KAFKA_CONSUMER_MAX_WAIT_MS: '50',
    DATABASE_POOL_SIZE: '10',
    ...env,
  };
}

export const GATEWAY_MAIN = join(__dirname, '../../dist/src/main.js');

/** A gateway process started by a test, listening on loopback. */
export interface StartedGateway {
  child: ChildProcess;
  baseUrl: string;
  isoPort: number;
  /** The management port's base URL (/metrics, the detailed /health/ready). */
  managementUrl: string;
}

/**
 * Runs `node dist/src/main.js` (exactly as `npm start` runs it) with `env`
 * and resolves once it listens; every log line goes to `logs`.
 */
export async function spawnGateway(env: Record<string, string>, logs: string[]): Promise<StartedGateway> {
  const child = spawn(process.execPath, [GATEWAY_MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let isoPort = 0;
  let managementPort = 0;
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start in 30 s:\n${logs.slice(-20).join('\n')}`)), 30_000);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        logs.push(line);
        try {
          const entry = JSON.parse(line);
          if (typeof entry.iso8583Port === 'number') isoPort = entry.iso8583Port;
          if (typeof entry.managementPort === 'number') managementPort = entry.managementPort;
          if (typeof entry.httpPort === 'number') {
            clearTimeout(timer);
            resolve(entry.httpPort);
          }
        } catch {
          // not a JSON line (should not happen): kept in logs for the redaction test
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${logs.slice(-20).join('\n')}`));
    });
  });
  return { child, baseUrl: `http://127.0.0.1:${port}`, isoPort, managementUrl: `http://127.0.0.1:${managementPort}` };
}

/**
 * One test file's world: a fresh database, its own Kafka broker, a fresh
 * PKI, and the built gateway running as a child process (`node
 * dist/src/main.js`, exactly as `npm start` runs it) on a loopback port.
 * Its log lines are kept in `logs`.
 */
export class TestEnvironment {
  baseUrl!: string;
  /** The ISO 8583 listener's port. */
  isoPort!: number;
  /** The management port's base URL (/metrics, the detailed /health/ready). */
  managementUrl!: string;
  gateway: ChildProcess | null = null;
  readonly logs: string[] = [];
  private producer: Producer | null = null;
  private registrationVersion = 0;
  /** Under KEY_STORE=pkcs11: whether the banks' MAC keys are in the token yet (imported at the first start). */
  private macKeysImported = false;

  private constructor(
    readonly pki: TestPki,
    readonly database: TestDatabase,
    readonly broker: DevelopmentBroker,
    /** The environment's SoftHSM2 token, under TEST_KEY_STORE=pkcs11. */
    readonly token: SoftHsmToken | null,
  ) {}

  /** The zone master key in the token, whose value the test knows: cryptograms of MAC keys for `mac-key import`. */
  readonly zoneKey = TEST_ZONE_KEY;

  static async start(env: Record<string, string> = {}): Promise<TestEnvironment> {
    const environment = await TestEnvironment.withoutGateway();
    await environment.startGateway(env);
    return environment;
  }

  /** The database, broker and PKI only: for tests that start their gateways themselves (spawnGateway). */
  static async withoutGateway(): Promise<TestEnvironment> {
    const [database, broker] = await Promise.all([createTestDatabase(), DevelopmentBroker.start()]);
    if (testKeyStore() === 'software') return new TestEnvironment(new TestPki(), database, broker, null);
    // As a bank's key custodians would: the signing and hash keys made in the token, the zone key loaded.
    const token = new SoftHsmToken();
    const tokenKey = createPublicKey(token.makeGatewayKeys());
    token.loadZoneKey(TEST_ZONE_KEY.label, TEST_ZONE_KEY.value);
    return new TestEnvironment(new TestPki({ tokenKey }), database, broker, token);
  }

  gatewayEnv(env: Record<string, string> = {}): Record<string, string> {
    return testGatewayEnv(this.pki, this.database, this.broker, env, this.token);
  }

  async startGateway(env: Record<string, string> = {}): Promise<void> {
    const started = await spawnGateway(this.gatewayEnv({ LOG_LEVEL: 'info', ...env }), this.logs);
    this.gateway = started.child;
    this.baseUrl = started.baseUrl;
    this.isoPort = started.isoPort;
    this.managementUrl = started.managementUrl;
    if (this.token && !this.macKeysImported) await this.importMacKeys();
  }

  /**
   * KEY_STORE=pkcs11: the banks' MAC keys imported into the token with the operators' ceremony (`mac-key
   * import` under the zone key), once the gateway has registered the banks; resolves when it has reloaded
   * its bank directory with all of them.
   */
  private async importMacKeys(): Promise<void> {
    for (const [bank, hex] of Object.entries(this.pki.macKeys)) {
      const key = Buffer.from(hex, 'hex');
      cliOk(this, 'test-setup', 'mac-key', 'import', '--bank', bank, '--under', TEST_ZONE_KEY.label, '--cryptogram', aesZoneCryptogram(TEST_ZONE_KEY.value, key), '--kcv', keyCheckValue(key));
    }
    this.macKeysImported = true;
    await this.registryChangeLoaded();
  }

  /** Resolves once the gateway's bank directory reflects the newest registry change (its 'bank directory loaded' line says which). */
  async registryChangeLoaded(timeoutMs = 15_000): Promise<void> {
    const [{ newest }] = await this.database.query<{ newest: number }>(`SELECT max(id)::int AS newest FROM registry_audit`);
    await this.waitForLog((line) => line.includes('bank directory loaded') && (JSON.parse(line) as { registryChange: number }).registryChange >= newest, timeoutMs);
  }

  /** SIGTERM and wait for the process to exit. */
  async stopGateway(): Promise<number | null> {
    return (await this.endGateway('SIGTERM')).code;
  }

  /**
   * SIGTERM; says how the process ended: `graceful` when it exited by itself
   * (with 0, or re-raising SIGTERM after its shutdown hooks, as Nest does),
   * not when it had to be killed after 20 s.
   */
  async stopGatewayGracefully(): Promise<{ graceful: boolean; code: number | null; signal: NodeJS.Signals | null }> {
    const ended = await this.endGateway('SIGTERM');
    return { ...ended, graceful: ended.code === 0 || ended.signal === 'SIGTERM' };
  }

  /** SIGKILL: the process dies wherever it is. */
  async killGateway(): Promise<void> {
    await this.endGateway('SIGKILL');
  }

  private async endGateway(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.gateway;
    this.gateway = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return { code: child?.exitCode ?? null, signal: child?.signalCode ?? null };
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, ended) => resolve({ code, signal: ended })));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const result = await exited;
    clearTimeout(timer);
    return result;
  }

  async stop(): Promise<void> {
    await this.producer?.disconnect().catch(() => undefined);
    await this.stopGateway().catch(() => undefined);
    await this.broker.stop();
    await this.database.drop();
  }

  /** As the identity core: publishes a registration and waits until the gateway has stored it. */
  async register(nationalId: string, mobile: string, status: string, version = ++this.registrationVersion + 1000): Promise<void> {
    await this.publishRegistration({ nationalId, mobile, status, version });
    await this.waitForRow(`SELECT 1 FROM registration WHERE national_id = $1 AND version = $2`, [nationalId, version], `registration ${version}`);
  }

  async publishRegistration(data: Record<string, unknown>, key: string | null = String(data.nationalId), raw?: string): Promise<{ partition: number; offset: string }> {
    return this.publishAsIdentityCore(TOPICS.registrations, EVENT_TYPES.registrationUpdated, `${data.nationalId}-${data.version}`, String(data.nationalId), data, key, raw);
  }

  /** As the identity core: publishes an activation result (spec 5.3); `raw` replaces the whole value. */
  async publishResult(data: Record<string, unknown>, key: string, raw?: string): Promise<{ partition: number; offset: string }> {
    return this.publishAsIdentityCore(TOPICS.activationResults, EVENT_TYPES.activationCompleted, `result-${data.activationId}-${data.result}`, String(data.activationId), data, key, raw);
  }

  /** A CloudEvent from the identity core on one of its topics (or `raw` bytes instead of the event). */
  private async publishAsIdentityCore(
    topic: string,
    type: string,
    id: string,
    subject: string,
    data: Record<string, unknown>,
    key: string | null,
    raw?: string,
  ): Promise<{ partition: number; offset: string }> {
    if (!this.producer) {
      this.producer = new Kafka({ clientId: 'identity-core', brokers: this.broker.brokers, logLevel: logLevel.NOTHING }).producer();
      await this.producer.connect();
    }
    const value =
      raw ??
      JSON.stringify({ specversion: '1.0', id, source: 'urn:absher:identity-core', type, time: new Date().toISOString(), subject, datacontenttype: 'application/json', data });
    const [metadata] = await this.producer.send({ topic, messages: [{ key, value }] });
    return { partition: metadata.partition, offset: String(metadata.baseOffset) };
  }

  /** Waits until the gateway's registrations consumer has committed past this message: it was processed. */
  async waitForRegistrationsConsumed(message: { partition: number; offset: string }, timeoutMs = 20_000): Promise<void> {
    return this.waitForConsumed(REGISTRATIONS_GROUP, TOPICS.registrations, message, timeoutMs);
  }

  /** Waits until a consumer group of the gateway has committed past this message. */
  async waitForConsumed(groupId: string, topicName: string, message: { partition: number; offset: string }, timeoutMs = 20_000): Promise<void> {
    const admin = new Kafka({ clientId: 'test-admin', brokers: this.broker.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const [topic] = await admin.fetchOffsets({ groupId, topics: [topicName] });
        const committed = topic?.partitions.find((p) => p.partition === message.partition)?.offset ?? '-1';
        if (BigInt(committed) > BigInt(message.offset)) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`${groupId} did not commit past ${message.partition}/${message.offset}`);
    } finally {
      await admin.disconnect();
    }
  }

  /**
   * Waits until the relay has published the whole outbox and `reader` has
   * read at least as many records per topic as the outbox holds for it:
   * after this, an event that is not in the reader was never written.
   */
  async settled(reader: TopicReader, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pending = await this.database.query<{ count: number }>(`SELECT count(*)::int AS count FROM outbox_event WHERE published_at IS NULL`);
      // Compare CloudEvent ids, not counts: after a crash some events are delivered twice, and a
      // duplicate must not stand in for an event the reader has not seen yet.
      const stored = await this.database.query<{ topic: string; id: string }>(`SELECT topic, (payload::jsonb)->>'id' AS id FROM outbox_event`);
      const read = new Set(reader.records.map((r) => `${r.topic}/${r.event.id}`));
      const unread = stored.filter((e) => reader.topics.includes(e.topic) && !read.has(`${e.topic}/${e.id}`));
      if (pending[0].count === 0 && unread.length === 0) return;
      if (Date.now() > deadline) throw new Error(`outbox not settled: ${pending[0].count} unpublished, ${unread.length} published but not read (${unread.slice(0, 3).map((e) => e.topic).join(', ')}), read ${reader.records.length}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async waitForRow(sql: string, params: unknown[], what: string, timeoutMs = 45_000): Promise<Record<string, unknown>> {
    return (await this.waitForRows(sql, params, 1, what, timeoutMs))[0];
  }

  /** The first log line that matches, once the gateway has written it (its log is written asynchronously). */
  async waitForLog(match: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logs.find(match);
      if (line !== undefined) return line;
      if (Date.now() > deadline) throw new Error(`no such log line within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** At least `count` rows of `sql`, once the gateway has written them (refused traffic is written every 5 s). */
  async waitForRows(sql: string, params: unknown[], count: number, what: string, timeoutMs = 30_000): Promise<Record<string, unknown>[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.database.query(sql, params);
      if (rows.length >= count) return rows;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${rows.length} of ${count} rows`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Sends a signed request like a bank would; `mutate` may tamper with it after signing. */
  async send(
    identity: BankSigningIdentity,
    options: {
      method?: 'POST' | 'GET';
      path?: string;
      requestId: string;
      body?: unknown;
      rawBody?: Buffer;
      overrides?: Record<string, unknown>;
      headers?: Record<string, string>;
      mutateBody?: (body: Buffer) => Buffer;
      /** Another gateway than this environment's own (several instances). */
      baseUrl?: string;
    },
  ): Promise<GatewayAnswer> {
    const method = options.method ?? 'POST';
    const path = options.path ?? '/v1/activations';
    const body = options.rawBody ?? (method === 'POST' ? Buffer.from(JSON.stringify(options.body)) : Buffer.alloc(0));
    const signed = signBankRequest(identity, { method, path, requestId: options.requestId, body }, options.overrides as never);
    const sent = options.mutateBody ? options.mutateBody(body) : body;
    const headers = { ...(method === 'POST' ? { 'content-type': 'application/json' } : {}), ...signed, ...options.headers };
    const agent = request(options.baseUrl ?? this.baseUrl);
    // serialize() is bypassed: the exact signed bytes (even invalid UTF-8) go on the wire.
    const pending = method === 'POST' ? agent.post(path).set(headers).serialize((bytes: Buffer) => bytes as never).send(sent as never) : agent.get(path).set(headers);
    // Keep the exact response bytes: the gateway's signature covers them.
    const response = await pending.buffer(true).parse((res, done) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => done(null, Buffer.concat(chunks)));
    });
    return GatewayAnswer.read(response, this.pki.gatewayPublicKey, this.pki.gatewayKeyId, method, path);
  }
}

/** A response, with its signature already checked against the gateway's certificate. */
export class GatewayAnswer {
  private constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    readonly text: string,
    readonly signatureHeader: Record<string, unknown>,
  ) {}

  static async read(
    response: { status: number; headers: Record<string, string>; body: Buffer },
    gatewayKey: ReturnType<typeof createPublicKey>,
    gatewayKeyId: string,
    method: string,
    path: string,
  ): Promise<GatewayAnswer> {
    const bytes = response.body;
    const signature = response.headers['x-jws-signature'];
    if (!signature) throw new Error(`response ${response.status} is not signed`);
    const header = await verifyResponseSignature(signature, bytes, gatewayKey);
    if (header.kid !== gatewayKeyId) throw new Error('response signed with an unexpected kid');
    // Spec 3.3: a 401 is bound to nothing the caller chose; every other answer to its request.
    if (response.status === 401) {
      if (!isUnbound(header) || header.crit.join() !== 'iat,iss') throw new Error(`a 401's signature is bound to a request: ${JSON.stringify(header)}`);
    } else if (header.htm !== method || header.htu !== path || typeof header.jti !== 'string') {
      throw new Error('response signature bound to another request');
    }
    return new GatewayAnswer(response.status, response.headers, bytes.toString('utf8'), header as unknown as Record<string, unknown>);
  }

  get json(): Record<string, unknown> {
    return JSON.parse(this.text);
  }
}
