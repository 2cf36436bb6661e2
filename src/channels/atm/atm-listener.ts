import { createServer, Server, Socket } from 'node:net';
import { FrameDecoder, FrameTooLargeError, frame, MAX_FRAME_BYTES } from '../../../libs/iso8583';
import { JsonLogger } from '../../logging/json-logger';
import { FailureWindow, RefusedTraffic } from '../../ops/refused-traffic';
import { AtmExchange, ConnectionTrust } from './atm-exchange';

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

/** Refused connections are logged at most once per this interval (then a count of the rest). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface AtmListenerLimits {
  /** A connection silent this long is closed. */
  idleTimeoutMs: number;
  /** Connections open at once; one more is closed at once. */
  maxConnections: number;
  /** Connections open at once from one address; one more is closed at once. */
  maxConnectionsPerAddress: number;
  /** A connection that has sent no MAC-verified message this long after it opened is closed. */
  unauthenticatedTimeoutMs: number;
  /** This many MAC failures within `macFailureWindowMs` close a connection, once their answers are written. */
  maxMacFailures: number;
  macFailureWindowMs: number;
}

export class AtmListener {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly perAddress = new Map<string, number>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly log: JsonLogger;
  private nextConnection = 1;
  private closing = false;
  private refusalLoggedAt = 0;
  private refusedUnlogged = 0;
  private refusalTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly exchange: AtmExchange,
    private readonly limits: AtmListenerLimits,
    private readonly refused: RefusedTraffic,
    logger: JsonLogger,
  ) {
    this.log = logger.child('atm-listener');
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  async listen(port: number, host: string): Promise<number> {
    // Half-open: a switch may shut its write side right after its last request and still expect the answers.
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
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
    if (this.refusalTimer) clearTimeout(this.refusalTimer);
    for (const socket of this.sockets) socket.pause();
    const closed = new Promise((resolve) => server.close(resolve));
    const deadline = Date.now() + graceMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((resolve) => setTimeout(resolve, 100))]);
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private accept(socket: Socket): void {
    const address = socket.remoteAddress ?? 'unknown';
    // Checked before anything is read: a connection over a limit is never served.
    if (this.sockets.size >= this.limits.maxConnections) return this.refuse(socket, address, 'ISO8583_MAX_CONNECTIONS');
    if ((this.perAddress.get(address) ?? 0) >= this.limits.maxConnectionsPerAddress) return this.refuse(socket, address, 'ISO8583_MAX_CONNECTIONS_PER_ADDRESS');
    const connection = `atm-${this.nextConnection++}`;
    const peer = `${address}:${socket.remotePort}`;
    const decoder = new FrameDecoder(MAX_FRAME_BYTES);
    this.sockets.add(socket);
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    socket.setNoDelay(true);
    socket.setTimeout(this.limits.idleTimeoutMs);
    this.log.emit('debug', 'ATM switch connected', { connection, peer });
    // Sign-on and echo carry no MAC: anyone who can reach the port could hold a connection with them alone.
    let authenticated = false;
    const unauthenticated = setTimeout(() => {
      this.log.emit('info', 'ATM switch connection sent no MAC-verified message in time; closing it', { connection, peer, timeoutMs: this.limits.unauthenticatedTimeoutMs });
      socket.destroy();
    }, this.limits.unauthenticatedTimeoutMs);
    const macFailures = new FailureWindow(this.limits.maxMacFailures, this.limits.macFailureWindowMs);
    let refusing = false;
    const trust: ConnectionTrust = {
      verified: () => {
        if (authenticated) return;
        authenticated = true;
        clearTimeout(unauthenticated);
      },
      macFailed: () => {
        if (!macFailures.record() || refusing) return;
        // Called while the frame is dispatched: nothing more is read or dispatched; what is in flight is answered, then the connection ends.
        refusing = true;
        queued.length = 0;
        this.refused.connectionClosed('ATM');
        if (this.log.enabled('debug')) this.log.emit('debug', 'ATM switch connection closed for its MAC failures', { connection, peer, failures: this.limits.maxMacFailures });
      },
    };
    socket.on('timeout', () => {
      this.log.emit('info', 'ATM switch connection idle; closing it', { connection, peer, idleMs: this.limits.idleTimeoutMs });
      socket.destroy();
    });
    socket.on('error', (error) => this.log.emit('debug', 'ATM switch connection error', { connection, error: error.message }));
    socket.on('close', () => {
      clearTimeout(unauthenticated);
      this.sockets.delete(socket);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
      this.log.emit('debug', 'ATM switch disconnected', { connection, peer });
    });

    // Frames read but not yet dispatched: at most what one read brought, since reading pauses while any wait.
    const queued: Buffer[] = [];
    let inFlight = 0;
    let writeBlocked = false;
    let readEnded = false;
    let capLogged = false;
    const pump = () => {
      while (!this.closing && !refusing && !socket.destroyed && queued.length > 0 && inFlight < MAX_IN_FLIGHT_PER_CONNECTION && !writeBlocked) {
        const raw = queued.shift()!;
        inFlight++;
        this.track(
          this.answer(socket, raw, connection, trust, (blocked) => (writeBlocked ||= blocked)).finally(() => {
            inFlight--;
            pump();
          }),
        );
      }
      if (refusing) {
        // Our side ends once the answers in flight are written; a peer that keeps its side open is cut off.
        socket.pause();
        if (inFlight === 0 && !socket.destroyed && !socket.writableEnded) {
          socket.end();
          setTimeout(() => socket.destroy(), 2_000).unref();
        }
        return;
      }
      if (readEnded && queued.length === 0 && inFlight === 0 && !socket.destroyed) {
        // The switch shut its write side; every answer is written (end() flushes them first), so ours closes too.
        this.log.emit('debug', 'ATM switch ended its side; answers written, closing ours', { connection, peer });
        socket.end();
        return;
      }
      const full = inFlight >= MAX_IN_FLIGHT_PER_CONNECTION;
      if (full && !capLogged) this.log.emit('debug', 'ATM connection at its in-flight cap; reading paused', { connection, inFlight, queued: queued.length });
      capLogged = full;
      if (this.closing || queued.length > 0 || full || writeBlocked) socket.pause();
      else socket.resume();
    };
    socket.on('drain', () => {
      writeBlocked = false;
      pump();
    });
    socket.on('end', () => {
      readEnded = true;
      pump();
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.closing || refusing) return; // shutting down, or closing this connection: no new work
      try {
        queued.push(...decoder.push(chunk));
      } catch (error) {
        if (!(error instanceof FrameTooLargeError)) throw error;
        this.log.emit('warn', 'ATM switch sent an impossible frame length; closing the connection', { connection, peer, problem: error.message });
        socket.destroy();
        return;
      }
      pump();
    });
  }

  /** Closes a connection over a limit before reading anything; logs the first of an interval and a count of the rest. */
  private refuse(socket: Socket, address: string, limit: string): void {
    socket.destroy();
    const now = Date.now();
    if (now - this.refusalLoggedAt >= REFUSAL_LOG_INTERVAL_MS) {
      this.refusalLoggedAt = now;
      this.log.emit('warn', 'ATM switch connection over a limit; closed without serving it', { address, limit, open: this.sockets.size });
      return;
    }
    this.refusedUnlogged++;
    this.refusalTimer ??= setTimeout(() => {
      this.refusalTimer = null;
      this.refusalLoggedAt = Date.now();
      this.log.emit('warn', 'more ATM switch connections over a limit closed without serving them', { refused: this.refusedUnlogged, intervalMs: REFUSAL_LOG_INTERVAL_MS });
      this.refusedUnlogged = 0;
    }, this.refusalLoggedAt + REFUSAL_LOG_INTERVAL_MS - now).unref();
  }

  private async answer(socket: Socket, raw: Buffer, connection: string, trust: ConnectionTrust, onWrite: (blocked: boolean) => void): Promise<void> {
    const result = await this.exchange.handle(raw, connection, trust);
    if ('close' in result) {
      socket.destroy();
      return;
    }
    // A switch that does not read its answers is not let to grow the gateway's memory: reading pauses until it drains.
    if (!socket.destroyed && !socket.writableEnded) onWrite(!socket.write(frame(result.reply)));
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error) => this.log.emit('error', 'ATM exchange failed', { error }));
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }
}
