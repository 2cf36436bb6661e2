/**
 * The one error type: every failure a bank or switch can be told about has
 * a stable code (spec 3.5); each channel maps codes to its wire format in an
 * exhaustive switch (HTTP status + problem body, ISO 8583 field 39).
 */
export const ERROR_CODES = [
  'MALFORMED_REQUEST',
  'INVALID_NATIONAL_ID',
  'INVALID_MOBILE',
  'INVALID_CHANNEL',
  'SIGNATURE_MISSING',
  'SIGNATURE_INVALID',
  'UNKNOWN_BANK',
  'UNKNOWN_KEY',
  'CERTIFICATE_NOT_TRUSTED',
  'CERTIFICATE_EXPIRED',
  'STALE_REQUEST',
  'NOT_FOUND',
  'REQUEST_ID_REUSED',
  'RATE_LIMITED',
  'UNAVAILABLE',
  'INTERNAL_ERROR',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class GatewayError extends Error {
  constructor(
    readonly code: ErrorCode,
    /** Human-readable, specific, and free of personal data. */
    readonly detail: string,
    readonly underlying?: unknown,
  ) {
    super(`${code}: ${detail}`);
  }
}

/** True for errors that mean the store cannot take writes (connection lost or refused, too many clients, shutting down, read-only after a failover). */
export function isStoreUnavailable(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | undefined;
  if (!e) return false;
  const code = e.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '53300', '25006'].includes(code)) {
    return true;
  }
  // TypeORM releases a query runner whose connection died (a killed backend): the next query on it says so.
  if ((e as { name?: string }).name === 'QueryRunnerAlreadyReleasedError') return true;
  return /Connection terminated|not currently accepting connections|terminating connection|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect|Cannot use a pool after calling end|not queryable/i.test(e.message ?? '');
}

/**
 * The one answer to a store that cannot be reached: `UNAVAILABLE` (503 with Retry-After, or 91), saying
 * nothing was accepted. Other errors are returned as they are.
 */
export function asStoreUnavailable(error: unknown): unknown {
  return isStoreUnavailable(error) ? storeUnavailable(error) : error;
}

/** UNAVAILABLE for a store that could not be reached at all, whatever its error said. */
export function storeUnavailable(cause: unknown): GatewayError {
  return new GatewayError('UNAVAILABLE', 'the activation store is unavailable; nothing was accepted, retry later', cause);
}
