import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressionTypes } from 'kafkajs';
import { ConfigurationError, loadConfig } from '../config/gateway-config';
import { JsonLogger } from '../logging/json-logger';
import { KafkaConnection, kafkaClientOptions, producerCompression } from './kafka-connection';

const ROOT = join(__dirname, '../..');
const CA_FILE = join(ROOT, 'config/pki/trust-anchors.pem');
const PRIVATE_KEY_FILE = join(ROOT, 'config/pki/dev/gateway-signing.key.pem');

/** The options as the gateway derives them from its environment: through loadConfig, as at start. */
const optionsFor = (env: Record<string, string>) => kafkaClientOptions(loadConfig(env));

describe('kafkaClientOptions: the kafkajs client settings from configuration', () => {
  it('on the defaults: the default client id, plaintext, no SASL (what the development broker speaks)', () => {
    const options = optionsFor({});
    expect(options.clientId).toBe('absher-bank-gateway');
    expect(options.ssl).toBeUndefined();
    expect(options.sasl).toBeUndefined();
  });

  it('KAFKA_CLIENT_ID is the client id', () => {
    expect(optionsFor({ KAFKA_CLIENT_ID: 'gateway-riyadh-1' }).clientId).toBe('gateway-riyadh-1');
  });

  it('KAFKA_SSL=true is TLS with the system CAs', () => {
    expect(optionsFor({ KAFKA_SSL: 'true' }).ssl).toBe(true);
    expect(optionsFor({ KAFKA_SSL: 'false' }).ssl).toBeUndefined();
  });

  it('KAFKA_SSL_CA_FILE is TLS with exactly that bundle, even without KAFKA_SSL', () => {
    const pem = readFileSync(CA_FILE, 'utf8');
    expect(optionsFor({ KAFKA_SSL_CA_FILE: CA_FILE }).ssl).toEqual({ ca: [pem] });
    expect(optionsFor({ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: CA_FILE }).ssl).toEqual({ ca: [pem] });
  });

  it('a KAFKA_SSL_CA_FILE that cannot be read stops start-up, naming the variable and the file', () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'kafka-ca-')), 'brokers-ca.pem');
    const attempt = () => optionsFor({ KAFKA_SSL_CA_FILE: missing });
    expect(attempt).toThrow(ConfigurationError);
    expect(attempt).toThrow(new RegExp(`^KAFKA_SSL_CA_FILE ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} cannot be read: ENOENT`));
  });

  it('a KAFKA_SSL_CA_FILE without a certificate in it (a key, say) stops start-up too', () => {
    expect(() => optionsFor({ KAFKA_SSL_CA_FILE: PRIVATE_KEY_FILE })).toThrow(/^KAFKA_SSL_CA_FILE .*gateway-signing\.key\.pem holds no certificate$/);
    const broken = join(mkdtempSync(join(tmpdir(), 'kafka-ca-')), 'broken.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    expect(() => optionsFor({ KAFKA_SSL_CA_FILE: broken })).toThrow(/^KAFKA_SSL_CA_FILE .*broken\.pem cannot be read as a PEM bundle/);
  });

  it.each(['plain', 'scram-sha-256', 'scram-sha-512'] as const)('KAFKA_SASL_MECHANISM=%s with its username and password', (mechanism) => {
    const options = optionsFor({ KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: 'absher-gateway', KAFKA_SASL_PASSWORD: 's3cret-from-the-vault' });
    expect(options.sasl).toEqual({ mechanism, username: 'absher-gateway', password: 's3cret-from-the-vault' });
    expect(options.ssl).toBeUndefined(); // SASL does not switch TLS on by itself
  });

  it('TLS and SASL together', () => {
    const options = optionsFor({ KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' });
    expect(options).toMatchObject({ ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' } });
  });
});

describe('producerCompression: KAFKA_COMPRESSION for the outbox relay', () => {
  it('is gzip by default and when asked, none when asked', () => {
    expect(producerCompression(loadConfig({}))).toBe(CompressionTypes.GZIP);
    expect(producerCompression(loadConfig({ KAFKA_COMPRESSION: 'gzip' }))).toBe(CompressionTypes.GZIP);
    expect(producerCompression(loadConfig({ KAFKA_COMPRESSION: 'none' }))).toBe(CompressionTypes.None);
  });
});

describe('KafkaConnection.open', () => {
  it('refuses TLS or SASL with the development broker, which speaks neither, before starting it', async () => {
    const logger = new JsonLogger('test');
    await expect(KafkaConnection.open(loadConfig({ KAFKA_SSL: 'true' }), logger)).rejects.toThrow(
      new ConfigurationError('KAFKA_SSL, KAFKA_SSL_CA_FILE and KAFKA_SASL_MECHANISM need KAFKA_BROKERS: the development broker speaks neither TLS nor SASL'),
    );
    await expect(KafkaConnection.open(loadConfig({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' }), logger)).rejects.toThrow(ConfigurationError);
  });

  it('reads the CA file before anything else: an unreadable one is refused even with the development broker', async () => {
    await expect(KafkaConnection.open(loadConfig({ KAFKA_SSL_CA_FILE: '/nonexistent/ca.pem' }), new JsonLogger('test'))).rejects.toThrow(/^KAFKA_SSL_CA_FILE \/nonexistent\/ca\.pem cannot be read/);
  });
});
