import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { JsonLogger } from '../logging/json-logger';
import { GatewayMetrics } from './gateway-metrics';
import { ReadinessIndicators } from './readiness';

/**
 * The management port (MANAGEMENT_PORT, loopback unless MANAGEMENT_HOST says
 * otherwise): Prometheus metrics and the detailed readiness report, which
 * name banks, volumes, instances and the runtime, kept off the port banks
 * reach. Read-only and unauthenticated: reachable only where the operator
 * binds it. A plain node:http server: three GET routes need no framework.
 */
export class ManagementServer {
  private server: Server | null = null;
  private readonly log: JsonLogger;

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly readiness: ReadinessIndicators,
    logger: JsonLogger,
  ) {
    this.log = logger.child('management');
  }

  async listen(port: number, host: string): Promise<number> {
    const server = createServer((request, response) => void this.route(request, response));
    // Probes and scrapes are short; a client that holds a connection open gets it closed.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return (server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0];
    try {
      if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, 'application/json', JSON.stringify({ status: 405, detail: 'only GET is served here' }), { allow: 'GET, HEAD' });
      switch (path) {
        case '/metrics':
          return send(response, 200, this.metrics.registry.contentType, await this.metrics.registry.metrics());
        case '/health/live':
          return send(response, 200, 'application/json', JSON.stringify({ status: 'ok' }));
        case '/health/ready': {
          const { ready, body } = await this.readiness.report();
          return send(response, ready ? 200 : 503, 'application/json', JSON.stringify(body));
        }
        default:
          return send(response, 404, 'application/json', JSON.stringify({ status: 404, detail: 'the management port serves /metrics, /health/live and /health/ready' }));
      }
    } catch (error) {
      this.log.emit('error', 'management request failed', { path, error });
      if (!response.headersSent) send(response, 500, 'application/json', JSON.stringify({ status: 500, detail: 'see the gateway log' }));
      else response.destroy();
    }
  }
}

function send(response: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  response.end(body);
}
