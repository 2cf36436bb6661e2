import { GatewayConfig } from './config/gateway-config';

/** The embedded PostgreSQL the development defaults run in place of DATABASE_URL. */
export interface EmbeddedDatabase {
  readonly url: string;
  /** Connections worth opening to it (PGlite has one session, shared). */
  readonly poolSize: number;
  stop(): Promise<void>;
}

/** The Kafka broker the development defaults run in place of KAFKA_BROKERS. */
export interface DevelopmentCluster {
  readonly brokers: string[];
  stop(): Promise<void>;
}

/**
 * What the development defaults start in place of an unset DATABASE_URL or
 * KAFKA_BROKERS. Provided only by DevelopmentInfrastructureModule, which is
 * loaded only then (see InfrastructureModule): a gateway given both never
 * loads PGlite or the development broker. The store and the Kafka connection
 * decide when to start them and own what they start.
 */
export abstract class DevelopmentInfrastructure {
  /** PGlite keeping its files in `dataDir`, served on a loopback port. */
  abstract startDatabase(dataDir: string): Promise<EmbeddedDatabase>;
  /** librdkafka's mock cluster, in memory, in a child process. */
  abstract startBroker(): Promise<DevelopmentCluster>;
}

/** Whether the configuration leaves anything to the development defaults' embedded database or broker. */
export function usesDevelopmentInfrastructure(config: GatewayConfig): boolean {
  return !config.DATABASE_URL || !config.KAFKA_BROKERS;
}
