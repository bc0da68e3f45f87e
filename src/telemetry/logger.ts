/**
 * The pino root logger. Redaction is on from the first line: authorization headers, cookies,
 * API keys and tokens never reach the output, and request bodies are never logged at all.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Paths censored in every line, whatever the call site passes. The audit lines are built from
 * named fields and never carry these (pipeline/audit.ts, exchange/ledger.ts); this list is the
 * second line of defence for error objects and ad-hoc debug fields.
 */
export const REDACT_PATHS = [
  'authorization',
  'token',
  'apiKey',
  'api_key',
  'password',
  'secret',
  'clientSecret',
  'client_secret',
  'cookie',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["proxy-authorization"]',
  'headers["x-api-key"]',
  '*.authorization',
  '*.token',
  '*.apiKey',
  '*.api_key',
  '*.password',
  '*.secret',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["x-api-key"]',
  // Request and response content: prompts, completions, raw bodies.
  'body',
  '*.body',
  'rawBody',
  '*.rawBody',
  'prompt',
  '*.prompt',
  'messages',
  '*.messages',
  'input',
  '*.input',
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
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
