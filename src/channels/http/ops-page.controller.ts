import { BeforeApplicationShutdown, Controller, Get, Inject, Post, Req, Res } from '@nestjs/common';
import { FastifyReply, FastifyRequest } from 'fastify';
import { DeploymentStatus } from '../../ops/live/deployment-status';
import { OpsLiveFeed } from '../../ops/live/ops-live-feed';
import { OperatorAccess } from '../../ops/live/operator-access';
import { opsLoginPage, opsPage, PageWithPolicy } from '../../ops/live/ops-page';
import { OpsViewConsumer } from '../../ops/live/ops-view.consumer';

/**
 * The live operations page (issue 4): `/ops` (HTML), `/ops/stream`
 * (server-sent events), `/ops/snapshot` (the same data as JSON, for scripts),
 * each with the deployment: instances sharing the database, parked events.
 * Operators only: open on the development defaults, OPS_TOKEN otherwise.
 */
@Controller('ops')
export class OpsPageController implements BeforeApplicationShutdown {
  constructor(
    @Inject(OpsLiveFeed) private readonly feed: OpsLiveFeed,
    @Inject(OpsViewConsumer) private readonly consumer: OpsViewConsumer,
    @Inject(OperatorAccess) private readonly access: OperatorAccess,
    @Inject(DeploymentStatus) private readonly deployment: DeploymentStatus,
  ) {}

  @Get()
  page(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    if (!this.access.allows(request.headers)) {
      this.html(reply, 401, opsLoginPage(false));
      return;
    }
    this.html(reply, 200, opsPage());
  }

  /** The login form's target: sets the session cookie and goes back to the page. */
  @Post('login')
  login(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    const body = Buffer.isBuffer(request.body) ? request.body.toString('utf8') : '';
    const token = new URLSearchParams(body).get('token') ?? '';
    if (this.access.open) {
      reply.status(303).header('location', '/ops').send('');
      return;
    }
    if (!this.access.accepts(token)) {
      this.html(reply, 401, opsLoginPage(true));
      return;
    }
    const secure = request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';
    reply.status(303).header('set-cookie', this.access.sessionCookie(secure)).header('location', '/ops').header('cache-control', 'no-store').send('');
  }

  @Get('stream')
  stream(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    if (!this.refused(request, reply)) {
      // The stream outlives this handler: Fastify hands the socket over (no onSend, no response signature).
      reply.hijack();
      if (!this.feed.attach(reply.raw)) {
        reply.raw.writeHead(503, { 'content-type': 'application/json', 'retry-after': '10' });
        reply.raw.end(JSON.stringify({ title: 'Too many live pages open', status: 503, detail: 'the live feed serves a limited number of pages at once; close one and retry' }));
      }
    }
  }

  @Get('snapshot')
  async snapshot(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    if (this.refused(request, reply)) return;
    // Waits (a second at most) for a read under way, so a script sees what it just changed; never fails on the store.
    const deployment = await this.deployment.read();
    const snapshot = { live: this.consumer.live, pagesConnected: this.feed.connected, ...this.feed.snapshot(), deployment };
    reply.status(200).header('content-type', 'application/json').header('cache-control', 'no-store').send(JSON.stringify(snapshot));
  }

  /** Live streams never end by themselves: ended here, before the HTTP server waits for its connections to close. */
  beforeApplicationShutdown(): void {
    this.feed.close();
  }

  private refused(request: FastifyRequest, reply: FastifyReply): boolean {
    if (this.access.allows(request.headers)) return false;
    reply
      .status(401)
      .header('content-type', 'application/problem+json')
      .header('www-authenticate', 'Bearer realm="absher-ops"')
      .send(JSON.stringify({ title: 'Operator token required', status: 401, detail: 'send OPS_TOKEN as "Authorization: Bearer <token>", or sign in at /ops' }));
    return true;
  }

  private html(reply: FastifyReply, status: number, page: PageWithPolicy): void {
    reply
      .status(status)
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', page.contentSecurityPolicy)
      .send(page.html);
  }
}
