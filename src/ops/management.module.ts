import { Inject, Injectable, Module, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ConfigurationError, GatewayConfig } from '../config/gateway-config';
import { JsonLogger } from '../logging/json-logger';
import { OutboxModule } from '../outbox/outbox.module';
import { GatewayMetrics } from './gateway-metrics';
import { ManagementServer } from './management-server';
import { OpsModule } from './ops.module';
import { ReadinessIndicators } from './readiness';

/** Opens the management port with the application; closes it, and readiness's Kafka admin client, at the end. */
@Injectable()
export class ManagementLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    @Inject(ManagementServer) private readonly server: ManagementServer,
    @Inject(ReadinessIndicators) private readonly readiness: ReadinessIndicators,
    @Inject(GatewayConfig) private readonly config: GatewayConfig,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const { MANAGEMENT_PORT, MANAGEMENT_HOST } = this.config;
    let port: number;
    try {
      port = await this.server.listen(MANAGEMENT_PORT, MANAGEMENT_HOST);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      throw new ConfigurationError(
        `MANAGEMENT_PORT ${MANAGEMENT_PORT} on MANAGEMENT_HOST ${MANAGEMENT_HOST} is already in use: another process (perhaps another gateway) listens there. ` +
          'Stop it, or set MANAGEMENT_PORT to a free port (0 picks one) or another MANAGEMENT_HOST',
      );
    }
    this.logger.emit('info', `management port (metrics, detailed readiness) on ${this.config.MANAGEMENT_HOST}:${port}`, { managementPort: port });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server.close();
    await this.readiness.close();
  }
}

/** Readiness (behind both ports' /health/ready) and the management port. */
@Module({
  imports: [OutboxModule, OpsModule, TerminusModule.forRoot({ logger: false })],
  providers: [
    ReadinessIndicators,
    {
      provide: ManagementServer,
      inject: [GatewayMetrics, ReadinessIndicators, JsonLogger],
      useFactory: (metrics: GatewayMetrics, readiness: ReadinessIndicators, logger: JsonLogger) => new ManagementServer(metrics, readiness, logger),
    },
    ManagementLifecycle,
  ],
  exports: [ReadinessIndicators],
})
export class ManagementModule {}
