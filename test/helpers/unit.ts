/** Builders the unit tests of several areas share: a complete Config and a parsed log sink. */
import { Writable } from 'node:stream';
import { DEFAULT_MAX_REQUEST_BYTES, type Config } from '../../src/config/schema.js';
import { admit, type PlanInput, type Planner, type PlanVerdict } from '../../src/limits/admit.js';
import type { Store } from '../../src/store/store.js';
import { createLogger, type Logger } from '../../src/telemetry/logger.js';

/**
 * A complete, validated-shape Config with nothing configured (no providers, rules, limits or
 * budgets, default allow); each test area overrides the sections it exercises.
 */
export function testConfig(over: Partial<Config> = {}): Config {
  return {
    server: { grpc: '127.0.0.1:0', shutdownGraceSeconds: 1, maxRequestBytes: DEFAULT_MAX_REQUEST_BYTES, workers: 1, heapGrowingPercent: 0 },
    authentication: [],
    upstream: { tenants: {} },
    identityHeaders: {},
    authorization: { default: 'allow', mode: 'enforce', rules: [] },
    rateLimits: [],
    tokenBudgets: [],
    metering: { defaultMaxOutputTokens: 100 },
    store: {},
    logging: { level: 'info' },
    ...over,
  };
}

/** A real pino logger (with the production redaction) writing into `raw` and parsed `lines`. */
export function logSink(): { logger: Logger; lines: Record<string, unknown>[]; raw: string[] } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) {
        if (l.trim() === '') continue;
        raw.push(l);
        lines.push(JSON.parse(l) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { logger: createLogger({ level: 'info', destination: stream }), lines, raw };
}

/** Rate limits and budgets admitted in one store call, as the Check's `admit` step runs them. */
export function admitter(planners: readonly Planner[], store: Store): { run(input: PlanInput): Promise<PlanVerdict> } {
  return { run: (input) => admit(planners, store, input) };
}
