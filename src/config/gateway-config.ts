import 'reflect-metadata';
import { hostname } from 'node:os';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength, validateSync } from 'class-validator';

/**
 * The one configuration schema (spec section 6 plus the gateway's own
 * settings). Read from the environment once at start; a bad value stops the
 * process with the variable's name and what is wrong with it.
 */
export class GatewayConfig {
  /** PostgreSQL connection string; unset means embedded PGlite in DATA_DIR. */
  @IsOptional()
  @Matches(/^postgres(ql)?:\/\/\S+$/, { message: 'must be a postgres:// or postgresql:// connection string' })
  DATABASE_URL?: string;

  /** Comma-separated bootstrap servers; unset means the development broker started by the gateway. */
  @IsOptional()
  @Matches(/^[^,\s:]+:[0-9]{1,5}(,[^,\s:]+:[0-9]{1,5})*$/, { message: 'must be host:port[,host:port...]' })
  KAFKA_BROKERS?: string;

  @IsInt({ message: 'must be a whole number' })
  @Min(0)
  @Max(65535)
  HTTP_PORT = 8080;

  @IsString()
  HTTP_HOST = '0.0.0.0';

  @IsInt({ message: 'must be a whole number' })
  @Min(0)
  @Max(65535)
  ISO8583_PORT = 8583;

  @IsString()
  ISO8583_HOST = '0.0.0.0';

  /** An ATM switch connection silent this long is closed. */
  @IsInt()
  @Min(1000)
  @Max(86_400_000)
  ISO8583_IDLE_TIMEOUT_MS = 300_000;

  /** ATM switch connections open at once; one more is closed at once, unserved. */
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(100_000)
  ISO8583_MAX_CONNECTIONS = 1000;

  /** ATM switch connections open at once from one IP address; one more is closed at once, unserved. */
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(100_000)
  ISO8583_MAX_CONNECTIONS_PER_ADDRESS = 100;

  /**
   * An ATM switch connection that has sent no MAC-verified message (0200,
   * 0420/0421) this long after it opened is closed: sign-on and echo carry no
   * MAC, so alone they do not hold a connection.
   */
  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(86_400_000)
  ISO8583_UNAUTHENTICATED_TIMEOUT_MS = 30_000;

  /**
   * An ATM switch connection that sends this many messages whose MAC does not
   * verify (or is missing) within ISO8583_MAC_FAILURE_WINDOW_MS is closed
   * once their 63s are written (spec 4.3: such a connection may be closed).
   */
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(100_000)
  ISO8583_MAX_MAC_FAILURES = 5;

  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(86_400_000)
  ISO8583_MAC_FAILURE_WINDOW_MS = 60_000;

  /**
   * An HTTP connection whose requests are answered 401 this many times within
   * HTTP_AUTH_FAILURE_WINDOW_MS gets `Connection: close` on that 401.
   */
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(100_000)
  HTTP_MAX_AUTH_FAILURES = 20;

  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(86_400_000)
  HTTP_AUTH_FAILURE_WINDOW_MS = 60_000;

  /** Refused messages and requests kept as samples, per minute and instance (at most 5 of them from one source). */
  @IsInt({ message: 'must be a whole number' })
  @Min(0)
  @Max(10_000)
  REFUSED_SAMPLES_PER_MINUTE = 60;

  /** Counts and samples of refused traffic are deleted after this many days. */
  @IsInt({ message: 'must be a whole number' })
  @Min(1)
  @Max(3650)
  REFUSED_TRAFFIC_RETENTION_DAYS = 30;

  /**
   * The management port: /metrics and the detailed /health/ready, kept off
   * the port banks reach. Loopback unless MANAGEMENT_HOST says otherwise
   * (for example a private interface Prometheus scrapes).
   */
  @IsInt({ message: 'must be a whole number' })
  @Min(0)
  @Max(65535)
  MANAGEMENT_PORT = 9090;

  @IsString()
  MANAGEMENT_HOST = '127.0.0.1';

  /**
   * A client that has not sent its whole request line and headers this long
   * after connecting (or after starting a request) is answered 408 and
   * disconnected. Honest clients send headers in one go; this is what cuts
   * off slowloris clients and connections that never say anything.
   */
  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(600_000)
  HTTP_HEADERS_TIMEOUT_MS = 10_000;

  /** A request whose headers and body have not all arrived this long after it started is answered 408 and disconnected. */
  @IsInt({ message: 'must be a whole number' })
  @Min(1000)
  @Max(600_000)
  HTTP_REQUEST_TIMEOUT_MS = 30_000;

  /**
   * Key of the keyed hash (HMAC-SHA-256) under which PANs are stored; the
   * PAN itself never is. Unset: a development key, with a warning.
   */
  @IsOptional()
  @MinLength(32, { message: 'must be at least 32 characters' })
  PAN_HASH_KEY?: string;

  @IsString()
  @MinLength(1)
  BANKS_FILE = 'config/banks.yaml';

  @IsString()
  @MinLength(1)
  TRUST_ANCHORS = 'config/pki/trust-anchors.pem';

  @IsOptional()
  @IsString()
  GATEWAY_SIGNING_KEY?: string;

  @IsOptional()
  @IsString()
  GATEWAY_SIGNING_CERT?: string;

  /** `iss` of the gateway's response signatures. */
  @Matches(/^[A-Za-z0-9._:-]{1,64}$/, { message: 'must be 1-64 characters of [A-Za-z0-9._:-]' })
  GATEWAY_ID = 'absher-bank-gateway';

  /**
   * This instance's name among the gateways sharing one database: in the
   * heartbeat table, the relay's PostgreSQL connection, metrics and
   * /health/ready. Unset: host name and process id.
   */
  @Matches(/^[A-Za-z0-9._:-]{1,64}$/, { message: 'must be 1-64 characters of [A-Za-z0-9._:-]' })
  GATEWAY_INSTANCE_ID = `${hostname().replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 50)}-${process.pid}`;

  /** Where embedded PGlite keeps its files. */
  @IsString()
  DATA_DIR = '.data';

  @IsIn(['debug', 'info', 'warn', 'error'])
  LOG_LEVEL: 'debug' | 'info' | 'warn' | 'error' = 'info';

  /**
   * Key of the keyed hash (HMAC-SHA-256) that stands for a national ID on the
   * ops stream. Unset: a development key, with a warning.
   */
  @IsOptional()
  @MinLength(32, { message: 'must be at least 32 characters' })
  SUBJECT_HASH_KEY?: string;

  /**
   * Token an operator gives to open the live page at /ops (a login form, or
   * `Authorization: Bearer`). Unset: the page is open, which only goes with
   * the embedded database.
   */
  @IsOptional()
  @MinLength(16, { message: 'must be at least 16 characters' })
  OPS_TOKEN?: string;

  @Matches(/^[A-Za-z0-9._-]{1,64}$/)
  KAFKA_CLIENT_ID = 'absher-bank-gateway';

  /** Compression of the batches the outbox relay produces (gzip is built into kafkajs; the others need codecs it does not ship). */
  @IsIn(['none', 'gzip'])
  KAFKA_COMPRESSION: 'none' | 'gzip' = 'gzip';

  /** TLS to the brokers: `true` with the system CAs, or with KAFKA_SSL_CA_FILE. */
  @IsIn(['true', 'false'])
  KAFKA_SSL: 'true' | 'false' = 'false';

  /** PEM bundle of the CAs the brokers' certificates chain to (implies KAFKA_SSL=true). */
  @IsOptional()
  @IsString()
  KAFKA_SSL_CA_FILE?: string;

  /** SASL mechanism; with it KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required. */
  @IsOptional()
  @IsIn(['plain', 'scram-sha-256', 'scram-sha-512'])
  KAFKA_SASL_MECHANISM?: 'plain' | 'scram-sha-256' | 'scram-sha-512';

  @IsOptional()
  @IsString()
  KAFKA_SASL_USERNAME?: string;

  @IsOptional()
  @IsString()
  KAFKA_SASL_PASSWORD?: string;

  /**
   * Key-encryption key: 32 bytes as 64 hex digits. MAC keys are stored
   * encrypted under it (AES-256-GCM) and decrypted only in memory. Unset:
   * a development key, with a warning, which only goes with the embedded
   * database.
   */
  @IsOptional()
  @Matches(/^[0-9a-fA-F]{64}$/, { message: 'must be 64 hex digits (a 32-byte key)' })
  KEY_ENCRYPTION_KEY?: string;

  @IsInt()
  @Min(1)
  @Max(10000)
  OUTBOX_BATCH_SIZE = 500;

  /** Not ready while more events than this wait in the outbox. */
  @IsInt()
  @Min(1)
  OUTBOX_READY_MAX_BACKLOG = 10_000;

  /** Not ready while the oldest unpublished event is older than this. */
  @IsInt()
  @Min(1)
  OUTBOX_READY_MAX_AGE_SECONDS = 60;

  /**
   * On SIGTERM, how long the instance answers /health/ready with 503 while
   * still serving, before it stops accepting connections: at least the load
   * balancer's check interval times its failure count (HAProxy in docker/:
   * 2 s x 2). 0 (the default, for a single instance) stops at once.
   */
  @IsInt()
  @Min(0)
  @Max(120_000)
  SHUTDOWN_DRAIN_MS = 0;

  /** Published outbox rows are deleted this long after they were written (at least a minute). */
  @IsInt()
  @Min(60)
  OUTBOX_RETENTION_SECONDS = 86_400;

  /**
   * A row Kafka refuses for itself (unknown topic, record too large…) is
   * retried this many times, with back-off, and then parked for an operator
   * (`npm run cli -- outbox parked`). A Kafka outage counts no attempts.
   */
  @IsInt()
  @Min(1)
  @Max(1000)
  OUTBOX_MAX_ATTEMPTS = 10;

  /** The first retry of a refused row waits this long; each next one twice as long, up to 5 minutes. */
  @IsInt()
  @Min(10)
  @Max(300_000)
  OUTBOX_RETRY_BASE_MS = 1000;

  /** Accepted distance between a request's `iat` and the gateway's clock (spec 3.3: 300 s). */
  @IsInt()
  @Min(1)
  @Max(3600)
  JWS_MAX_AGE_SECONDS = 300;

  @IsInt()
  @Min(1)
  @Max(200)
  DATABASE_POOL_SIZE = 20;

  /** How long a Kafka fetch may wait for data; bounds how soon a registration update is seen. */
  @IsInt()
  @Min(10)
  @Max(10000)
  KAFKA_CONSUMER_MAX_WAIT_MS = 500;
}

const NUMERIC: ReadonlyArray<keyof GatewayConfig> = [
  'HTTP_PORT',
  'ISO8583_PORT',
  'OUTBOX_BATCH_SIZE',
  'JWS_MAX_AGE_SECONDS',
  'DATABASE_POOL_SIZE',
  'KAFKA_CONSUMER_MAX_WAIT_MS',
  'ISO8583_IDLE_TIMEOUT_MS',
  'ISO8583_MAX_CONNECTIONS',
  'ISO8583_MAX_CONNECTIONS_PER_ADDRESS',
  'ISO8583_UNAUTHENTICATED_TIMEOUT_MS',
  'HTTP_HEADERS_TIMEOUT_MS',
  'HTTP_REQUEST_TIMEOUT_MS',
  'OUTBOX_READY_MAX_BACKLOG',
  'OUTBOX_READY_MAX_AGE_SECONDS',
  'OUTBOX_RETENTION_SECONDS',
  'SHUTDOWN_DRAIN_MS',
  'OUTBOX_MAX_ATTEMPTS',
  'OUTBOX_RETRY_BASE_MS',
  'ISO8583_MAX_MAC_FAILURES',
  'ISO8583_MAC_FAILURE_WINDOW_MS',
  'HTTP_MAX_AUTH_FAILURES',
  'HTTP_AUTH_FAILURE_WINDOW_MS',
  'REFUSED_SAMPLES_PER_MINUTE',
  'REFUSED_TRAFFIC_RETENTION_DAYS',
  'MANAGEMENT_PORT',
];

export class ConfigurationError extends Error {}

/** A service the gateway needs at start (PostgreSQL) cannot be reached: said with the service and the variable that points at it. */
export class ServiceUnreachableError extends Error {}

export function loadConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  const config = new GatewayConfig();
  const target = config as unknown as Record<string, unknown>;
  const problems: string[] = [];
  for (const name of Object.keys(config).concat(['DATABASE_URL', 'KAFKA_BROKERS', 'GATEWAY_SIGNING_KEY', 'GATEWAY_SIGNING_CERT', 'SUBJECT_HASH_KEY', 'PAN_HASH_KEY', 'OPS_TOKEN', 'KAFKA_SSL_CA_FILE', 'KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'KEY_ENCRYPTION_KEY'])) {
    if (name.startsWith('_')) continue;
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    if (NUMERIC.includes(name as keyof GatewayConfig)) {
      target[name] = /^-?[0-9]+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
    } else {
      target[name] = raw.trim();
    }
  }
  for (const error of validateSync(config)) {
    const constraints = error.constraints ?? {};
    // A value that is not a number only needs to be told so, not also that it is out of range.
    const messages = constraints.isInt ? [constraints.isInt] : Object.values(constraints);
    const text = messages.map((m) => m.replace(new RegExp(`^${error.property} `), '')).join('; ');
    const shown = /KEY|URL|TOKEN|PASSWORD/.test(error.property) ? '(value hidden)' : `(got ${JSON.stringify(error.value)})`;
    problems.push(`${error.property} ${text} ${shown}`);
  }
  // The built-in hash keys are published in this repository: with them a stored PAN hash is a PAN
  // (a BIN and a Luhn digit leave about 10^9 candidates). They only go with the embedded database.
  if (config.DATABASE_URL) {
    for (const name of ['PAN_HASH_KEY', 'SUBJECT_HASH_KEY', 'KEY_ENCRYPTION_KEY'] as const) {
      if (!config[name]) problems.push(`${name} is required when DATABASE_URL is set (the development key only goes with the embedded database)`);
    }
    if (!config.OPS_TOKEN) problems.push('OPS_TOKEN is required when DATABASE_URL is set (an open /ops page only goes with the embedded database)');
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
  if (Boolean(config.GATEWAY_SIGNING_KEY) !== Boolean(config.GATEWAY_SIGNING_CERT)) {
    problems.push('GATEWAY_SIGNING_KEY and GATEWAY_SIGNING_CERT must be set together');
  }
  if (problems.length) throw new ConfigurationError(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  return config;
}
