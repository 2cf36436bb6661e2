import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { FastifyRequest } from 'fastify';
import { Channel } from '../../activation/activation.types';
import { ErrorCode } from '../../common/gateway-error';
import { JsonLogger } from '../../logging/json-logger';
import { OpsRecorder } from '../../ops/ops-recorder';
import { HttpExceptionFilter } from './http-exception.filter';
import { requestIdOf, requestPath } from './request-context';
import { ResponseSigner } from './response-signer';

export const BODY_LIMIT_BYTES = 16 * 1024;
/** Request line and headers together (issue 5); Node's default is 16 KiB. A bank's request needs about 1 KiB. */
export const HEADER_LIMIT_BYTES = 8 * 1024;

/**
 * Fastify set up for signed JSON: bodies are kept as the exact bytes
 * received (the signature covers them; JSON is parsed only after the
 * signature is checked), every error is a problem body, and every response
 * is signed on its way out.
 */
export interface HttpOps {
  recorder: OpsRecorder;
  isKnownBank(code: string): boolean;
}

export function configureHttpChannel(app: NestFastifyApplication, signer: ResponseSigner, logger: JsonLogger, ops: HttpOps): void {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, (_request: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void) =>
    done(null, body),
  );
  fastify.addHook('onSend', async (request, reply, payload) => {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : Buffer.alloc(0);
    const jti = requestIdOf(request) ?? `gateway-${request.id}`;
    reply.header('x-jws-signature', signer.sign(jti, request.method, requestPath(request), bytes));
    return bytes;
  });
  fastify.addHook('onResponse', async (request, reply) => {
    // Every activation request that ended in an error is a handled request on the ops stream too.
    const code = (request as { problemCode?: ErrorCode }).problemCode;
    if (code && request.method === 'POST' && requestPath(request) === '/v1/activations') {
      const bankId = request.headers['x-bank-id'];
      ops.recorder.record({
        bankCode: typeof bankId === 'string' && ops.isKnownBank(bankId) ? bankId : 'UNKNOWN',
        channel: channelOf(request.body),
        requestId: requestIdOf(request),
        activationId: null,
        outcome: 'ERROR',
        reason: null,
        errorCode: code,
        latencyMs: Math.round(reply.elapsedTime * 100) / 100,
        subjectHash: null,
        replayed: false,
      });
    }
    if (logger.enabled('debug')) logger.emit('debug', 'http request answered', {
      method: request.method,
      path: requestPath(request),
      status: reply.statusCode,
      bank: request.headers['x-bank-id'],
      requestId: requestIdOf(request),
      ms: Math.round(reply.elapsedTime * 100) / 100,
    });
  });
  app.useGlobalFilters(new HttpExceptionFilter(logger));
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
