import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { ListenerTls, tlsServerOptions } from '../../config/listener-tls';
import { errorHandled, latencyMs } from '../../ops/request-handled';
import { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Channel } from '../../activation/activation.types';
import { ErrorCode } from '../../common/gateway-error';
import { JsonLogger, withRequestContext } from '../../logging/json-logger';
import { isKeyStoreUnavailable } from '../../keys/key-store';
import { OpsRecorder } from '../../ops/ops-recorder';
import { FailureWindow, RefusedTraffic } from '../../ops/refused-traffic';
import { connectionErrorHandler, ConnectionLimits, HttpExceptionFilter, isUnrouted, unroutedProblem } from './http-exception.filter';
import { problemOf, sendProblem } from './problem';
import { requestIdOf, requestPath } from './request-context';
import { ResponseSigner } from './response-signer';

export const BODY_LIMIT_BYTES = 16 * 1024;
/** Request line and headers together; Node's default is 16 KiB. A bank's request needs about 1 KiB. */
export const HEADER_LIMIT_BYTES = 8 * 1024;
/** The router's limit on one path parameter (Fastify's default); a request id is at most 64 characters. */
export const MAX_PARAM_LENGTH = 100;

export interface HttpLimits {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
}

/**
 * Fastify for the bank port. What goes wrong before Nest routes a request is
 * answered as a problem too, signed, echoing nothing: bytes that are not
 * HTTP (clientErrorHandler), a URL the router cannot read or a path
 * parameter over its limit (frameworkErrors), and no Host (Node's own bare
 * 400 is turned off; the onRequest hook in configureHttpChannel answers it).
 */
export function createHttpAdapter(signer: ResponseSigner, limits: HttpLimits, logger: JsonLogger, tls: ListenerTls | null = null): FastifyAdapter {
  const connectionLimits: ConnectionLimits = { headerLimitBytes: HEADER_LIMIT_BYTES, headersTimeoutMs: limits.headersTimeoutMs, requestTimeoutMs: limits.requestTimeoutMs };
  const server = {
    maxHeaderSize: HEADER_LIMIT_BYTES,
    headersTimeout: limits.headersTimeoutMs,
    // Node checks both timeouts only this often (by default every 30 s, which would let a
    // slowloris client hold a connection up to twice as long as configured).
    connectionsCheckingInterval: Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4)),
    requireHostHeader: false,
  };
  return new FastifyAdapter({
    // With TLS, Fastify makes an https server from these options alone: the HTTP limits go with them.
    ...(tls ? { https: { ...server, ...tlsServerOptions(tls) } } : { http: server }),
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: limits.requestTimeoutMs,
    // A backstop for a connection gone quiet after its request was read. Later than the request
    // timeout, so a client that stops sending mid-request is told 408 rather than dropped silently.
    connectionTimeout: limits.requestTimeoutMs + 10_000,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    clientErrorHandler: connectionErrorHandler(connectionLimits, logger),
    // Called with a bare request and reply: no hooks run on them, so the answer is signed here
    // (over the bytes sendProblem writes: the same JSON.stringify of the same object).
    frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      const { code, detail } = routerError(error);
      const problem = unroutedProblem(request, code, detail);
      reply.header('x-jws-signature', signatureOf(signer, request, problem.status, Buffer.from(JSON.stringify(problem))));
      sendProblem(reply, problem);
    },
    return503OnClosing: true,
  });
}

/** The router's own errors, said without the URL they quote. */
function routerError(error: { code?: string; statusCode?: number }): { code: ErrorCode; detail: string } {
  switch (error.code) {
    case 'FST_ERR_BAD_URL':
      return { code: 'MALFORMED_REQUEST', detail: 'the request path is not valid percent-encoded UTF-8' };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { code: 'MALFORMED_REQUEST', detail: `a path segment is longer than ${MAX_PARAM_LENGTH} characters` };
  }
  return (error.statusCode ?? 500) < 500
    ? { code: 'MALFORMED_REQUEST', detail: 'the request could not be routed' }
    : { code: 'INTERNAL_ERROR', detail: 'the gateway could not answer this request; it has been logged' };
}

/**
 * The response signature; an unrouted request's own X-Request-Id is not echoed as its jti. A 401 is
 * bound to nothing the caller chose (spec 3.3): no jti, htm or htu.
 */
function signatureOf(signer: ResponseSigner, request: FastifyRequest, status: number, bytes: Buffer): string {
  if (status === 401) return signer.signUnbound(bytes);
  const jti = (isUnrouted(request) ? null : requestIdOf(request)) ?? `gateway-${request.id}`;
  return signer.sign(jti, request.method, requestPath(request), bytes);
}

/** RFC 9112 3.2: an HTTP/1.1 request with no Host, or more than one, is answered 400. */
function hostIsMissingOrRepeated(request: FastifyRequest): boolean {
  const raw = request.raw;
  if (raw.httpVersionMajor !== 1 || raw.httpVersionMinor !== 1) return false;
  let hosts = 0;
  for (let i = 0; i < raw.rawHeaders.length; i += 2) if (raw.rawHeaders[i].toLowerCase() === 'host') hosts++;
  return hosts !== 1;
}

/**
 * Fastify set up for signed JSON: bodies are kept as the exact bytes
 * received (the signature covers them; JSON is parsed only after the
 * signature is checked), every error is a problem body, and every response
 * is signed on its way out.
 */
export interface HttpOps {
  recorder: OpsRecorder;
  refused: RefusedTraffic;
  isKnownBank(code: string): boolean;
  /** This many 401s on one connection within `authFailureWindowMs` get `Connection: close`. */
  maxAuthFailures: number;
  authFailureWindowMs: number;
}

/** The 401s of each connection. */
const authFailures = new WeakMap<object, FailureWindow>();

/** Counts a 401 against its connection; true when the connection has had its limit and is to be closed. */
function closeAfterAuthFailure(request: FastifyRequest, ops: HttpOps): boolean {
  const socket = request.raw.socket;
  let failures = authFailures.get(socket);
  if (!failures) authFailures.set(socket, (failures = new FailureWindow(ops.maxAuthFailures, ops.authFailureWindowMs)));
  return failures.record();
}

export function configureHttpChannel(app: NestFastifyApplication, signer: ResponseSigner, logger: JsonLogger, ops: HttpOps): void {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, (_request: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void) =>
    done(null, body),
  );
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!hostIsMissingOrRepeated(request)) return;
    sendProblem(reply, unroutedProblem(request, 'MALFORMED_REQUEST', 'an HTTP/1.1 request must carry exactly one Host header'));
    return reply;
  });
  // The handler runs inside its request's log context: any line written while it is handled names the request.
  // Callback style: done() continues to the handler synchronously, inside the context.
  fastify.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done: () => void) => withRequestContext({ requestId: requestIdOf(request) }, done));
  /**
   * Every refused request is counted, and every activation request that ended in an error is a handled
   * request on the ops stream too: here, as its answer goes out. Not in onResponse, which Fastify runs on
   * the answer's 'finish' only, which never comes when the client hangs up before the answer is flushed:
   * the refusal would go uncounted. A request whose connection the connection handler already ended (a
   * body that never arrived: 408) was never read, and is neither.
   */
  const countError = (request: FastifyRequest, reply: FastifyReply): void => {
    const code = (request as { problemCode?: ErrorCode }).problemCode;
    if (!code || request.raw.socket?.destroyed) return;
    const bankId = request.headers['x-bank-id'];
    const knownBank = typeof bankId === 'string' && ops.isKnownBank(bankId) ? bankId : null;
    if (reply.statusCode === 401) {
      ops.refused.refuse({
        channel: 'HTTP',
        source: request.ip,
        bankCode: knownBank,
        code,
        reason: (request as { problemDetail?: string }).problemDetail ?? code,
        sample: { method: request.method, requestId: requestIdOf(request) },
      });
    }
    if (request.method === 'POST' && requestPath(request) === '/v1/activations') {
      ops.recorder.record(
        errorHandled({ bankCode: knownBank ?? 'UNKNOWN', channel: channelOf(request.body), requestId: requestIdOf(request), errorCode: code, elapsedMs: reply.elapsedTime }),
      );
    }
  };
  fastify.addHook('onSend', async (request, reply, payload) => {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : Buffer.alloc(0);
    try {
      reply.header('x-jws-signature', signatureOf(signer, request, reply.statusCode, bytes));
    } catch (error) {
      if (!isKeyStoreUnavailable(error)) throw error;
      return unsignedUnavailable(request, reply, countError);
    }
    if (reply.statusCode === 401 && closeAfterAuthFailure(request, ops)) {
      // A connection that keeps failing to prove who it is is not kept open for more attempts.
      reply.header('connection', 'close');
      ops.refused.connectionClosed('HTTP');
    }
    countError(request, reply);
    return bytes;
  });
  fastify.addHook('onResponse', async (request, reply) => {
    if (logger.enabled('debug')) logger.emit('debug', 'http request answered', {
      method: request.method,
      path: requestPath(request),
      status: reply.statusCode,
      bank: request.headers['x-bank-id'],
      requestId: requestIdOf(request),
      ms: latencyMs(reply.elapsedTime),
    });
  });
  app.useGlobalFilters(new HttpExceptionFilter(logger));
}

/**
 * The answer when the signing key's token went away between the request's check and its answer: a 503,
 * unsigned, as nothing can be signed. A decision already stored is the bank's on its retry with the same
 * X-Request-Id (the idempotent replay), signed once the token is back.
 */
function unsignedUnavailable(request: FastifyRequest, reply: FastifyReply, countError: (request: FastifyRequest, reply: FastifyReply) => void): Buffer {
  const problem = problemOf('UNAVAILABLE', 'the gateway cannot sign its answer now (its key store is unavailable); retry later with the same X-Request-Id', requestIdOf(request));
  (request as { problemCode?: ErrorCode }).problemCode = 'UNAVAILABLE';
  reply.code(problem.status).header('content-type', 'application/problem+json').header('retry-after', '5').removeHeader('idempotent-replayed');
  countError(request, reply);
  return Buffer.from(JSON.stringify(problem));
}

/** The channel a refused request named, if it can be read; INTERNET_BANKING otherwise (contracts: request-handled). */
function channelOf(body: unknown): Channel {
  if (!Buffer.isBuffer(body) || body.length === 0) return 'INTERNET_BANKING';
  try {
    const channel = (JSON.parse(body.toString('utf8')) as { channel?: unknown }).channel;
    return channel === 'PHONE_BANKING' ? 'PHONE_BANKING' : 'INTERNET_BANKING';
  } catch {
    return 'INTERNET_BANKING';
  }
}
