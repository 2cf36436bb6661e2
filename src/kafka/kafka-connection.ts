import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, LogEntry } from 'kafkajs';
import { GatewayConfig } from '../config/gateway-config';
import { JsonLogger } from '../logging/json-logger';
import { DevelopmentBroker } from './development-broker';

/** The Kafka cluster: KAFKA_BROKERS, or the development broker started here when it is unset. */
export class KafkaConnection {
  private constructor(
    readonly kafka: Kafka,
    readonly brokers: string[],
    readonly developmentBroker: DevelopmentBroker | null,
    private readonly brokersFile: string | null,
  ) {}

  static async open(config: GatewayConfig, logger: JsonLogger): Promise<KafkaConnection> {
    let developmentBroker: DevelopmentBroker | null = null;
    let brokersFile: string | null = null;
    let brokers = config.KAFKA_BROKERS?.split(',');
    if (!brokers) {
      developmentBroker = await DevelopmentBroker.start();
      brokers = developmentBroker.brokers;
      // Its port is random: written down so `npm run simulate` (the identity core's stand-in) can find it.
      mkdirSync(config.DATA_DIR, { recursive: true });
      brokersFile = join(config.DATA_DIR, 'kafka-brokers');
      writeFileSync(brokersFile, brokers.join(','));
      logger.emit('warn', 'KAFKA_BROKERS is unset: started the development Kafka broker (in memory), for development only', { brokers, brokersFile });
    }
    const kafkaLog = logger.child('kafkajs');
    const kafka = new Kafka({
      clientId: config.KAFKA_CLIENT_ID,
      brokers,
      connectionTimeout: 3000,
      requestTimeout: 10000,
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 5 },
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => {
        const { message, ...fields } = entry.log;
        kafkaLog.emit(entry.level <= logLevel.ERROR ? 'error' : entry.level === logLevel.WARN ? 'warn' : 'debug', message, {
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
