import { Controller, Get, Inject, OnApplicationShutdown, Res } from '@nestjs/common';
import { HealthCheckService } from '@nestjs/terminus';
import { FastifyReply } from 'fastify';
import { ReadinessIndicators } from '../../ops/readiness';

/** Unauthenticated probes (spec 3.1), with @nestjs/terminus. */
@Controller('health')
export class HealthController implements OnApplicationShutdown {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(ReadinessIndicators) private readonly readiness: ReadinessIndicators,
  ) {}

  @Get('live')
  live(@Res() reply: FastifyReply): void {
    reply.status(200).header('content-type', 'application/json').send(JSON.stringify({ status: 'ok' }));
  }

  /** 200 when the store and Kafka answer and the outbox keeps up; 503 naming what does not. */
  @Get('ready')
  async ready(@Res() reply: FastifyReply): Promise<void> {
    let status = 200;
    let body: unknown;
    try {
      body = await this.health.check([() => this.readiness.store_(), () => this.readiness.kafka_(), () => this.readiness.outbox(), () => this.readiness.instance(), () => this.readiness.lifecycle()]);
    } catch (error) {
      status = 503;
      body = (error as { getResponse?: () => unknown }).getResponse?.() ?? { status: 'error', error: { readiness: { status: 'down', message: (error as Error).message } } };
    }
    reply.status(status).header('content-type', 'application/json').send(JSON.stringify(body));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.readiness.close();
  }
}
