import { ChildProcess, execFile, spawn } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, KeyObject, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { Client } from 'pg';
import { stringify } from 'yaml';
import { luhnValid } from '../../libs/identity';
import { keyCheckValue } from '../../libs/iso8583';
import { BankSigningIdentity } from '../../libs/jws/request-signing';
import { parseCertificateBundle } from '../../libs/pki';
import { issueCertificate } from '../../libs/pki/certificate-builder';
import { projectRoot } from '../../src/common/project-root';
import { DEVELOPMENT_BROKER_BINARY, DevelopmentBroker } from '../../src/kafka/development-broker';
import { publishRegistrations } from '../identity-core';
import { aesZoneCryptogram, SoftHsmToken } from '../softhsm-token';
import { allProcesses, readStat } from './cpu';

const DAY = 86_400_000;
const ROOT = projectRoot();
const execFileAsync = promisify(execFile);

/** Where a gateway keeps its secret keys (KEY_STORE), in the order the bench runs them. */
export const KEY_STORES = ['software', 'pkcs11'] as const;
export type KeyStoreKind = (typeof KEY_STORES)[number];

/** The keys a KEY_STORE=software gateway is given; a pkcs11 one refuses them (its keys are in the token). */
const SOFTWARE_KEYS = {
  PAN_HASH_KEY: 'bench-pan-hash-key-0123456789abcdefgh',
  SUBJECT_HASH_KEY: 'bench-subject-hash-key-0123456789abcdef',
  KEY_ENCRYPTION_KEY: 'a1'.repeat(32),
};

/** The AES zone master key loaded into the bench's token, whose value the bench knows: the banks' MAC keys are imported under it. */
const ZONE_KEY = { label: 'zmk:bench', value: Buffer.from('0F1E2D3C4B5A69788796A5B4C3D2E1F0', 'hex') };

export interface BenchBank {
  code: string;
  identity: BankSigningIdentity & { certificatePem: string };
  acquirerId: string;
  macKey: Buffer;
}

/** One running gateway process and where it listens. */
export interface GatewayInstance {
  /** Its GATEWAY_INSTANCE_ID. */
  id: string;
  keyStore: KeyStoreKind;
  process: ChildProcess;
  baseUrl: string;
  isoPort: number;
  /** Its last 200 log lines. */
  log: string[];
}

export interface Customer {
  nationalId: string;
  /** E.164. */
  mobile: string;
  status: 'PENDING_ACTIVATION' | 'ACTIVE';
}

/**
 * What the benchmark runs against, made fresh for each run: a PKI with two
 * banks (BNKP signs PS256 with RSA-2048, BNKE ES256 with P-256), a database
 * of its own on the local PostgreSQL, the Kafka broker (KAFKA_BROKERS, or the
 * development broker), and the built gateway as its own process (or
 * several, each with its own ports and GATEWAY_INSTANCE_ID, on the same
 * database and broker).
 */
export class BenchEnvironment {
  readonly dir = mkdtempSync(join(tmpdir(), 'absher-bench-'));
  readonly banks: BenchBank[];
  readonly trustAnchorsFile = join(this.dir, 'trust-anchors.pem');
  readonly banksFile = join(this.dir, 'banks.yaml');
  readonly gatewayKeyFile = join(this.dir, 'gateway.key.pem');
  readonly gatewayCertFile = join(this.dir, 'gateway.cert.pem');
  /** KEY_STORE=pkcs11: the banks without their MAC keys (the gateway refuses them there), and the token key's certificate. */
  private readonly tokenBanksFile = join(this.dir, 'banks-pkcs11.yaml');
  private readonly tokenCertFile = join(this.dir, 'gateway-token.cert.pem');
  /** The running gateways, the first one started first. */
  readonly gateways: GatewayInstance[] = [];
  brokers: string[] = [];
  databaseUrl = '';
  postgresVersion = '';
  private broker: DevelopmentBroker | null = null;
  private adminUrl = '';
  private databaseName = '';
  private readonly ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  private readonly caPem: string;
  private token: SoftHsmToken | null = null;
  private macKeysImported = false;

  /**
   * @param keyStore the KEY_STORE of the gateways started without one named.
   * @param cpuProfileDir when set, each gateway writes a V8 CPU profile there when it stops (--cpu-prof).
   */
  constructor(
    readonly keyStore: KeyStoreKind = 'software',
    private readonly cpuProfileDir?: string,
  ) {
    this.caPem = issueCertificate({
      subject: { commonName: 'Bench Root CA', organization: 'Bench' },
      publicKey: this.ca.publicKey,
      selfSigningKey: this.ca.privateKey,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
      isCertificateAuthority: true,
      keyUsage: ['keyCertSign', 'cRLSign'],
    });
    writeFileSync(this.trustAnchorsFile, this.caPem);
    const identity = (code: string, keys: { publicKey: KeyObject; privateKey: KeyObject }) => {
      const certificatePem = this.certify(code, keys.publicKey);
      return { bankCode: code, privateKey: keys.privateKey, keyId: parseCertificateBundle(certificatePem)[0].thumbprint, certificatePem };
    };
    this.banks = [
      { code: 'BNKP', identity: identity('BNKP', generateKeyPairSync('rsa', { modulusLength: 2048 })), acquirerId: '400001', macKey: Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex') },
      { code: 'BNKE', identity: identity('BNKE', generateKeyPairSync('ec', { namedCurve: 'P-256' })), acquirerId: '400002', macKey: Buffer.from('FEDCBA98765432100123456789ABCDEF', 'hex') },
    ];
    const gateway = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(this.gatewayKeyFile, gateway.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(this.gatewayCertFile, this.certify('gateway', gateway.publicKey));
    const banks = this.banks.map((bank) => {
      const file = join(this.dir, `${bank.code}.pem`);
      writeFileSync(file, bank.identity.certificatePem);
      return {
        code: bank.code,
        name: `Bench bank ${bank.code}`,
        channels: ['ATM', 'INTERNET_BANKING', 'PHONE_BANKING'],
        certificates: [file],
        acquirerIds: [bank.acquirerId],
        rateLimitPerSecond: 1_000_000, // the benchmark measures the gateway, not its rate limits
      };
    });
    writeFileSync(this.banksFile, stringify({ banks: banks.map((bank, i) => ({ ...bank, macKey: this.banks[i].macKey.toString('hex').toUpperCase() })) }));
    writeFileSync(this.tokenBanksFile, stringify({ banks }));
  }

  /** A signing certificate for `publicKey` from the bench's CA. */
  private certify(code: string, publicKey: KeyObject): string {
    return issueCertificate({
      subject: { commonName: `${code} signing`, organization: 'Bench' },
      publicKey,
      issuer: { certificatePem: this.caPem, privateKey: this.ca.privateKey },
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 30 * DAY),
      keyUsage: ['digitalSignature'],
    });
  }

  /** PostgreSQL: a database of the benchmark's own, so every run starts empty. */
  async createDatabase(adminUrl: string): Promise<void> {
    const admin = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
    try {
      await admin.connect();
    } catch (error) {
      throw new Error(`no PostgreSQL answered at ${adminUrl.replace(/\/\/[^@]*@/, '//')} (${(error as Error).message}); start it or set BENCH_POSTGRES_URL`);
    }
    this.postgresVersion = (await admin.query<{ version: string }>('select version()')).rows[0].version.split(' on ')[0];
    this.databaseName = `absher_bench_${process.pid}_${Date.now()}`;
    await admin.query(`CREATE DATABASE ${this.databaseName}`);
    await admin.end();
    this.adminUrl = adminUrl;
    const url = new URL(adminUrl);
    url.pathname = `/${this.databaseName}`;
    this.databaseUrl = url.toString();
  }

  async startBroker(): Promise<string> {
    if (process.env.KAFKA_BROKERS) {
      this.brokers = process.env.KAFKA_BROKERS.split(',');
      return `Kafka at ${this.brokers.join(',')} (KAFKA_BROKERS)`;
    }
    this.broker = await DevelopmentBroker.start();
    this.brokers = this.broker.brokers;
    return "librdkafka's mock cluster (the development broker)";
  }

  /** The first gateway started (the one-instance figures are its). */
  get gateway(): ChildProcess | null {
    return this.gateways[0]?.process ?? null;
  }

  get baseUrl(): string {
    return this.gateways[0]?.baseUrl ?? '';
  }

  get isoPort(): number {
    return this.gateways[0]?.isoPort ?? 0;
  }

  /**
   * Starts one more gateway process on the database and the broker, on
   * ephemeral ports of its own, and resolves once it listens (under pkcs11,
   * once it has the banks' MAC keys). Its instance id is `bench-<n>` unless
   * `extraEnv` sets GATEWAY_INSTANCE_ID.
   */
  async startGateway(extraEnv: Record<string, string> = {}, keyStore: KeyStoreKind = this.keyStore): Promise<GatewayInstance> {
    const id = extraEnv.GATEWAY_INSTANCE_ID ?? `bench-${this.gateways.length + 1}`;
    const profile = this.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', this.cpuProfileDir, '--cpu-prof-name', `${id}.cpuprofile`] : [];
    const child = spawn(process.execPath, [...profile, join(ROOT, 'dist/src/main.js')], {
      env: { ...this.gatewayEnv(keyStore), GATEWAY_INSTANCE_ID: id, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const instance: GatewayInstance = { id, keyStore, process: child, baseUrl: '', isoPort: 0, log: [] };
    const log = instance.log;
    // Registered before it listens, so stop() ends it whatever happens next.
    this.gateways.push(instance);
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error(`gateway ${id} did not start in 60 s:\n${log.slice(-20).join('\n')}`)), 60_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let newline: number;
        while ((newline = buffered.indexOf('\n')) !== -1) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          log.push(line);
          if (log.length > 200) log.shift();
          try {
            const entry = JSON.parse(line) as { iso8583Port?: number; httpPort?: number };
            if (typeof entry.iso8583Port === 'number') instance.isoPort = entry.iso8583Port;
            if (typeof entry.httpPort === 'number') {
              instance.baseUrl = `http://127.0.0.1:${entry.httpPort}`;
              clearTimeout(timer);
              resolve();
            }
          } catch {
            // not JSON: kept for the error message
          }
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => log.push(chunk.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`gateway ${id} exited with ${code} before listening:\n${log.slice(-20).join('\n')}`));
      });
    });
    if (keyStore === 'pkcs11' && !this.macKeysImported) await this.importMacKeys(instance);
    return instance;
  }

  /** What a gateway of `keyStore` (or the CLI working on its store) runs with. */
  private gatewayEnv(keyStore: KeyStoreKind): Record<string, string> {
    return {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: this.databaseUrl,
      KAFKA_BROKERS: this.brokers.join(','),
      HTTP_PORT: '0',
      HTTP_HOST: '127.0.0.1',
      ISO8583_PORT: '0',
      ISO8583_HOST: '127.0.0.1',
      MANAGEMENT_PORT: '0',
      TRUST_ANCHORS: this.trustAnchorsFile,
      ...(keyStore === 'software'
        ? { BANKS_FILE: this.banksFile, GATEWAY_SIGNING_KEY: this.gatewayKeyFile, GATEWAY_SIGNING_CERT: this.gatewayCertFile, ...SOFTWARE_KEYS }
        : { BANKS_FILE: this.tokenBanksFile, GATEWAY_SIGNING_CERT: this.tokenCertFile, ...this.openToken().gatewayEnv() }),
      OPS_TOKEN: 'bench-operator-token-0123456789',
      LOG_LEVEL: 'info', // the line saying where it listens is at info; nothing per request is
      // The relay's compression is a deployment's choice: passed on so the two can be compared.
      ...(process.env.KAFKA_COMPRESSION ? { KAFKA_COMPRESSION: process.env.KAFKA_COMPRESSION } : {}),
    };
  }

  /**
   * KEY_STORE=pkcs11: a SoftHSM2 token of the bench's own, made at the first
   * use as a bank's key custodians would: the signing and hash keys made in
   * it, the signing key certified by the bench's CA, the zone key loaded.
   */
  private openToken(): SoftHsmToken {
    if (!this.token) {
      const token = new SoftHsmToken();
      writeFileSync(this.tokenCertFile, this.certify('gateway', createPublicKey(token.makeGatewayKeys())));
      token.loadZoneKey(ZONE_KEY.label, ZONE_KEY.value);
      this.token = token;
    }
    return this.token;
  }

  /**
   * KEY_STORE=pkcs11: each bank's MAC key imported into the token with the
   * operators' ceremony (`mac-key import` under the zone key), once `instance`
   * has registered the banks; resolves when it has reloaded its bank
   * directory with them, so that no step meets a bank without its key. The
   * banks are managed with the CLI from then on: later gateways keep the keys.
   */
  private async importMacKeys(instance: GatewayInstance): Promise<void> {
    for (const bank of this.banks) {
      const cryptogram = aesZoneCryptogram(ZONE_KEY.value, bank.macKey);
      await execFileAsync(
        process.execPath,
        [join(ROOT, 'dist/tools/cli.js'), 'mac-key', 'import', '--bank', bank.code, '--under', ZONE_KEY.label, '--cryptogram', cryptogram, '--kcv', keyCheckValue(bank.macKey), '--operator', 'bench'],
        { env: this.gatewayEnv('pkcs11') },
      );
    }
    this.macKeysImported = true;
    const client = new Client({ connectionString: this.databaseUrl });
    await client.connect();
    const newest = (await client.query<{ newest: number }>('SELECT max(id)::int AS newest FROM registry_audit')).rows[0].newest;
    await client.end();
    const loaded = (line: string) => line.includes('bank directory loaded') && (JSON.parse(line) as { registryChange: number }).registryChange >= newest;
    const deadline = Date.now() + 15_000;
    while (!instance.log.some(loaded)) {
      if (Date.now() > deadline) throw new Error(`gateway ${instance.id} did not reload its bank directory with the imported MAC keys in 15 s:\n${instance.log.slice(-20).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops one gateway (SIGTERM, SIGKILL after 20 s) and forgets it. */
  async stopGateway(instance: GatewayInstance): Promise<void> {
    const gateway = instance.process;
    if (gateway.exitCode === null && gateway.signalCode === null) {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      gateway.kill('SIGTERM');
      const timer = setTimeout(() => gateway.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    const at = this.gateways.indexOf(instance);
    if (at >= 0) this.gateways.splice(at, 1);
  }

  /**
   * The PostgreSQL server's main process (postmaster), found as the parent of
   * a backend of ours; null when the server is not on this machine's /proc
   * (remote, or in a container of its own).
   */
  async postmasterPid(): Promise<number | null> {
    const client = new Client({ connectionString: this.databaseUrl, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      const backend = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
      const stat = readStat(backend);
      const parent = stat ? readStat(stat.ppid) : null;
      return stat?.comm === 'postgres' && parent?.comm === 'postgres' ? parent.pid : null;
    } catch {
      return null;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** The development broker's process (a child of this one); null with KAFKA_BROKERS. */
  brokerPid(): number | null {
    if (!this.broker) return null;
    for (const stat of allProcesses()) {
      if (stat.ppid !== process.pid) continue;
      try {
        if (readFileSync(`/proc/${stat.pid}/cmdline`, 'utf8').split('\0')[0] === DEVELOPMENT_BROKER_BINARY) return stat.pid;
      } catch {
        // gone meanwhile
      }
    }
    return null;
  }

  /** Peak resident set size of the gateway process so far (VmHWM), in MB. */
  gatewayPeakRssMb(): number | null {
    return peakRssMb(this.gateway?.pid);
  }

  /**
   * As the identity core: registers `count` customers (a fifth of them
   * already ACTIVE) and waits until the gateway has stored them all.
   */
  async seedRegistrations(count: number): Promise<Customer[]> {
    const customers: Customer[] = [];
    const seen = new Set<string>();
    while (customers.length < count) {
      const nationalId = newNationalId();
      if (seen.has(nationalId)) continue;
      seen.add(nationalId);
      customers.push({ nationalId, mobile: `+9665${String(10_000_000 + customers.length).padStart(8, '0')}`, status: customers.length % 5 === 4 ? 'ACTIVE' : 'PENDING_ACTIVATION' });
    }
    const kafka = new Kafka({ clientId: 'bench-identity-core', brokers: this.brokers, logLevel: logLevel.NOTHING });
    await publishRegistrations(kafka, customers, 'urn:absher:identity-core:bench', 120_000);
    return customers;
  }

  async stop(): Promise<void> {
    for (const instance of [...this.gateways].reverse()) await this.stopGateway(instance);
    await this.broker?.stop();
    if (this.databaseName) {
      const admin = new Client({ connectionString: this.adminUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${this.databaseName} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    }
    rmSync(this.dir, { recursive: true, force: true });
    if (this.token) rmSync(this.token.dir, { recursive: true, force: true });
  }
}

export function peakRssMb(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
    return Number.isFinite(kb) ? Math.round(kb / 1024) : null;
  } catch {
    return null;
  }
}

/**
 * A national ID that passes the gateway's checks (spec 1): 10 digits, first 1 or 2, Luhn.
 * Always a citizen's (1…): residents' (2…) are the seeded read model's (`--registrations`,
 * seeded-registrations.ts), so the bench's customers and its unregistered IDs never meet one.
 */
export function newNationalId(): string {
  const body = `1${String(randomInt(0, 100_000_000)).padStart(8, '0')}`;
  for (let check = 0; check <= 9; check++) if (luhnValid(`${body}${check}`)) return `${body}${check}`;
  throw new Error('unreachable: one check digit always fits');
}
