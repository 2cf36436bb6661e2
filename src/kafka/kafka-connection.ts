import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompressionTypes, Kafka, KafkaConfig, logLevel, LogEntry, SASLOptions } from 'kafkajs';
import { parseCertificateBundle } from '../../libs/pki';
import { ConfigurationError, GatewayConfig } from '../config/gateway-config';
import { JsonLogger } from '../logging/json-logger';
import type { DevelopmentCluster, DevelopmentInfrastructure } from '../development-infrastructure';

/** What of the kafkajs client comes from configuration (the brokers and logging are the caller's). */
export type KafkaClientOptions = Required<Pick<KafkaConfig, 'clientId' | 'connectionTimeout' | 'requestTimeout' | 'retry'>> & Pick<KafkaConfig, 'ssl' | 'sasl'>;

/**
 * The kafkajs client settings of KAFKA_CLIENT_ID, KAFKA_SSL, KAFKA_SSL_CA_FILE
 * and KAFKA_SASL_*: one place, so the gateway and `npm run kafka:topics`
 * reach a secured cluster the same way. Reads the CA file; one that cannot be
 * read, or holds no certificate, is a ConfigurationError naming the variable.
 */
export function kafkaClientOptions(config: GatewayConfig): KafkaClientOptions {
  return {
    clientId: config.KAFKA_CLIENT_ID,
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 5 },
    ...tlsOptions(config),
    ...saslOptions(config),
  };
}

function tlsOptions(config: GatewayConfig): Pick<KafkaConfig, 'ssl'> {
  const caFile = config.KAFKA_SSL_CA_FILE;
  if (caFile) {
    let pem: string;
    try {
      pem = readFileSync(caFile, 'utf8');
    } catch (error) {
      throw new ConfigurationError(`KAFKA_SSL_CA_FILE ${caFile} cannot be read: ${(error as Error).message}`);
    }
    let certificates;
    try {
      certificates = parseCertificateBundle(pem);
    } catch (error) {
      throw new ConfigurationError(`KAFKA_SSL_CA_FILE ${caFile} cannot be read as a PEM bundle: ${(error as Error).message}`);
    }
    if (certificates.length === 0) throw new ConfigurationError(`KAFKA_SSL_CA_FILE ${caFile} holds no certificate`);
    // Only these CAs, not the system ones: the brokers' certificates come from the operator's own CA.
    return { ssl: { ca: [pem] } };
  }
  return config.KAFKA_SSL === 'true' ? { ssl: true } : {};
}

function saslOptions(config: GatewayConfig): Pick<KafkaConfig, 'sasl'> {
  const mechanism = config.KAFKA_SASL_MECHANISM;
  if (!mechanism) return {};
  const username = config.KAFKA_SASL_USERNAME;
  const password = config.KAFKA_SASL_PASSWORD;
  // loadConfig already insists on both; checked again because the type cannot say so.
  if (!username || !password) throw new ConfigurationError('KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with KAFKA_SASL_MECHANISM');
  // kafkajs names the mechanisms exactly as the configuration does.
  const sasl: SASLOptions = { mechanism, username, password };
  return { sasl };
}

/** The codec of the batches the outbox relay produces (KAFKA_COMPRESSION). */
export function producerCompression(config: GatewayConfig): CompressionTypes {
  return config.KAFKA_COMPRESSION === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
}

/**
 * The Kafka cluster: KAFKA_BROKERS, or the development broker started here
 * when it is unset (through the development infrastructure, which is loaded
 * only then).
 */
export class KafkaConnection {
  private constructor(
    readonly kafka: Kafka,
    readonly brokers: string[],
    readonly developmentBroker: DevelopmentCluster | null,
    private readonly brokersFile: string | null,
  ) {}

  static async open(config: GatewayConfig, logger: JsonLogger, development: DevelopmentInfrastructure | null = null): Promise<KafkaConnection> {
    // Read (and refused) before a development broker is started for nothing.
    const options = kafkaClientOptions(config);
    let developmentBroker: DevelopmentCluster | null = null;
    let brokersFile: string | null = null;
    let brokers = config.KAFKA_BROKERS?.split(',');
    if (!brokers) {
      // librdkafka's mock cluster speaks neither TLS nor SASL: connecting to it with them would only time out.
      if (options.ssl || options.sasl) {
        throw new ConfigurationError('KAFKA_SSL, KAFKA_SSL_CA_FILE and KAFKA_SASL_MECHANISM need KAFKA_BROKERS: the development broker speaks neither TLS nor SASL');
      }
      if (!development) throw new Error('KAFKA_BROKERS is unset, and the development infrastructure (the development broker) is not loaded');
      developmentBroker = await development.startBroker();
      brokers = developmentBroker.brokers;
      // Its port is random: written down so `npm run simulate` (the identity core's stand-in) can find it.
      mkdirSync(config.DATA_DIR, { recursive: true });
      brokersFile = join(config.DATA_DIR, 'kafka-brokers');
      writeFileSync(brokersFile, brokers.join(','));
      logger.emit('warn', 'KAFKA_BROKERS is unset: started the development Kafka broker (in memory), for development only', { brokers, brokersFile });
    }
    if (options.sasl?.mechanism === 'plain' && !options.ssl) {
      logger.emit('warn', 'KAFKA_SASL_MECHANISM=plain without KAFKA_SSL sends the Kafka password in clear');
    }
    const kafkaLog = logger.child('kafkajs');
    const kafka = new Kafka({
      ...options,
      brokers,
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => {
        const { message, ...fields } = entry.log;
        // librdkafka's mock cluster answers LeaveGroup v3 in a shape kafkajs cannot decode; the member
        // leaves anyway (its session ends). Only against the development broker: said at debug, not as an error.
        const mockLeaveGroup = developmentBroker !== null && /^Response LeaveGroup\b/.test(message);
        kafkaLog.emit(mockLeaveGroup ? 'debug' : entry.level <= logLevel.ERROR ? 'error' : entry.level === logLevel.WARN ? 'warn' : 'debug', message, {
          namespace: entry.namespace,
          broker: fields.broker,
          error: fields.error,
        });
      },
    });
    return new KafkaConnection(kafka, brokers, developmentBroker, brokersFile);
  }

  async close(): Promise<void> {
    if (this.brokersFile) rmSync(this.brokersFile, { force: true });
    await this.developmentBroker?.stop();
  }
}
