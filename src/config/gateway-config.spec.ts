import { JsonLogger } from '../logging/json-logger';
import {
  ConfigurationError,
  DEVELOPMENT_KEY_ENCRYPTION_KEY,
  DEVELOPMENT_PAN_HASH_KEY,
  DEVELOPMENT_SIGNING_CERT,
  DEVELOPMENT_SIGNING_KEY,
  DEVELOPMENT_SUBJECT_HASH_KEY,
  loadConfig,
} from './gateway-config';

/** A logger that keeps what it is told. */
function recordingLogger(): { logger: JsonLogger; lines: Array<{ level: string; message: string }> } {
  const lines: Array<{ level: string; message: string }> = [];
  const logger = new JsonLogger('test');
  logger.emit = (level, message) => void lines.push({ level, message });
  return { logger, lines };
}

const REAL = {
  DATABASE_URL: 'postgres://gateway@db/absher',
  KAFKA_BROKERS: 'kafka:9092',
  PAN_HASH_KEY: 'p'.repeat(32),
  SUBJECT_HASH_KEY: 's'.repeat(32),
  KEY_ENCRYPTION_KEY: 'ab'.repeat(32),
  OPS_TOKEN: 'o'.repeat(16),
  GATEWAY_SIGNING_KEY: '/run/secrets/gateway.key.pem',
  GATEWAY_SIGNING_CERT: '/run/secrets/gateway.cert.pem',
};

function complaint(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    return (error as Error).message;
  }
  throw new Error('loadConfig accepted it');
}

describe('development defaults', () => {
  it('stand in for each unset key, each said once as a warning', () => {
    const { logger, lines } = recordingLogger();
    const config = loadConfig({}, logger);
    expect(config).toMatchObject({
      PAN_HASH_KEY: DEVELOPMENT_PAN_HASH_KEY,
      SUBJECT_HASH_KEY: DEVELOPMENT_SUBJECT_HASH_KEY,
      KEY_ENCRYPTION_KEY: DEVELOPMENT_KEY_ENCRYPTION_KEY,
      GATEWAY_SIGNING_KEY: DEVELOPMENT_SIGNING_KEY,
      GATEWAY_SIGNING_CERT: DEVELOPMENT_SIGNING_CERT,
    });
    // The key MAC keys were sealed under before: the same 32 bytes.
    expect(Buffer.from(config.KEY_ENCRYPTION_KEY, 'hex')).toEqual(Buffer.from('development-only-key-encryption!', 'utf8'));
    expect(lines).toEqual([
      { level: 'warn', message: 'PAN_HASH_KEY is unset: PANs are hashed with a development key, for development only' },
      { level: 'warn', message: 'GATEWAY_SIGNING_KEY is unset: responses are signed with the development key, for development only' },
      { level: 'warn', message: "GATEWAY_SIGNING_CERT is unset: responses name the development certificate's key, for development only" },
      { level: 'warn', message: 'SUBJECT_HASH_KEY is unset: ops events use a development key, for development only' },
      { level: 'warn', message: 'KEY_ENCRYPTION_KEY is unset: MAC keys are sealed with a development key, for development only' },
    ]);
  });

  it('are neither used nor said when the variables are set (an empty one is unset)', () => {
    const { logger, lines } = recordingLogger();
    const config = loadConfig({ ...REAL, PAN_HASH_KEY: ` ${REAL.PAN_HASH_KEY} ` }, logger);
    expect(config).toMatchObject({ ...REAL, HTTP_PORT: 8080 });
    expect(lines).toEqual([]);
    expect(loadConfig({ PAN_HASH_KEY: '  ' }).PAN_HASH_KEY).toBe(DEVELOPMENT_PAN_HASH_KEY);
  });

  it('are not said with LOG_LEVEL=error, nor without a logger', () => {
    const { logger, lines } = recordingLogger();
    loadConfig({ LOG_LEVEL: 'error' }, logger);
    expect(lines).toEqual([]);
    expect(() => loadConfig({})).not.toThrow();
  });

  it('published keys and an open /ops page are refused with DATABASE_URL; the development signing pair is not', () => {
    const message = complaint({ DATABASE_URL: REAL.DATABASE_URL });
    expect(message.split('\n').slice(1)).toEqual([
      '  - PAN_HASH_KEY is required when DATABASE_URL is set (the development key only goes with the embedded database)',
      '  - SUBJECT_HASH_KEY is required when DATABASE_URL is set (the development key only goes with the embedded database)',
      '  - OPS_TOKEN is required when DATABASE_URL is set (an open /ops page only goes with the embedded database)',
      '  - KEY_ENCRYPTION_KEY is required when DATABASE_URL is set (the development key only goes with the embedded database)',
    ]);
    const { GATEWAY_SIGNING_KEY: _key, GATEWAY_SIGNING_CERT: _cert, ...withoutPair } = REAL;
    expect(loadConfig(withoutPair).GATEWAY_SIGNING_KEY).toBe(DEVELOPMENT_SIGNING_KEY);
  });

  it("a listener's TLS certificate and key go together, and a client CA needs them", () => {
    expect(complaint({ HTTP_TLS_CERT: '/tmp/c.pem' })).toContain('HTTP_TLS_CERT and HTTP_TLS_KEY go together: give both for TLS, or neither');
    expect(complaint({ ISO8583_TLS_KEY: '/tmp/k.pem' })).toContain('ISO8583_TLS_CERT and ISO8583_TLS_KEY go together: give both for TLS, or neither');
    expect(complaint({ ISO8583_TLS_CLIENT_CA: '/tmp/ca.pem' })).toContain('ISO8583_TLS_CLIENT_CA needs ISO8583_TLS_CERT and ISO8583_TLS_KEY (mutual TLS is TLS first)');
    expect(() => loadConfig({ HTTP_TLS_CERT: '/tmp/c.pem', HTTP_TLS_KEY: '/tmp/k.pem', HTTP_TLS_CLIENT_CA: '/tmp/ca.pem' })).not.toThrow();
  });

  it('half of the signing pair is refused', () => {
    expect(complaint({ GATEWAY_SIGNING_KEY: '/tmp/k.pem' })).toContain('GATEWAY_SIGNING_KEY and GATEWAY_SIGNING_CERT must be set together');
    expect(complaint({ GATEWAY_SIGNING_CERT: '/tmp/c.pem' })).toContain('GATEWAY_SIGNING_KEY and GATEWAY_SIGNING_CERT must be set together');
  });
});

describe('KEY_STORE=pkcs11', () => {
  const TOKEN = { KEY_STORE: 'pkcs11', PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so', PKCS11_TOKEN_LABEL: 'gateway', PKCS11_PIN_FILE: '/run/secrets/pin', GATEWAY_SIGNING_KEY_LABEL: 'gateway-signing' };
  const { PAN_HASH_KEY: _pan, SUBJECT_HASH_KEY: _subject, KEY_ENCRYPTION_KEY: _kek, GATEWAY_SIGNING_KEY: _signing, ...WITHOUT_SOFTWARE_KEYS } = REAL;

  it('needs no software key with DATABASE_URL, and warns of no development key', () => {
    const { logger, lines } = recordingLogger();
    expect(() => loadConfig({ ...WITHOUT_SOFTWARE_KEYS, ...TOKEN }, logger)).not.toThrow();
    expect(lines.filter((line) => /HASH_KEY|KEY_ENCRYPTION_KEY|GATEWAY_SIGNING_KEY/.test(line.message))).toEqual([]);
  });

  it('refuses each software key given beside it, naming it', () => {
    const message = complaint({ ...REAL, ...TOKEN });
    for (const name of ['PAN_HASH_KEY', 'SUBJECT_HASH_KEY', 'KEY_ENCRYPTION_KEY', 'GATEWAY_SIGNING_KEY']) {
      expect(message).toContain(`${name} is a software key: under KEY_STORE=pkcs11 its key is in the token; unset it`);
    }
  });
});

describe('the schema says how each variable is read', () => {
  it('integers are read as numbers; anything else is named as not a whole number', () => {
    expect(loadConfig({ HTTP_PORT: ' 8081 ', OUTBOX_BATCH_SIZE: '7' })).toMatchObject({ HTTP_PORT: 8081, OUTBOX_BATCH_SIZE: 7 });
    expect(complaint({ HTTP_PORT: 'eighty' })).toContain('HTTP_PORT must be a whole number (got "eighty")');
    expect(complaint({ HTTP_PORT: '70000' })).toContain('HTTP_PORT must not be greater than 65535 (got 70000)');
    // Text stays text, even when it is digits.
    expect(loadConfig({ KAFKA_CLIENT_ID: '123' }).KAFKA_CLIENT_ID).toBe('123');
  });

  it('a secret is never echoed', () => {
    for (const [name, value] of [
      ['PAN_HASH_KEY', 'short-pan-key'],
      ['SUBJECT_HASH_KEY', 'short-subject-key'],
      ['KEY_ENCRYPTION_KEY', 'not-hex'],
      ['OPS_TOKEN', 'short-token'],
      ['DATABASE_URL', 'mysql://user:pw@db/absher'],
    ]) {
      const message = complaint({ [name]: value });
      expect(message).toContain(`${name} `);
      expect(message).toContain('(value hidden)');
      expect(message).not.toContain(value);
    }
    expect(complaint({ LOG_LEVEL: 'chatty' })).toContain('(got "chatty")');
  });
});
