import { DynamicModule, Global, Module } from '@nestjs/common';
import { GatewayConfig } from './config/gateway-config';
import { Store } from './database/store';
import { KafkaConnection } from './kafka/kafka-connection';
import { JsonLogger } from './logging/json-logger';
import { InstanceRegistry } from './instances/instance-registry';

/** Configuration, logger, store, Kafka and the instances sharing them: shared by every domain module. */
@Global()
@Module({})
export class InfrastructureModule {
  static forRoot(config: GatewayConfig, logger: JsonLogger): DynamicModule {
    return {
      module: InfrastructureModule,
      providers: [
        { provide: GatewayConfig, useValue: config },
        { provide: JsonLogger, useValue: logger },
        { provide: Store, useFactory: () => Store.open(config, logger) },
        { provide: KafkaConnection, useFactory: () => KafkaConnection.open(config, logger) },
        { provide: InstanceRegistry, inject: [Store], useFactory: (store: Store) => new InstanceRegistry(store.dataSource, config.GATEWAY_INSTANCE_ID, logger) },
      ],
      exports: [GatewayConfig, JsonLogger, Store, KafkaConnection, InstanceRegistry],
    };
  }
}
