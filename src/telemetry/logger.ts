import { pino, type DestinationStream, type Logger } from 'pino';
import { currentContext } from './context.js';

export type { Logger } from 'pino';

/** Options for createLogger. */
export interface LoggerOptions {
  /** Minimum level written (default `info`). */
  level?: string;
  /** Where lines go (default stdout). */
  destination?: DestinationStream;
}

/**
 * Creates the agent's one logger: JSON lines on stdout, `correlation_id` added to every line
 * written while a request is in progress. Components take `logger.child({ component })`.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'heimdall' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: () => {
        const ctx = currentContext();
        return ctx ? { correlation_id: ctx.correlationId } : {};
      },
      redact: { paths: ['password', '*.password', 'authorization', '*.authorization', 'token', '*.token'], censor: '***' },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
