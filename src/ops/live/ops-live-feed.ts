import { ServerResponse } from 'node:http';
import { Deployment } from './deployment-status';
import { OpsView } from './ops-view';

/** Pages connected at once; one more gets 503 rather than slowing the others (each costs a push a second). */
export const MAX_PAGES = 32;
const PUSH_EVERY_MS = 1000;
/** A page that stops reading is dropped once this much waits in its socket buffer. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

/**
 * Server-sent events for the live page: a `snapshot` when a page connects,
 * then once a second an `update` with the buckets that changed and the
 * server's time: idle charts keep sliding, and the stream is never quiet
 * long enough for a proxy to close it. Both carry the deployment (instances,
 * parked events) as last read: a few hundred bytes, so sent whole each time.
 */
export class OpsLiveFeed {
  private readonly pages = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly view: OpsView,
    private readonly isLive: () => boolean,
    /** Never waits and never throws (DeploymentStatus.current): a push must not stall on the store. */
    private readonly deployment: () => Deployment,
  ) {}

  get connected(): number {
    return this.pages.size;
  }

  snapshot(): ReturnType<OpsView['snapshot']> {
    return this.view.snapshot();
  }

  /** Takes over a response: false when too many pages are connected already. */
  attach(response: ServerResponse): boolean {
    if (this.pages.size >= MAX_PAGES) return false;
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    response.socket?.setTimeout(0);
    response.write('retry: 2000\n\n');
    this.send(response, 'snapshot', { live: this.isLive(), ...this.view.snapshot(), deployment: this.deployment() });
    this.pages.add(response);
    response.on('close', () => this.pages.delete(response));
    this.timer ??= setInterval(() => this.push(), PUSH_EVERY_MS);
    this.timer.unref();
    return true;
  }

  /** Ends every stream (on shutdown, before the HTTP server closes and waits for its connections). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const page of this.pages) page.end();
    this.pages.clear();
  }

  private push(): void {
    // Taken even when nobody listens, so changes do not pile up for the next page.
    const update = this.view.takeChanges();
    if (this.pages.size === 0) return;
    const body = { live: this.isLive(), ...update, deployment: this.deployment() };
    for (const page of this.pages) this.send(page, 'update', body);
  }

  private send(page: ServerResponse, event: string, body: unknown): void {
    if (page.writableLength > MAX_BUFFERED_BYTES) {
      page.destroy();
      this.pages.delete(page);
      return;
    }
    page.write(`event: ${event}\ndata: ${JSON.stringify(body)}\n\n`);
  }
}
