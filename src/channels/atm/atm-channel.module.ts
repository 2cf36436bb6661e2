import { BeforeApplicationShutdown, Inject, Injectable, Module, OnApplicationBootstrap } from '@nestjs/common';
import { ActivateAccount } from '../../activation/activate-account.use-case';
import { ActivationModule } from '../../activation/activation.module';
import { AdviseReversal } from '../../activation/advise-reversal.use-case';
import { BankDirectory } from '../../banks/bank-directory';
import { BanksModule } from '../../banks/banks.module';
import { RateLimiter } from '../../banks/rate-limiter';
import { GatewayConfig } from '../../config/gateway-config';
import { JsonLogger } from '../../logging/json-logger';
import { AtmExchange } from './atm-exchange';
import { AtmListener } from './atm-listener';
import { countIsoConnectionsWith, OpsModule } from '../../ops/ops.module';
import { OpsRecorder } from '../../ops/ops-recorder';
import { RefusedTraffic } from '../../ops/refused-traffic';

export const DEVELOPMENT_PAN_HASH_KEY = 'development-only-pan-hash-key-not-for-production';

/** Starts the ISO 8583 listener with the application and stops it before the store closes. */
@Injectable()
export class AtmChannelLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(
    @Inject(AtmListener) private readonly listener: AtmListener,
    @Inject(GatewayConfig) private readonly config: GatewayConfig,
    @Inject(JsonLogger) private readonly logger: JsonLogger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const port = await this.listener.listen(this.config.ISO8583_PORT, this.config.ISO8583_HOST);
    this.logger.emit('info', `ISO 8583 listener for ATM switches on ${this.config.ISO8583_HOST}:${port}`, { iso8583Port: port });
  }

  /** Before the store and Kafka close: requests in flight finish first. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.listener.close();
  }
}

@Module({
  imports: [BanksModule, ActivationModule, OpsModule],
  providers: [
    {
      provide: AtmListener,
      inject: [BankDirectory, ActivateAccount, AdviseReversal, RefusedTraffic, GatewayConfig, OpsRecorder, RateLimiter, JsonLogger],
      useFactory: (
        directory: BankDirectory,
        activate: ActivateAccount,
        reverse: AdviseReversal,
        refused: RefusedTraffic,
        config: GatewayConfig,
        ops: OpsRecorder,
        rateLimiter: RateLimiter,
        logger: JsonLogger,
      ) => {
        if (!config.PAN_HASH_KEY) logger.emit('warn', 'PAN_HASH_KEY is unset: PANs are hashed with a development key, for development only');
        const exchange = new AtmExchange(directory, activate, reverse, refused, config.PAN_HASH_KEY ?? DEVELOPMENT_PAN_HASH_KEY, ops, rateLimiter, logger);
        const listener = new AtmListener(
          exchange,
          {
            idleTimeoutMs: config.ISO8583_IDLE_TIMEOUT_MS,
            maxConnections: config.ISO8583_MAX_CONNECTIONS,
            maxConnectionsPerAddress: config.ISO8583_MAX_CONNECTIONS_PER_ADDRESS,
            unauthenticatedTimeoutMs: config.ISO8583_UNAUTHENTICATED_TIMEOUT_MS,
            maxMacFailures: config.ISO8583_MAX_MAC_FAILURES,
            macFailureWindowMs: config.ISO8583_MAC_FAILURE_WINDOW_MS,
          },
          refused,
          logger,
        );
        countIsoConnectionsWith(() => listener.openConnections);
        return listener;
      },
    },
    AtmChannelLifecycle,
  ],
})
export class AtmChannelModule {}
