import { FastifyReply } from 'fastify';
import { ErrorCode } from '../../common/gateway-error';

/** RFC 9457 problem details with the gateway's stable code. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  requestId: string | null;
}

/** Spec 3.5: every code has one HTTP status. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'MALFORMED_REQUEST':
    case 'INVALID_NATIONAL_ID':
    case 'INVALID_MOBILE':
    case 'INVALID_CHANNEL':
      return 400;
    case 'SIGNATURE_MISSING':
    case 'SIGNATURE_INVALID':
    case 'UNKNOWN_BANK':
    case 'UNKNOWN_KEY':
    case 'CERTIFICATE_NOT_TRUSTED':
    case 'CERTIFICATE_EXPIRED':
    case 'STALE_REQUEST':
      return 401;
    case 'NOT_FOUND':
      return 404;
    case 'REQUEST_ID_REUSED':
      return 409;
    case 'RATE_LIMITED':
      return 429;
    case 'UNAVAILABLE':
      return 503;
    case 'INTERNAL_ERROR':
      return 500;
  }
}

const TITLES: Record<ErrorCode, string> = {
  MALFORMED_REQUEST: 'Malformed request',
  INVALID_NATIONAL_ID: 'Invalid national ID',
  INVALID_MOBILE: 'Invalid mobile number',
  INVALID_CHANNEL: 'Invalid channel',
  SIGNATURE_MISSING: 'Signature missing',
  SIGNATURE_INVALID: 'Signature invalid',
  UNKNOWN_BANK: 'Unknown bank',
  UNKNOWN_KEY: 'Unknown signing key',
  CERTIFICATE_NOT_TRUSTED: 'Certificate not trusted',
  CERTIFICATE_EXPIRED: 'Certificate expired or not yet valid',
  STALE_REQUEST: 'Stale request',
  NOT_FOUND: 'Not found',
  REQUEST_ID_REUSED: 'Request id reused',
  RATE_LIMITED: 'Rate limited',
  UNAVAILABLE: 'Service unavailable',
  INTERNAL_ERROR: 'Internal error',
};

export function problemOf(code: ErrorCode, detail: string, requestId: string | null, instance?: string): Problem {
  return {
    type: `https://absher.gov.sa/gateway/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title: TITLES[code],
    status: httpStatusOf(code),
    detail,
    code,
    ...(instance ? { instance } : {}),
    requestId,
  };
}

/** The one way a problem goes on the wire (the exception filter, the router's errors, the Host check). */
export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  if (problem.code === 'RATE_LIMITED') reply.header('retry-after', '1');
  if (problem.code === 'UNAVAILABLE') reply.header('retry-after', '5');
  return reply.status(problem.status).header('content-type', 'application/problem+json').send(JSON.stringify(problem));
}
