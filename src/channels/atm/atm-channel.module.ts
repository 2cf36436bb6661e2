import { BeforeApplicationShutdown, Inject, Injectable, Module } from '@nestjs/common';
import { ActivateAccount } from '../../activation/activate-account.use-case';
import { ActivationModule } from '../../activation/activation.module';
import { AdviseReversal } from '../../activation/advise-reversal.use-case';
import { BankDirectory } from '../../banks/bank-directory';
import { KeyStore } from '../../keys/key-store';
import { BanksModule } from '../../banks/banks.module';
import { RateLimiter } from '../../banks/rate-limiter';
import { GatewayConfig } from '../../config/gateway-config';
import { listenerTls } from '../../config/listener-tls';
import { JsonLogger } from '../../logging/json-logger';
import { AtmExchange } from './atm-exchange';
import { AtmController } from './atm.controller';
import { AtmTransport } from './atm-transport';
import { countIsoConnectionsWith, OpsModule } from '../../ops/ops.module';
import { OpsRecorder } from '../../ops/ops-recorder';
import { RefusedTraffic } from '../../ops/refused-traffic';

/**
 * Stops the ISO 8583 transport before the store closes, so requests in flight finish first: Nest closes
 * a hybrid application's transports only after the shutdown hooks that close the store have begun.
 * (It is started by `app.startAllMicroservices()`, see gateway.ts.)
 */
@Injectable()
export class AtmChannelLifecycle implements BeforeApplicationShutdown {
  constructor(@Inject(AtmTransport) private readonly transport: AtmTransport) {}

  async beforeApplicationShutdown(): Promise<void> {
    await this.transport.close();
  }
}

@Module({
  imports: [BanksModule, ActivationModule, OpsModule],
  controllers: [AtmController],
  providers: [
    {
      provide: AtmExchange,
      inject: [BankDirectory, ActivateAccount, AdviseReversal, RefusedTraffic, KeyStore, OpsRecorder, RateLimiter, JsonLogger],
      useFactory: (
        directory: BankDirectory,
        activate: ActivateAccount,
        reverse: AdviseReversal,
        refused: RefusedTraffic,
        keys: KeyStore,
        ops: OpsRecorder,
        rateLimiter: RateLimiter,
        logger: JsonLogger,
      ) => new AtmExchange(directory, activate, reverse, refused, keys, ops, rateLimiter, logger),
    },
    {
      provide: AtmTransport,
      inject: [AtmExchange, RefusedTraffic, GatewayConfig, JsonLogger],
      useFactory: (exchange: AtmExchange, refused: RefusedTraffic, config: GatewayConfig, logger: JsonLogger) => {
        const transport = new AtmTransport(
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
          { port: config.ISO8583_PORT, host: config.ISO8583_HOST },
          logger,
          listenerTls(config, 'ISO8583'),
        );
        countIsoConnectionsWith(() => transport.openConnections);
        return transport;
      },
    },
    AtmChannelLifecycle,
  ],
})
export class AtmChannelModule {}
