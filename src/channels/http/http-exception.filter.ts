import { ArgumentsHost, Catch, ExceptionFilter, HttpException } from '@nestjs/common';
import { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, GatewayError } from '../../common/gateway-error';
import { JsonLogger } from '../../logging/json-logger';
import { httpStatusOf, problemOf } from './problem';
import { requestIdOf, requestPath } from './request-context';

/**
 * Every error on the HTTP side becomes an RFC 9457 problem with a stable
 * code: ours (GatewayError), Fastify's (body too large, bad content length)
 * and Nest's (no such route).
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: JsonLogger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const { code, detail } = this.classify(exception, request);
    const requestId = requestIdOf(request);
    const problem = problemOf(code, detail, requestId, requestPath(request));
    (request as { problemCode?: string }).problemCode = code;
    if (code === 'INTERNAL_ERROR') {
      this.logger.emit('error', 'unexpected error answering an HTTP request', { error: exception, path: requestPath(request), requestId });
    }
    if (code === 'RATE_LIMITED') reply.header('retry-after', '1');
    if (code === 'UNAVAILABLE') reply.header('retry-after', '5');
    reply.status(httpStatusOf(code)).header('content-type', 'application/problem+json').send(JSON.stringify(problem));
  }

  private classify(exception: unknown, request: FastifyRequest): { code: ErrorCode; detail: string } {
    if (exception instanceof GatewayError) return { code: exception.code, detail: exception.detail };
    const fastifyCode = (exception as { code?: string })?.code;
    switch (fastifyCode) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return { code: 'MALFORMED_REQUEST', detail: 'the body is larger than 16 KiB' };
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return { code: 'MALFORMED_REQUEST', detail: 'the Content-Length header does not match the body' };
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return { code: 'MALFORMED_REQUEST', detail: 'the body is empty' };
    }
    const status = exception instanceof HttpException ? exception.getStatus() : (exception as { statusCode?: number })?.statusCode;
    if (status === 413) return { code: 'MALFORMED_REQUEST', detail: 'the body is larger than 16 KiB' };
    if (exception instanceof HttpException && status !== undefined) {
      if (status === 404) return { code: 'NOT_FOUND', detail: `no such endpoint: ${request.method} ${requestPath(request)}` };
      if (status === 405) return { code: 'MALFORMED_REQUEST', detail: `${request.method} is not allowed here` };
      if (status < 500) return { code: 'MALFORMED_REQUEST', detail: exception.message };
    }
    if (typeof fastifyCode === 'string' && fastifyCode.startsWith('FST_')) {
      return { code: 'MALFORMED_REQUEST', detail: (exception as Error).message };
    }
    return { code: 'INTERNAL_ERROR', detail: 'the gateway could not answer this request; it has been logged' };
  }
}
