/**
 * The pino root logger. Redaction is on from the first line: authorization headers, cookies,
 * API keys and tokens never reach the output, and request bodies are never logged at all.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths censored in every line, whatever the call site passes. */
export const REDACT_PATHS = [
  'authorization',
  'token',
  'apiKey',
  'api_key',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  'headers["x-api-key"]',
  '*.authorization',
  '*.token',
  '*.apiKey',
  '*.api_key',
  '*.headers.authorization',
  '*.headers.cookie',
  'body',
  '*.body',
  'prompt',
  'messages',
];

export interface LoggerOptions {
  readonly level?: string;
  /** Where lines go; default stdout. `stack` and `demo` log to stderr so stdout stays for their output. */
  readonly destination?: DestinationStream | NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'tollgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    (opts.destination ?? pino.destination({ fd: 1, sync: false })) as DestinationStream,
  );
}
