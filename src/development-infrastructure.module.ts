import { Module } from '@nestjs/common';
import { EmbeddedPostgres } from './database/embedded-postgres';
import { DevelopmentCluster, DevelopmentInfrastructure, EmbeddedDatabase } from './development-infrastructure';
import { DevelopmentBroker } from './kafka/development-broker';

class LocalDevelopmentInfrastructure extends DevelopmentInfrastructure {
  async startDatabase(dataDir: string): Promise<EmbeddedDatabase> {
    const database = await EmbeddedPostgres.start(dataDir);
    return { url: database.url, poolSize: EmbeddedPostgres.POOL_SIZE, stop: () => database.stop() };
  }

  startBroker(): Promise<DevelopmentCluster> {
    return DevelopmentBroker.start();
  }
}

/**
 * PGlite and the development broker, for the development defaults only.
 * This file is required by InfrastructureModule only when DATABASE_URL or
 * KAFKA_BROKERS is unset; nothing else in the gateway may import it.
 */
@Module({
  providers: [{ provide: DevelopmentInfrastructure, useClass: LocalDevelopmentInfrastructure }],
  exports: [DevelopmentInfrastructure],
})
export class DevelopmentInfrastructureModule {}
