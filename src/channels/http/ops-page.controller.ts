import { BeforeApplicationShutdown, Controller, Get, Inject, Post, Req, Res } from '@nestjs/common';
import { FastifyReply, FastifyRequest } from 'fastify';
import { DeploymentStatus } from '../../ops/live/deployment-status';
import { OpsLiveFeed } from '../../ops/live/ops-live-feed';
import { OperatorAccess } from '../../ops/live/operator-access';
import { opsLoginPage, opsPage, PageWithPolicy } from '../../ops/live/ops-page';
import { OpsViewConsumer } from '../../ops/live/ops-view.consumer';

/**
 * The live operations page: `/ops` (HTML), `/ops/stream`
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
      this.html(reply, 401, opsLoginPage());
      return;
    }
    this.html(reply, 200, opsPage());
  }

  /**
   * The login form's target: starts a session (cookie) and goes back to the
   * page. Throttled per source address: after 5 wrong tokens within a
   * minute, every attempt gets 429 until that minute is over. The address is
   * the TCP peer: behind a balancer, the balancer's (all sign-ins together).
   */
  @Post('login')
  login(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    if (this.access.open) {
      reply.status(303).header('location', '/ops').send('');
      return;
    }
    const throttle = this.access.signIns;
    const wait = throttle.retryAfter(request.ip);
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      this.html(reply, 429, opsLoginPage({ throttledForSeconds: wait }));
      return;
    }
    const body = Buffer.isBuffer(request.body) ? request.body.toString('utf8') : '';
    const token = new URLSearchParams(body).get('token') ?? '';
    if (!this.access.accepts(token)) {
      throttle.failed(request.ip);
      this.html(reply, 401, opsLoginPage({ refused: true }));
      return;
    }
    throttle.succeeded(request.ip);
    reply.status(303).header('set-cookie', this.access.startSession(secure(request))).header('location', '/ops').header('cache-control', 'no-store').send('');
  }

  /** The page's sign-out button: revokes the session (on this instance; it expires everywhere within 8 h) and clears the cookie. */
  @Post('logout')
  logout(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    reply.status(303).header('set-cookie', this.access.endSession(request.headers, secure(request))).header('location', '/ops').header('cache-control', 'no-store').send('');
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

/** TLS here or at the balancer: the cookie is then sent over TLS only. */
function secure(request: FastifyRequest): boolean {
  return request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';
}
