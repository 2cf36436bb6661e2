import 'reflect-metadata';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength, validateSync } from 'class-validator';
import { projectRoot } from '../common/project-root';
import type { JsonLogger } from '../logging/json-logger';

// The development defaults, published in this repository (the signing pair in config/pki/dev).
export const DEVELOPMENT_PAN_HASH_KEY = 'development-only-pan-hash-key-not-for-production';
export const DEVELOPMENT_SUBJECT_HASH_KEY = 'development-only-subject-hash-key-not-for-production';
/** The 32 bytes of "development-only-key-encryption!", as KEY_ENCRYPTION_KEY spells a key. */
export const DEVELOPMENT_KEY_ENCRYPTION_KEY = Buffer.from('development-only-key-encryption!', 'utf8').toString('hex');
export const DEVELOPMENT_SIGNING_KEY = join(projectRoot(), 'config/pki/dev/gateway-signing.key.pem');
export const DEVELOPMENT_SIGNING_CERT = join(projectRoot(), 'config/pki/dev/gateway-signing.cert.pem');

// With a published hash key a stored PAN hash is a PAN (a BIN and a Luhn digit leave about 10^9 candidates).
const DEVELOPMENT_KEY_REASON = 'the development key only goes with the embedded database';

/** What the schema says of a variable besides its validation. */
export interface VariableSpec {
  /** `integer`: digits are read as a number; anything else is kept as text, for the validators to refuse. Text by default. */
  type?: 'text' | 'integer';
  /** A key, password, token or connection string: its value is never echoed in a complaint. */
  secret?: boolean;
  /**
   * The field's default is for development only (published in this
   * repository): when it is used, a warning says so, ending this sentence
   * ("<NAME> is unset: <this>, for development only").
   */
  developmentDefault?: string;
  /** Unset is refused when DATABASE_URL is set, for this reason (in brackets after the complaint). */
  requiredWithDatabaseUrl?: string;
  /** A secret of KEY_STORE=software: under pkcs11 its key is in the token, so the variable is refused, not merely unused. */
  softwareKey?: true;
}

const VARIABLES = new Map<string, VariableSpec>();

/** Declares a field of GatewayConfig as an environment variable of the same name. */
function Variable(spec: VariableSpec = {}): PropertyDecorator {
  return (_target, property) => {
    VARIABLES.set(String(property), spec);
  };
}

/**
 * The one configuration schema (spec section 6 plus the gateway's own
 * settings). Read from the environment once at start; a bad value stops the
 * process with the variable's name and what is wrong with it. Each field is
 * a variable (@Variable: how it is read, whether it is secret, whether its
 * default is for development only); its initial value is its default.
 */
export class GatewayConfig {
  /** PostgreSQL connection string; unset means embedded PGlite in DATA_DIR. */
  @Variable({ secret: true })
  @IsOptional()
  @Matches(/^postgres(ql)?:\/\/\S+$/, { message: 'must be a postgres:// or postgresql:// connection string' })
  DATABASE_URL?: string;

  /** Comma-separated bootstrap servers; unset means the development broker started by the gateway. */
  @Variable()
  @IsOptional()
  @Matches(/^[^,\s:]+:[0-9]{1,5}(,[^,\s:]+:[0-9]{1,5})*$/, { message: 'must be host:port[,host:port...]' })
  KAFKA_BROKERS?: string;

  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(0)
  @Max(65535)
  HTTP_PORT = 8080;

  @Variable()
  @IsString()
  HTTP_HOST = '0.0.0.0';

  /** PEM certificate chain of the bank (HTTP) listener: with HTTP_TLS_KEY, the listener speaks TLS. Plain when unset. */
  @Variable()
  @IsOptional()
  @IsString()
  HTTP_TLS_CERT?: string;

  /** PEM private key of HTTP_TLS_CERT. */
  @Variable()
  @IsOptional()
  @IsString()
  HTTP_TLS_KEY?: string;

  /**
   * PEM bundle of the CAs banks' client certificates chain to: with it the listener requires a client
   * certificate (mutual TLS), and the certificate must be one its bank's registry entry lists (tlsClients).
   */
  @Variable()
  @IsOptional()
  @IsString()
  HTTP_TLS_CLIENT_CA?: string;

  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(0)
  @Max(65535)
  ISO8583_PORT = 8583;

  @Variable()
  @IsString()
  ISO8583_HOST = '0.0.0.0';

  /** PEM certificate chain of the ISO 8583 listener: with ISO8583_TLS_KEY, the listener speaks TLS. Plain when unset. */
  @Variable()
  @IsOptional()
  @IsString()
  ISO8583_TLS_CERT?: string;

  /** PEM private key of ISO8583_TLS_CERT. */
  @Variable()
  @IsOptional()
  @IsString()
  ISO8583_TLS_KEY?: string;

  /**
   * PEM bundle of the CAs ATM switches' client certificates chain to: with it the listener requires a client
   * certificate (mutual TLS), and the certificate must be one its bank's registry entry lists (tlsClients).
   */
  @Variable()
  @IsOptional()
  @IsString()
  ISO8583_TLS_CLIENT_CA?: string;

  /** An ATM switch connection silent this long is closed. */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(1000)
  @Max(86_400_000)
  ISO8583_IDLE_TIMEOUT_MS = 300_000;

  /** ATM switch connections open at once; one more is closed at once, unserved. */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(100_000)
  ISO8583_MAX_CONNECTIONS = 1000;

  /** ATM switch connections open at once from one IP address; one more is closed at once, unserved. */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(100_000)
  ISO8583_MAX_CONNECTIONS_PER_ADDRESS = 100;

  /**
   * An ATM switch connection that has sent no MAC-verified message (0200,
   * 0420/0421) this long after it opened is closed: sign-on and echo carry no
   * MAC, so alone they do not hold a connection.
   */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(86_400_000)
  ISO8583_UNAUTHENTICATED_TIMEOUT_MS = 30_000;

  /**
   * An ATM switch connection that sends this many messages whose MAC does not
   * verify (or is missing) within ISO8583_MAC_FAILURE_WINDOW_MS is closed
   * once their 63s are written (spec 4.3: such a connection may be closed).
   */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(100_000)
  ISO8583_MAX_MAC_FAILURES = 5;

  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(86_400_000)
  ISO8583_MAC_FAILURE_WINDOW_MS = 60_000;

  /**
   * An HTTP connection whose requests are answered 401 this many times within
   * HTTP_AUTH_FAILURE_WINDOW_MS gets `Connection: close` on that 401.
   */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(100_000)
  HTTP_MAX_AUTH_FAILURES = 20;

  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(86_400_000)
  HTTP_AUTH_FAILURE_WINDOW_MS = 60_000;

  /** Refused messages and requests kept as samples, per minute and instance (at most 5 of them from one source). */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(0)
  @Max(10_000)
  REFUSED_SAMPLES_PER_MINUTE = 60;

  /** Counts and samples of refused traffic are deleted after this many days. */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(3650)
  REFUSED_TRAFFIC_RETENTION_DAYS = 30;

  /**
   * The management port: /metrics and the detailed /health/ready, kept off
   * the port banks reach. Loopback unless MANAGEMENT_HOST says otherwise
   * (for example a private interface Prometheus scrapes).
   */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(0)
  @Max(65535)
  MANAGEMENT_PORT = 9090;

  @Variable()
  @IsString()
  MANAGEMENT_HOST = '127.0.0.1';

  /**
   * A client that has not sent its whole request line and headers this long
   * after connecting (or after starting a request) is answered 408 and
   * disconnected. Honest clients send headers in one go; this is what cuts
   * off slowloris clients and connections that never say anything.
   */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(600_000)
  HTTP_HEADERS_TIMEOUT_MS = 10_000;

  /** A request whose headers and body have not all arrived this long after it started is answered 408 and disconnected. */
  @Variable({ type: 'integer' })
  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(600_000)
  HTTP_REQUEST_TIMEOUT_MS = 30_000;

  /**
   * Key of the keyed hash (HMAC-SHA-256) under which PANs are stored; the
   * PAN itself never is.
   */
  @Variable({ secret: true, developmentDefault: 'PANs are hashed with a development key', requiredWithDatabaseUrl: DEVELOPMENT_KEY_REASON, softwareKey: true })
  @MinLength(32, { message: 'must be at least 32 characters' })
  PAN_HASH_KEY: string = DEVELOPMENT_PAN_HASH_KEY;

  @Variable()
  @IsString()
  @MinLength(1)
  BANKS_FILE = 'config/banks.yaml';

  @Variable()
  @IsString()
  @MinLength(1)
  TRUST_ANCHORS = 'config/pki/trust-anchors.pem';

  /** The gateway's response-signing key and its certificate (PEM files); set together. */
  @Variable({ secret: true, developmentDefault: 'responses are signed with the development key', softwareKey: true })
  @IsString()
  GATEWAY_SIGNING_KEY: string = DEVELOPMENT_SIGNING_KEY;

  @Variable({ developmentDefault: "responses name the development certificate's key" })
  @IsString()
  GATEWAY_SIGNING_CERT: string = DEVELOPMENT_SIGNING_CERT;

  /**
   * Where secret keys live: `software` (PEM files, sealed keys in the store, hash keys in the
   * environment), or `pkcs11`: every one in a PKCS#11 token, used only through it (the signing key is
   * GATEWAY_SIGNING_KEY_LABEL there); the software key variables are then refused.
   */
  @Variable()
  @IsIn(['software', 'pkcs11'])
  KEY_STORE: 'software' | 'pkcs11' = 'software';

  /** Path of the PKCS#11 library: SoftHSM2's libsofthsm2.so, or a network HSM's client library. */
  @Variable()
  @IsOptional()
  @IsString()
  PKCS11_MODULE?: string;

  @Variable()
  @IsOptional()
  @IsString()
  PKCS11_TOKEN_LABEL?: string;

  /** The token's user PIN; or PKCS11_PIN_FILE, a file holding it (kept out of the environment). */
  @Variable({ secret: true })
  @IsOptional()
  @IsString()
  PKCS11_PIN?: string;

  @Variable()
  @IsOptional()
  @IsString()
  PKCS11_PIN_FILE?: string;

  /** Under KEY_STORE=pkcs11, the label of the gateway's EC P-256 signing key in the token; GATEWAY_SIGNING_CERT is its certificate. */
  @Variable()
  @IsOptional()
  @IsString()
  GATEWAY_SIGNING_KEY_LABEL?: string;

  /** `iss` of the gateway's response signatures. */
  @Variable()
  @Matches(/^[A-Za-z0-9._:-]{1,64}$/, { message: 'must be 1-64 characters of [A-Za-z0-9._:-]' })
  GATEWAY_ID = 'absher-bank-gateway';

  /**
   * This instance's name among the gateways sharing one database: in the
   * heartbeat table, the relay's PostgreSQL connection, metrics and
   * /health/ready. Unset: host name and process id.
   */
  @Variable()
  @Matches(/^[A-Za-z0-9._:-]{1,64}$/, { message: 'must be 1-64 characters of [A-Za-z0-9._:-]' })
  GATEWAY_INSTANCE_ID = `${hostname().replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 50)}-${process.pid}`;

  /** Where embedded PGlite keeps its files. */
  @Variable()
  @IsString()
  DATA_DIR = '.data';

  @Variable()
  @IsIn(['debug', 'info', 'warn', 'error'])
  LOG_LEVEL: 'debug' | 'info' | 'warn' | 'error' = 'info';

  /** Key of the keyed hash (HMAC-SHA-256) that stands for a national ID on the ops stream. */
  @Variable({ secret: true, developmentDefault: 'ops events use a development key', requiredWithDatabaseUrl: DEVELOPMENT_KEY_REASON, softwareKey: true })
  @MinLength(32, { message: 'must be at least 32 characters' })
  SUBJECT_HASH_KEY: string = DEVELOPMENT_SUBJECT_HASH_KEY;

  /**
   * Token an operator gives to open the live page at /ops (a login form, or
   * `Authorization: Bearer`). Unset: the page is open, which only goes with
   * the embedded database.
   */
  @Variable({ secret: true, requiredWithDatabaseUrl: 'an open /ops page only goes with the embedded database' })
  @IsOptional()
  @MinLength(16, { message: 'must be at least 16 characters' })
  OPS_TOKEN?: string;

  @Variable()
  @Matches(/^[A-Za-z0-9._-]{1,64}$/)
  KAFKA_CLIENT_ID = 'absher-bank-gateway';

  /** Compression of the batches the outbox relay produces (gzip is built into kafkajs; the others need codecs it does not ship). */
  @Variable()
  @IsIn(['none', 'gzip'])
  KAFKA_COMPRESSION: 'none' | 'gzip' = 'gzip';

  /** TLS to the brokers: `true` with the system CAs, or with KAFKA_SSL_CA_FILE. */
  @Variable()
  @IsIn(['true', 'false'])
  KAFKA_SSL: 'true' | 'false' = 'false';

  /** PEM bundle of the CAs the brokers' certificates chain to (implies KAFKA_SSL=true). */
  @Variable()
  @IsOptional()
  @IsString()
  KAFKA_SSL_CA_FILE?: string;

  /** SASL mechanism; with it KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required. */
  @Variable()
  @IsOptional()
  @IsIn(['plain', 'scram-sha-256', 'scram-sha-512'])
  KAFKA_SASL_MECHANISM?: 'plain' | 'scram-sha-256' | 'scram-sha-512';

  @Variable()
  @IsOptional()
  @IsString()
  KAFKA_SASL_USERNAME?: string;

  @Variable({ secret: true })
  @IsOptional()
  @IsString()
  KAFKA_SASL_PASSWORD?: string;

  /**
   * Key-encryption key: 32 bytes as 64 hex digits. MAC keys are stored
   * encrypted under it (AES-256-GCM) and decrypted only in memory.
   */
  @Variable({ secret: true, developmentDefault: 'MAC keys are sealed with a development key', requiredWithDatabaseUrl: DEVELOPMENT_KEY_REASON, softwareKey: true })
  @Matches(/^[0-9a-fA-F]{64}$/, { message: 'must be 64 hex digits (a 32-byte key)' })
  KEY_ENCRYPTION_KEY: string = DEVELOPMENT_KEY_ENCRYPTION_KEY;

  @Variable({ type: 'integer' })
  @IsInt()
  @Min(1)
  @Max(10000)
  OUTBOX_BATCH_SIZE = 500;

  /** Not ready while more events than this wait in the outbox. */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(1)
  OUTBOX_READY_MAX_BACKLOG = 10_000;

  /** Not ready while the oldest unpublished event is older than this. */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(1)
  OUTBOX_READY_MAX_AGE_SECONDS = 60;

  /**
   * On SIGTERM, how long the instance answers /health/ready with 503 while
   * still serving, before it stops accepting connections: at least the load
   * balancer's check interval times its failure count (HAProxy in docker/:
   * 2 s x 2). 0 (the default, for a single instance) stops at once.
   */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(0)
  @Max(120_000)
  SHUTDOWN_DRAIN_MS = 0;

  /** Published outbox rows are deleted this long after they were written (at least a minute). */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(60)
  OUTBOX_RETENTION_SECONDS = 86_400;

  /**
   * A row Kafka refuses for itself (unknown topic, record too large…) is
   * retried this many times, with back-off, and then parked for an operator
   * (`npm run cli -- outbox parked`). A Kafka outage counts no attempts.
   */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(1)
  @Max(1000)
  OUTBOX_MAX_ATTEMPTS = 10;

  /** The first retry of a refused row waits this long; each next one twice as long, up to 5 minutes. */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(10)
  @Max(300_000)
  OUTBOX_RETRY_BASE_MS = 1000;

  /** Accepted distance between a request's `iat` and the gateway's clock (spec 3.3: 300 s). */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(1)
  @Max(3600)
  JWS_MAX_AGE_SECONDS = 300;

  @Variable({ type: 'integer' })
  @IsInt()
  @Min(1)
  @Max(200)
  DATABASE_POOL_SIZE = 20;

  /** How long a Kafka fetch may wait for data; bounds how soon a registration update is seen. */
  @Variable({ type: 'integer' })
  @IsInt()
  @Min(10)
  @Max(10000)
  KAFKA_CONSUMER_MAX_WAIT_MS = 500;
}

export class ConfigurationError extends Error {}

/** A service the gateway needs at start (PostgreSQL) cannot be reached: said with the service and the variable that points at it. */
export class ServiceUnreachableError extends Error {}

/**
 * Reads the schema's variables from `env` (an empty one is unset), checks
 * them, and fills what is unset from the defaults. Development defaults
 * used are said to `logger`, one warning per variable (unless LOG_LEVEL is
 * error); without a logger they are used silently (tools).
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, logger?: JsonLogger): GatewayConfig {
  const config = new GatewayConfig();
  const target = config as unknown as Record<string, unknown>;
  const problems: string[] = [];
  const unset = new Set<string>();
  for (const [name, spec] of VARIABLES) {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') {
      unset.add(name);
      continue;
    }
    if (spec.type === 'integer') target[name] = /^-?[0-9]+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
    else target[name] = raw.trim();
  }
  for (const error of validateSync(config)) {
    const constraints = error.constraints ?? {};
    // A value that is not a number only needs to be told so, not also that it is out of range.
    const messages = constraints.isInt ? [constraints.isInt] : Object.values(constraints);
    const text = messages.map((m) => m.replace(new RegExp(`^${error.property} `), '')).join('; ');
    const shown = VARIABLES.get(error.property)?.secret ? '(value hidden)' : `(got ${JSON.stringify(error.value)})`;
    problems.push(`${error.property} ${text} ${shown}`);
  }
  const tokenKeys = config.KEY_STORE === 'pkcs11';
  for (const [name, spec] of VARIABLES) {
    if (tokenKeys && spec.softwareKey && !unset.has(name)) problems.push(`${name} is a software key: under KEY_STORE=pkcs11 its key is in the token; unset it`);
  }
  if (config.DATABASE_URL) {
    for (const [name, spec] of VARIABLES) {
      if (spec.requiredWithDatabaseUrl && !(tokenKeys && spec.softwareKey) && unset.has(name)) problems.push(`${name} is required when DATABASE_URL is set (${spec.requiredWithDatabaseUrl})`);
    }
  }
  for (const listener of ['HTTP', 'ISO8583'] as const) {
    const cert = config[`${listener}_TLS_CERT` as const];
    const key = config[`${listener}_TLS_KEY` as const];
    const clientCa = config[`${listener}_TLS_CLIENT_CA` as const];
    if (Boolean(cert) !== Boolean(key)) problems.push(`${listener}_TLS_CERT and ${listener}_TLS_KEY go together: give both for TLS, or neither`);
    if (clientCa && !cert) problems.push(`${listener}_TLS_CLIENT_CA needs ${listener}_TLS_CERT and ${listener}_TLS_KEY (mutual TLS is TLS first)`);
  }
  // The request timeout covers the headers too, so a longer headers timeout would never be reached.
  // Compared only when both are valid, so a bad value is reported once.
  const timeoutsValid = !problems.some((problem) => /^HTTP_(HEADERS|REQUEST)_TIMEOUT_MS /.test(problem));
  if (timeoutsValid && config.HTTP_HEADERS_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS) {
    problems.push(`HTTP_HEADERS_TIMEOUT_MS must not be longer than HTTP_REQUEST_TIMEOUT_MS (got ${config.HTTP_HEADERS_TIMEOUT_MS} and ${config.HTTP_REQUEST_TIMEOUT_MS})`);
  }
  if (config.KAFKA_SASL_MECHANISM && (!config.KAFKA_SASL_USERNAME || !config.KAFKA_SASL_PASSWORD)) {
    problems.push('KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with KAFKA_SASL_MECHANISM');
  }
  if (!config.KAFKA_SASL_MECHANISM && (config.KAFKA_SASL_USERNAME || config.KAFKA_SASL_PASSWORD)) {
    problems.push('KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD need KAFKA_SASL_MECHANISM');
  }
  if (config.MANAGEMENT_PORT !== 0 && (config.MANAGEMENT_PORT === config.HTTP_PORT || config.MANAGEMENT_PORT === config.ISO8583_PORT)) {
    problems.push(`MANAGEMENT_PORT must differ from HTTP_PORT and ISO8583_PORT (got ${config.MANAGEMENT_PORT})`);
  }
  if (tokenKeys) {
    const missing = ['PKCS11_MODULE', 'PKCS11_TOKEN_LABEL', 'GATEWAY_SIGNING_KEY_LABEL', 'GATEWAY_SIGNING_CERT'].filter((name) => unset.has(name));
    if (missing.length) problems.push(`KEY_STORE=pkcs11 needs ${missing.join(', ')}`);
    if (Boolean(config.PKCS11_PIN) === Boolean(config.PKCS11_PIN_FILE)) problems.push('KEY_STORE=pkcs11 needs one of PKCS11_PIN and PKCS11_PIN_FILE');
  } else if (unset.has('GATEWAY_SIGNING_KEY') !== unset.has('GATEWAY_SIGNING_CERT')) {
    // Each half of the development pair only goes with the other.
    problems.push('GATEWAY_SIGNING_KEY and GATEWAY_SIGNING_CERT must be set together');
  }
  if (problems.length) throw new ConfigurationError(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  if (logger && config.LOG_LEVEL !== 'error') {
    for (const [name, spec] of VARIABLES) {
      if (spec.developmentDefault && unset.has(name) && !(tokenKeys && spec.softwareKey)) logger.emit('warn', `${name} is unset: ${spec.developmentDefault}, for development only`);
    }
  }
  return config;
}
