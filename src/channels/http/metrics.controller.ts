import { Controller, Get, Inject, Res } from '@nestjs/common';
import { FastifyReply } from 'fastify';
import { GatewayMetrics } from '../../ops/gateway-metrics';

/** Prometheus scrape endpoint; like the probes, unauthenticated (keep it on the internal network). */
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(GatewayMetrics) private readonly metrics: GatewayMetrics) {}

  @Get()
  async scrape(@Res() reply: FastifyReply): Promise<void> {
    reply.status(200).header('content-type', this.metrics.registry.contentType).send(await this.metrics.registry.metrics());
  }
}
