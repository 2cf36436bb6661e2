import { FastifyRequest } from 'fastify';

/** At least one letter or digit: `.` and `..` are path segments that URL-normalising clients drop, so no GET could name them. */
const REQUEST_ID = /^(?=[._:-]*[A-Za-z0-9])[A-Za-z0-9._:-]{1,64}$/;
/** The rule in words, for problem details. */
export const REQUEST_ID_RULE = '1-64 characters of [A-Za-z0-9._:-], at least one of them a letter or digit';

/** The path as sent, without the query string: what `htu` must equal. */
export function requestPath(request: FastifyRequest): string {
  const url = request.raw.url ?? request.url;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

export function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** X-Request-Id when it is well formed; echoed in problems and as the response signature's jti. */
export function requestIdOf(request: FastifyRequest): string | null {
  const value = header(request, 'x-request-id');
  return value && REQUEST_ID.test(value) ? value : null;
}

export function isWellFormedRequestId(value: string | undefined): value is string {
  return value !== undefined && REQUEST_ID.test(value);
}
