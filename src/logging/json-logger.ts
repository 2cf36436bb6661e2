import { LoggerService } from '@nestjs/common';
import { redactPersonalData } from '../../libs/identity';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * The one logger: one JSON object per line on stdout. Every line passes
 * through redactPersonalData last, so a national ID, mobile or PAN that
 * slipped into a message or a field is masked before it is written.
 */
export class JsonLogger implements LoggerService {
  private static threshold: number = RANK.info;
  /** Where lines go; tests may read them here as well. */
  static write: (line: string) => void = (line) => process.stdout.write(line);

  constructor(private readonly component = 'gateway') {}

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
    const line = JSON.stringify({ time: new Date().toISOString(), level, component: this.component, message, ...fields }, errorReplacer);
    JsonLogger.write(redactPersonalData(line) + '\n');
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

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  if (typeof value === 'bigint') return value.toString();
  return value;
}
