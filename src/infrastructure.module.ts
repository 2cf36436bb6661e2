import { DynamicModule, Global, Module, Type } from '@nestjs/common';
import { GatewayConfig } from './config/gateway-config';
import { Store } from './database/store';
import { DevelopmentInfrastructure, usesDevelopmentInfrastructure } from './development-infrastructure';
import { KafkaConnection } from './kafka/kafka-connection';
import { JsonLogger } from './logging/json-logger';
import { InstanceRegistry } from './instances/instance-registry';
import { InstanceRepository } from './instances/instance.repository';
import { Transactions } from './database/sql';
import { KeyStore } from './keys/key-store';

/** Configuration, logger, key store, store (and its transactions), Kafka and the instances sharing them: shared by every domain module. */
@Global()
@Module({})
export class InfrastructureModule {
  static forRoot(config: GatewayConfig, logger: JsonLogger, keys: KeyStore): DynamicModule {
    const development = { token: DevelopmentInfrastructure, optional: true };
    return {
      module: InfrastructureModule,
      imports: usesDevelopmentInfrastructure(config) ? [developmentInfrastructureModule()] : [],
      providers: [
        { provide: GatewayConfig, useValue: config },
        { provide: JsonLogger, useValue: logger },
        { provide: KeyStore, useValue: keys },
        { provide: Store, inject: [development], useFactory: (local?: DevelopmentInfrastructure) => Store.open(config, logger, local ?? null) },
        { provide: KafkaConnection, inject: [development], useFactory: (local?: DevelopmentInfrastructure) => KafkaConnection.open(config, logger, local ?? null) },
        { provide: Transactions, inject: [Store], useFactory: (store: Store) => new Transactions(store.dataSource) },
        {
          provide: InstanceRegistry,
          inject: [Store],
          useFactory: (store: Store) => new InstanceRegistry(new InstanceRepository(store.dataSource), config.GATEWAY_INSTANCE_ID, logger),
        },
      ],
      exports: [GatewayConfig, JsonLogger, KeyStore, Store, Transactions, KafkaConnection, InstanceRegistry],
    };
  }
}

/**
 * Required here, on the development defaults only, rather than imported at
 * the top: with DATABASE_URL and KAFKA_BROKERS set, PGlite and the
 * development broker are never loaded into a production process.
 */
function developmentInfrastructureModule(): Type {
  const loaded = require('./development-infrastructure.module') as typeof import('./development-infrastructure.module');
  return loaded.DevelopmentInfrastructureModule;
}
