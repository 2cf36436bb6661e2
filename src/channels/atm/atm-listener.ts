import { createServer, Server, Socket } from 'node:net';
import { FrameDecoder, FrameTooLargeError, frame, MAX_FRAME_BYTES } from '../../../libs/iso8583';
import { JsonLogger } from '../../logging/json-logger';
import { AtmExchange } from './atm-exchange';

/**
 * The ATM switch listener (spec 4.1): TCP, many connections, many requests
 * in flight on each; every frame is handled as soon as it is complete and
 * answered as soon as it is decided, in whatever order that is. A Nest-managed
 * server (started and stopped with the application) rather than a
 * microservices transport: the protocol has no request/reply patterns to
 * route, only one exchange.
 */
/** Requests one connection may have in flight; past it, reading pauses until answers go out. */
export const MAX_IN_FLIGHT_PER_CONNECTION = 64;

export class AtmListener {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly log: JsonLogger;
  private nextConnection = 1;
  private closing = false;

  constructor(
    private readonly exchange: AtmExchange,
    private readonly idleTimeoutMs: number,
    logger: JsonLogger,
  ) {
    this.log = logger.child('atm-listener');
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  async listen(port: number, host: string): Promise<number> {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return (server.address() as { port: number }).port;
  }

  /**
   * Stops taking work: no new connections, no new frames read from open ones;
   * waits (up to `graceMs`) until every request in flight is answered, then
   * closes the connections. Runs before the store and Kafka close.
   */
  async close(graceMs = 10_000): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    this.closing = true;
    for (const socket of this.sockets) socket.pause();
    const closed = new Promise((resolve) => server.close(resolve));
    const deadline = Date.now() + graceMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((resolve) => setTimeout(resolve, 100))]);
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private accept(socket: Socket): void {
    const connection = `atm-${this.nextConnection++}`;
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const decoder = new FrameDecoder(MAX_FRAME_BYTES);
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.idleTimeoutMs);
    this.log.emit('debug', 'ATM switch connected', { connection, peer });
    socket.on('timeout', () => {
      this.log.emit('info', 'ATM switch connection idle; closing it', { connection, peer, idleMs: this.idleTimeoutMs });
      socket.destroy();
    });
    socket.on('error', (error) => this.log.emit('debug', 'ATM switch connection error', { connection, error: error.message }));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.log.emit('debug', 'ATM switch disconnected', { connection, peer });
    });
    let inFlight = 0;
    let writeBlocked = false;
    const adjust = () => {
      if (this.closing || inFlight >= MAX_IN_FLIGHT_PER_CONNECTION || writeBlocked) socket.pause();
      else socket.resume();
    };
    socket.on('drain', () => {
      writeBlocked = false;
      adjust();
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.closing) return; // shutting down: no new work
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        if (!(error instanceof FrameTooLargeError)) throw error;
        this.log.emit('warn', 'ATM switch sent an impossible frame length; closing the connection', { connection, peer, problem: error.message });
        socket.destroy();
        return;
      }
      for (const raw of frames) {
        inFlight++;
        this.track(
          this.answer(socket, raw, connection, (blocked) => (writeBlocked ||= blocked)).finally(() => {
            inFlight--;
            adjust();
          }),
        );
      }
      adjust();
    });
  }

  private async answer(socket: Socket, raw: Buffer, connection: string, onWrite: (blocked: boolean) => void): Promise<void> {
    const result = await this.exchange.handle(raw, connection);
    if ('close' in result) {
      socket.destroy();
      return;
    }
    // A switch that does not read its answers is not let to grow the gateway's memory: reading pauses until it drains.
    if (!socket.destroyed) onWrite(!socket.write(frame(result.reply)));
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error) => this.log.emit('error', 'ATM exchange failed', { error }));
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }
}
