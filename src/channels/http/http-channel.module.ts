import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { OutboxModule } from '../../outbox/outbox.module';
import { ReadinessIndicators } from '../../ops/readiness';
import { ActivationModule } from '../../activation/activation.module';
import { BanksModule } from '../../banks/banks.module';
import { ActivationsController } from './activations.controller';
import { HealthController } from './health.controller';
import { MetricsController } from './metrics.controller';
import { OpsPageController } from './ops-page.controller';
import { OpsModule } from '../../ops/ops.module';

@Module({
  imports: [BanksModule, ActivationModule, OutboxModule, OpsModule, TerminusModule.forRoot({ logger: false })],
  controllers: [ActivationsController, HealthController, MetricsController, OpsPageController],
  providers: [ReadinessIndicators],
})
export class HttpChannelModule {}
