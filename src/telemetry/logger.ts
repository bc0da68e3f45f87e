/**
 * The pino root logger. Redaction is on from the first line: authorization headers, cookies,
 * API keys and tokens never reach the output, and request bodies are never logged at all.
 */
import { pino, type Logger } from 'pino';
import { guardOutput, type Sink } from './output.js';

export type { Logger };

/**
 * Paths censored in every line, whatever the call site passes. The audit lines are built from
 * named fields and never carry these (check/audit.ts, budgets/ledger.ts); this list is the
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

/** What every redacted value is replaced with. */
export const CENSOR = '[redacted]';

/** The keys REDACT_PATHS censors one level down in any field (its `*.key` paths). */
const NESTED_KEYS: readonly string[] = REDACT_PATHS.filter((p) => /^\*\.\w+$/.test(p)).map((p) =>
  p.slice(2),
);

/** What `*.key` redaction does to one field's value: a copy with those keys censored. */
function censorNested(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of NESTED_KEYS) {
    // `in`, like pino's redaction: an inherited property is censored too.
    if (key in value) (copy ??= { ...(value as Record<string, unknown>) })[key] = CENSOR;
  }
  return copy ?? value;
}

/**
 * A logger for audit lines, the one line per Check and per settlement. pino redacts with a
 * wildcard stringifier on every top-level field of every line, which re-parses each redact
 * path per field and made up about a fifth of a Check's CPU (bench/OPTIMISATIONS.md). Audit
 * lines are built from named fields only, so the root paths can never match them; what can
 * carry outside names is listed in `openFields` (e.g. `claimsUsed`, keyed by claim names),
 * and those keep exactly the censoring the root logger gives them (`claimsUsed.token`, …).
 * Same destination, level and format as `logger`.
 */
export function auditLogger(logger: Logger, openFields: readonly string[]): Logger {
  const serializers = Object.fromEntries(openFields.map((field) => [field, censorNested]));
  return logger.child({}, { redact: [], serializers });
}

export interface LoggerOptions {
  readonly level?: string;
  /** Where lines go; default stdout. `stack` and `demo` log to stderr so stdout stays for their output. */
  readonly destination?: Sink | NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'tollgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: CENSOR },
      formatters: { level: (label) => ({ level: label }) },
    },
    // Once the destination fails (its reader died), lines are dropped: see output.ts.
    guardOutput(opts.destination ?? pino.destination({ fd: 1, sync: false })),
  );
}
