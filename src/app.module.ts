import { DynamicModule, Inject, Injectable, Module, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { AtmChannelModule } from './channels/atm/atm-channel.module';
import { HttpChannelModule } from './channels/http/http-channel.module';
import { GatewayConfig } from './config/gateway-config';
import { Store } from './database/store';
import { InfrastructureModule } from './infrastructure.module';
import { KafkaConnection } from './kafka/kafka-connection';
import { JsonLogger } from './logging/json-logger';
import { OutboxModule } from './outbox/outbox.module';
import { OpsModule } from './ops/ops.module';
import { OpsRecorder } from './ops/ops-recorder';
import { RefusedTraffic } from './ops/refused-traffic';
import { OpsViewConsumer } from './ops/live/ops-view.consumer';
import { OutboxRelay } from './outbox/outbox-relay';
import { RegistryModule } from './registry/registry.module';
import { BankDirectory } from './banks/bank-directory';
import { BanksModule } from './banks/banks.module';
import { InstanceRegistry } from './instances/instance-registry';
import { KeyStore } from './keys/key-store';

/** Starts the background work after the application is up and stops it in order. */
@Injectable()
export class GatewayLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    @Inject(OutboxRelay) private readonly relay: OutboxRelay,
    @Inject(KafkaConnection) private readonly kafka: KafkaConnection,
    @Inject(Store) private readonly store: Store,
    @Inject(OpsRecorder) private readonly ops: OpsRecorder,
    @Inject(RefusedTraffic) private readonly refused: RefusedTraffic,
    @Inject(OpsViewConsumer) private readonly opsView: OpsViewConsumer,
    @Inject(BankDirectory) private readonly banks: BankDirectory,
    @Inject(InstanceRegistry) private readonly instances: InstanceRegistry,
    @Inject(KeyStore) private readonly keys: KeyStore,
  ) {}

  onApplicationBootstrap(): void {
    this.instances.start();
    this.relay.start();
    this.ops.start();
    this.refused.start();
    // The identity core's consumers start and stop with their own modules (ConsumerLifecycle).
    this.opsView.start();
    this.banks.watch(); // registry changes made with the operator CLI apply without a restart
  }

  async onApplicationShutdown(): Promise<void> {
    this.banks.stopWatching();
    await this.opsView.stop(); // the consumers have left their groups already (beforeApplicationShutdown)
    await this.ops.stop(); // writes the last request-handled events and the open minutes' summaries
    await this.refused.stop(); // writes the last refusal counts and samples
    await this.relay.stop(); // lets its relay slots go: the other instances take them at their next round
    await this.instances.stop(); // the others now count one instance fewer and take their larger share
    await this.kafka.close();
    await this.store.close();
    this.keys.close();
  }
}

@Module({})
export class AppModule {
  static forRoot(config: GatewayConfig, logger: JsonLogger, keys: KeyStore): DynamicModule {
    return {
      module: AppModule,
      imports: [InfrastructureModule.forRoot(config, logger, keys), OutboxModule, OpsModule, RegistryModule, BanksModule, HttpChannelModule, AtmChannelModule],
      providers: [GatewayLifecycle],
    };
  }
}
