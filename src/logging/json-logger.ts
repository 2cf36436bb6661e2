import { AsyncLocalStorage } from 'node:async_hooks';
import { LoggerService } from '@nestjs/common';
import pino, { DestinationStream, Logger } from 'pino';
import { redactPersonalData } from '../../libs/identity';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** What a request's log lines carry without each call site passing it: its request id (and, on ATM, its connection). */
export interface RequestLogContext {
  requestId: string | null;
  connection?: string;
}

const requestContext = new AsyncLocalStorage<RequestLogContext>();

/**
 * Runs `work` with `context` bound to every log line written while it runs, however deep (the
 * channels bind a request's id as it starts, so a line from the store, the rate limiter or an
 * unexpected error names the request it belongs to).
 */
export function withRequestContext<T>(context: RequestLogContext, work: () => T): T {
  return requestContext.run(context, work);
}

/** Runs `work` bound to no request: work shared by many requests (a batch) must not carry the id of the one that started it. */
export function outsideRequestContext<T>(work: () => T): T {
  return requestContext.exit(work);
}

/** Where lines go by default: stdout, written asynchronously (pino's SonicBoom), flushed at exit. */
let stdout: DestinationStream | null = null;
function writeToStdout(line: string): void {
  stdout ??= pino.destination({ dest: 1, sync: false });
  stdout.write(line);
}

/**
 * The one logger: pino, one JSON object per line on stdout, written
 * asynchronously off the request path. Field names are the gateway's
 * (`time` ISO 8601, `level` as a word, `component`, `message`, then the
 * fields), and a request's id is bound to the lines written while it is
 * handled (withRequestContext). Every line passes through
 * redactPersonalData last (pino's streamWrite hook), so a national ID,
 * mobile or PAN that slipped into a message or a field is masked before it
 * is written.
 */
export class JsonLogger implements LoggerService {
  private static threshold: number = RANK.info;
  /** Where lines go; tests and the CLI may send them elsewhere (every logger follows at once). */
  static write: (line: string) => void = writeToStdout;
  private static root: Logger = pino(
    {
      level: 'debug', // levels are decided by `threshold` (one switch for every logger, as before)
      base: null,
      messageKey: 'message',
      timestamp: () => `,"time":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      mixin: () => requestContext.getStore() ?? {},
      hooks: { streamWrite: (line) => redactPersonalData(line) },
    },
    { write: (line: string) => JsonLogger.write(line) },
  );
  private readonly pino: Logger;

  constructor(component = 'gateway') {
    this.pino = JsonLogger.root.child({ component });
  }

  static setLevel(level: LogLevel): void {
    JsonLogger.threshold = RANK[level];
  }

  child(component: string): JsonLogger {
    return new JsonLogger(component);
  }

  /** For callers whose log fields cost work to build (an ISO message decoded and masked): skip it when the level is off. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= JsonLogger.threshold;
  }

  emit(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
    if (RANK[level] < JsonLogger.threshold) return;
    this.pino[level](plain(fields), message);
  }

  debug(message: unknown, context?: string): void {
    this.emit('debug', String(message), context ? { context } : {});
  }
  log(message: unknown, context?: string): void {
    this.emit('info', String(message), context ? { context } : {});
  }
  warn(message: unknown, context?: string): void {
    this.emit('warn', String(message), context ? { context } : {});
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.emit('error', message instanceof Error ? message.message : String(message), { ...(trace ? { trace } : {}), ...(context ? { context } : {}) });
  }
  verbose(message: unknown, context?: string): void {
    this.debug(message, context);
  }
  fatal(message: unknown, context?: string): void {
    this.emit('error', String(message), context ? { context, fatal: true } : { fatal: true });
  }
}

/** Errors as their name, message and code (never a stack with values in it); bigints as strings. */
function plain(fields: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | null = null;
  for (const key in fields) {
    const value = fields[key];
    if (value instanceof Error || typeof value === 'bigint') {
      copy ??= { ...fields };
      copy[key] = value instanceof Error ? { name: value.name, message: value.message, code: (value as { code?: unknown }).code } : value.toString();
    }
  }
  return copy ?? fields;
}

/**
 * Node's process warnings as log lines of this logger, instead of Node's plain text on stderr (every
 * line the gateway writes is JSON). kafkajs 2.2 schedules a negative timeout when its request queue is
 * idle; Node 24 warns about it (TimeoutNegativeWarning) and runs it after 1 ms, as older Nodes did:
 * harmless, so it is said once, at debug.
 */
export function logProcessWarnings(logger: JsonLogger): void {
  let negativeTimeoutSaid = false;
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning') {
      if (!negativeTimeoutSaid) logger.emit('debug', 'a negative timeout was run after 1 ms (kafkajs when its request queue is idle; harmless)', { warning: warning.name });
      negativeTimeoutSaid = true;
      return;
    }
    logger.emit('warn', `Node.js warning: ${warning.message}`, { warning: warning.name, code: (warning as { code?: string }).code });
  });
}
