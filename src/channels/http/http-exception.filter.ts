import { IncomingMessage, STATUS_CODES, ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import { ArgumentsHost, Catch, ExceptionFilter, HttpException } from '@nestjs/common';
import { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, GatewayError } from '../../common/gateway-error';
import { JsonLogger } from '../../logging/json-logger';
import { isKeyStoreUnavailable } from '../../keys/key-store';
import { Problem, problemOf, sendProblem } from './problem';
import { requestIdOf, requestPath } from './request-context';

/**
 * A request that matched no route (no such path or method, a URL the router
 * cannot read, no Host). Its answer echoes nothing the caller sent: no
 * `instance`, no `requestId`, and the signature's `jti` is the gateway's own.
 */
const unrouted = new WeakSet<FastifyRequest>();

export function isUnrouted(request: FastifyRequest): boolean {
  return unrouted.has(request);
}

/** The problem for a request that never reached a route: nothing of the request in it. */
export function unroutedProblem(request: FastifyRequest, code: ErrorCode, detail: string): Problem {
  unrouted.add(request);
  (request as { problemCode?: string }).problemCode = code;
  return problemOf(code, detail, null);
}

/**
 * Every error on the HTTP side becomes an RFC 9457 problem with a stable
 * code: ours (GatewayError), Fastify's (body too large, bad content length)
 * and Nest's (no such route or method: 404 NOT_FOUND, echoing nothing).
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: JsonLogger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const { code, detail, bodyTooLarge, noRoute } = this.classify(exception, request);
    const requestId = requestIdOf(request);
    const problem = noRoute || isUnrouted(request) ? unroutedProblem(request, code, detail) : problemOf(code, detail, requestId, requestPath(request));
    (request as { problemCode?: string }).problemCode = code;
    (request as { problemDetail?: string }).problemDetail = detail;
    if (code === 'INTERNAL_ERROR') {
      this.logger.emit('error', 'unexpected error answering an HTTP request', { error: exception, path: requestPath(request), requestId });
    }
    if (bodyTooLarge) keepReadingAfterEarlyAnswer(request, reply);
    sendProblem(reply, problem);
  }

  private classify(exception: unknown, request: FastifyRequest): { code: ErrorCode; detail: string; bodyTooLarge?: true; noRoute?: true } {
    if (exception instanceof GatewayError) return { code: exception.code, detail: exception.detail };
    // The token went away while the request was decided (its subject hash): nothing was stored.
    if (isKeyStoreUnavailable(exception)) return { code: 'UNAVAILABLE', detail: 'the gateway cannot use its keys now (its key store is unavailable); nothing was accepted, retry later' };
    const fastifyCode = (exception as { code?: string })?.code;
    // The body stream broke off: the client closed the connection, or the request timeout cut it off.
    // No one is left to read the answer, but it is the client's doing, not an unexpected error to log.
    if (fastifyCode === 'ECONNRESET' && !request.raw.complete) {
      return { code: 'MALFORMED_REQUEST', detail: 'the connection closed before the whole body arrived' };
    }
    switch (fastifyCode) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return { code: 'MALFORMED_REQUEST', detail: 'the body is larger than 16 KiB', bodyTooLarge: true };
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return { code: 'MALFORMED_REQUEST', detail: 'the Content-Length header does not match the body' };
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return { code: 'MALFORMED_REQUEST', detail: 'the body is empty' };
    }
    const status = exception instanceof HttpException ? exception.getStatus() : (exception as { statusCode?: number })?.statusCode;
    // Nest hands Fastify's errors over as an HttpException with their status (413: the body is too large).
    if (status === 413) return { code: 'MALFORMED_REQUEST', detail: 'the body is larger than 16 KiB', bodyTooLarge: true };
    if (exception instanceof HttpException && status !== undefined) {
      // Nest's answer to a path or method no route has (it never says 405). The path and method are the caller's: not echoed.
      if (status === 404) return { code: 'NOT_FOUND', detail: 'no endpoint answers this method and path', noRoute: true };
      if (status === 405) return { code: 'MALFORMED_REQUEST', detail: 'this method is not allowed here', noRoute: true };
      if (status < 500) return { code: 'MALFORMED_REQUEST', detail: exception.message };
    }
    // Fastify's messages may quote the URL or a header: only its code is said.
    if (typeof fastifyCode === 'string' && fastifyCode.startsWith('FST_')) {
      return { code: 'MALFORMED_REQUEST', detail: `the request could not be read (${fastifyCode})` };
    }
    return { code: 'INTERNAL_ERROR', detail: 'the gateway could not answer this request; it has been logged' };
  }
}

/** Requests answered before their body was read, by connection: their timeout needs no second answer. */
const answeredBeforeBody = new WeakMap<object, IncomingMessage>();

/**
 * A body over the limit is answered before it has all arrived. Closing the
 * connection right after the answer (Fastify's choice, and Node's when the
 * client sent `Connection: close`) resets it while the client is still
 * sending: its write fails and it may never read the answer. So the rest of
 * the body is read and thrown away, as Node does for any early answer, and
 * a client that asked to close gets a half-close (RFC 9112 9.6, closing in
 * stages): our side ends after the answer, the reading goes on until the
 * client closes. The request timeout ends a body that never ends.
 */
function keepReadingAfterEarlyAnswer(request: FastifyRequest, reply: FastifyReply): void {
  const socket = request.raw.socket;
  answeredBeforeBody.set(socket, request.raw);
  reply.removeHeader('connection');
  if (!reply.raw.shouldKeepAlive) {
    // Otherwise Node destroys the socket the moment the answer is written.
    reply.raw.shouldKeepAlive = true;
    reply.raw.once('finish', () => socket.end());
  }
}

/** What Node's HTTP parser reports on a connection (Fastify's ConnectionError). */
interface ConnectionError extends Error {
  code?: string;
  /** llhttp's explanation of a parse error, e.g. "Invalid method encountered". */
  reason?: string;
}

export interface ConnectionLimits {
  headerLimitBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * Answers what goes wrong on a connection before Nest has a request to
 * route: headers over the limit (431), headers or body that do not arrive in
 * time (408, slowloris and silent connections), bytes that are not HTTP/1.1
 * (400 MALFORMED_REQUEST). Fastify's default answer is JSON that names no
 * limit; this one is a problem that says which limit was hit. 408 and 431
 * have no code of spec 3.5, so their problem is RFC 9457's `about:blank`:
 * the status says it all.
 *
 * The connection is closed afterwards: the parser has lost its place in the
 * stream. The answer is not signed and nothing goes on the ops stream: a
 * signature and a request-handled event are about a request the gateway has
 * read, and here it has read none (or, when the body timed out, only its
 * headers).
 */
export function connectionErrorHandler(limits: ConnectionLimits, logger: JsonLogger): (error: ConnectionError, socket: Duplex) => void {
  return (error, socket) => {
    // A reset connection has no one left to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    // The request was answered already (its body was too large); this is the timeout ending the rest of it.
    if (answeredBeforeBody.get(socket)?.complete === false) {
      socket.destroy();
      return;
    }
    // Node's own rule: a response already under way must not be corrupted by a second one.
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    const answer = connectionProblem(error, limits, Boolean(inFlight));
    if (logger.enabled('debug')) logger.emit('debug', 'http connection refused', { reason: error.code, status: answer?.status ?? null });
    if (answer && socket.writable && !inFlight?.headersSent) {
      const body = JSON.stringify(answer);
      socket.write(
        `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\nConnection: close\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}

/** RFC 9457 with `about:blank` (408, 431) or the gateway's problem with its code (400). */
type ConnectionProblem = { type: string; title: string | undefined; status: number; detail: string; requestId: null } | Problem;

function connectionProblem(error: ConnectionError, limits: ConnectionLimits, headersRead: boolean): ConnectionProblem | null {
  const plain = (status: number, detail: string): ConnectionProblem => ({ type: 'about:blank', title: STATUS_CODES[status], status, detail, requestId: null });
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return plain(431, `the request line and headers are larger than ${limits.headerLimitBytes} bytes in total`);
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      // Node raises the same error for both timeouts; once the headers are read, a response is assigned to the socket.
      return headersRead
        ? plain(408, `the request body did not arrive within ${limits.requestTimeoutMs} ms`)
        : plain(408, `the request line and headers did not arrive within ${limits.headersTimeoutMs} ms`);
  }
  if (error.code?.startsWith('HPE_')) {
    return problemOf('MALFORMED_REQUEST', `the request is not valid HTTP/1.1: ${(error.reason ?? error.code).slice(0, 120)}`, null);
  }
  return null;
}
