import { createServer, Server as TcpServer, Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { ListenerTls, tlsServerOptions } from '../../config/listener-tls';
import { tlsClientIdentity } from '../../../libs/pki';
import { BaseRpcContext, CustomTransportStrategy, Server } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { FrameDecoder, FrameTooLargeError, frame, IsoFields, MAX_FRAME_BYTES } from '../../../libs/iso8583';
import { JsonLogger } from '../../logging/json-logger';
import { FailureWindow, RefusedTraffic } from '../../ops/refused-traffic';
import { AtmExchange, AtmMessage, ConnectionTrust } from './atm-exchange';

/** The ISO 8583 transport's id: `@MessagePattern(mti, ATM_TRANSPORT)` routes a message type to its handler. */
export const ATM_TRANSPORT = Symbol('ISO 8583');

/** What an ATM message handler gets beside the unpacked fields: the frame as received, when, and its connection's trust. */
export class AtmContext extends BaseRpcContext<[AtmMessage]> {
  get message(): AtmMessage {
    return this.args[0];
  }
}

/** Requests one connection may have in flight; past it, reading pauses until answers go out. */
export const MAX_IN_FLIGHT_PER_CONNECTION = 64;

/** Refused connections are logged at most once per this interval (then a count of the rest). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface AtmTransportLimits {
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

/**
 * The ATM switch transport (spec 4.1), a Nest microservices transport:
 * TCP, many connections, many requests in flight on each; every frame is
 * handled as soon as it is complete and answered as soon as it is decided,
 * in whatever order that is. Framing, connection limits, the MAC-failure rule
 * and back-pressure are this class's; Nest routes each unpacked message by its
 * MTI to the `@MessagePattern` handler of `AtmController`.
 */
export class AtmTransport extends Server implements CustomTransportStrategy {
  override readonly transportId = ATM_TRANSPORT;
  private server: TcpServer | null = null;
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
    private readonly limits: AtmTransportLimits,
    private readonly refused: RefusedTraffic,
    private readonly address: { port: number; host: string },
    private readonly appLogger: JsonLogger,
    /** TLS for the listener (ISO8583_TLS_*), mutual with a client CA; null: plain TCP. */
    private readonly tls: ListenerTls | null = null,
  ) {
    super();
    this.log = appLogger.child('atm-listener');
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** Binds the port (Nest calls it from `app.startAllMicroservices()`); says where, with the port bound when asked for 0. */
  listen(callback: (error?: unknown) => void): void {
    this.bind().then(
      (port) => {
        // On the application's logger, which notes the port bound (ISO8583_PORT=0) for the DATA_DIR lock.
        this.appLogger.emit('info', `ISO 8583 listener for ATM switches on ${this.address.host}:${port}`, { iso8583Port: port });
        callback();
      },
      (error: unknown) => callback(error),
    );
  }

  private async bind(): Promise<number> {
    // Half-open: a switch may shut its write side right after its last request and still expect the answers.
    const server = this.tls
      ? createTlsServer({ allowHalfOpen: true, ...tlsServerOptions(this.tls) }, (socket) => this.accept(socket))
      : createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.address.port, this.address.host, () => resolve());
    });
    return (server.address() as { port: number }).port;
  }

  /** No transport events to subscribe to: connections are this class's own business. */
  on(): never {
    throw new Error('the ISO 8583 transport has no events to subscribe to');
  }

  unwrap<T>(): T {
    return this.server as T;
  }

  /**
   * Stops taking work: no new connections, no new frames read from open ones;
   * waits (up to `graceMs`) until every request in flight is answered, then
   * closes the connections. Runs before the store and Kafka close (from the
   * channel's beforeApplicationShutdown; Nest's own later call finds it closed).
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
      tlsClient: socket instanceof TLSSocket && socket.authorized ? tlsClientIdentity(socket.getPeerCertificate().raw) : undefined,
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
    const result = await this.exchange.handle(raw, connection, trust, (request, message) => this.route(request, message));
    if ('close' in result) {
      socket.destroy();
      return;
    }
    // A switch that does not read its answers is not let to grow the gateway's memory: reading pauses until it drains.
    if (!socket.destroyed && !socket.writableEnded) onWrite(!socket.write(frame(result.reply)));
  }

  /** The handler registered for the message's MTI; a message type nobody handles gets the exchange's 12. */
  private async route(request: IsoFields, message: AtmMessage): Promise<Buffer> {
    // By the MTI itself: Nest's string lookup would read '0200' as the JSON number 200.
    const handler = this.messageHandlers.get(request[0]);
    if (!handler) return this.exchange.unsupported(request);
    return lastValueFrom(this.transformToObservable(await handler(request, new AtmContext([message]))));
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error) => this.log.emit('error', 'ATM exchange failed', { error }));
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }
}
