import { Controller, Get, Inject, Res } from '@nestjs/common';
import { FastifyReply } from 'fastify';
import { ReadinessIndicators } from '../../ops/readiness';

/**
 * The bank port's unauthenticated probes (spec 3.1): ready or not, nothing
 * more. The checks behind the answer, with their details, are on the
 * management port (MANAGEMENT_PORT).
 */
@Controller('health')
export class HealthController {
  constructor(@Inject(ReadinessIndicators) private readonly readiness: ReadinessIndicators) {}

  @Get('live')
  live(@Res() reply: FastifyReply): void {
    reply.status(200).header('content-type', 'application/json').send(JSON.stringify({ status: 'ok' }));
  }

  /** 200 `{"status":"ok"}` when the store and Kafka answer and the outbox keeps up; 503 `{"status":"error"}` otherwise. */
  @Get('ready')
  async ready(@Res() reply: FastifyReply): Promise<void> {
    const { ready } = await this.readiness.report();
    reply
      .status(ready ? 200 : 503)
      .header('content-type', 'application/json')
      .send(JSON.stringify({ status: ready ? 'ok' : 'error' }));
  }
}
