import { Module } from '@nestjs/common';
import { ActivationModule } from '../../activation/activation.module';
import { BanksModule } from '../../banks/banks.module';
import { ManagementModule } from '../../ops/management.module';
import { OpsModule } from '../../ops/ops.module';
import { ActivationsController } from './activations.controller';
import { HealthController } from './health.controller';
import { OpenApiController } from './openapi.controller';
import { OpsPageController } from './ops-page.controller';

@Module({
  imports: [BanksModule, ActivationModule, OpsModule, ManagementModule],
  controllers: [ActivationsController, HealthController, OpsPageController, OpenApiController],
})
export class HttpChannelModule {}
