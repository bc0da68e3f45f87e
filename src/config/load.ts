/**
 * YAML text → frozen, validated Config, or one ConfigError listing every problem with its path
 * and line. `serve`, `check-config` and reload all come through here, so they agree exactly.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from './problems.js';
import type { ConfigProblem } from './problems.js';
import type { Config } from './schema.js';
import { readAuthentication } from './validate-auth.js';
import { cursor, describe, isNull, lineOf, readMap, report } from './validate-core.js';
import type { Ctx } from './validate-core.js';
import { readAuthorization, readRateLimits, readTokenBudgets } from './validate-policy.js';
import {
  readIdentityHeaders,
  readLogging,
  readMetering,
  readMetrics,
  readServer,
  readUpstream,
} from './validate-sections.js';
import { readStore } from './validate-store.js';
import { readPricing } from './validate-pricing.js';
import { readPortal } from './validate-portal.js';

const TOP_LEVEL_KEYS = [
  'server',
  'authentication',
  'upstream',
  'identityHeaders',
  'authorization',
  'rateLimits',
  'tokenBudgets',
  'metering',
  'pricing',
  'store',
  'logging',
  'metrics',
  'portal',
] as const;

/**
 * Parses and validates configuration text. Throws only ConfigError (never anything else, whatever
 * the input), listing every problem found; `file` is used in its messages.
 */
export function parseConfig(text: string, file?: string): Config {
  let result: { problems: ConfigProblem[]; config: Config | undefined };
  try {
    result = validate(text);
  } catch (err) {
    // A bug in a validator must still surface as a refused configuration, never as a crash of
    // the reload loop or a raw TypeError in `check-config`.
    const message = err instanceof Error ? err.message : String(err);
    result = {
      problems: [{ path: '', message: `internal error while validating: ${message}` }],
      config: undefined,
    };
  }
  if (result.problems.length > 0 || result.config === undefined) {
    const sorted = result.problems
      .map((p, i) => ({ p, i }))
      .sort((a, b) => (a.p.line ?? 0) - (b.p.line ?? 0) || a.i - b.i)
      .map(({ p }) => p);
    throw new ConfigError(sorted, file);
  }
  return deepFreeze(result.config);
}

/** Reads and validates a configuration file; an unreadable file is a ConfigError too. */
export async function loadConfigFile(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      [{ path: '', message: `cannot read the configuration file: ${errorText(err)}` }],
      path,
    );
  }
  return parseConfig(text, path);
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code)
      ? `${code}: ${err.message}`
      : err.message;
  }
  return String(err);
}

function validate(text: string): { problems: ConfigProblem[]; config: Config | undefined } {
  if (typeof text !== 'string') {
    return {
      problems: [{ path: '', message: 'configuration text must be a string' }],
      config: undefined,
    };
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const ctx: Ctx = { problems: [], lc, doc };

  // Syntax problems first and alone: a half-parsed tree would only add misleading noise.
  for (const e of [...doc.errors, ...doc.warnings]) {
    const line = lc.linePos(e.pos[0]).line;
    ctx.problems.push({
      path: '',
      message: `YAML ${e.name === 'YAMLWarning' ? 'warning' : 'syntax error'}: ${e.message}`,
      line,
    });
  }
  if (ctx.problems.length > 0) return { problems: ctx.problems, config: undefined };

  const root = cursor(ctx, doc.contents, '', lineOf(ctx, doc.contents));
  if (isNull(root)) {
    report(root, 'the configuration is empty: expected a mapping with at least `authentication`');
    return { problems: ctx.problems, config: undefined };
  }
  const f = readMap(root, TOP_LEVEL_KEYS);
  if (f === undefined) {
    ctx.problems.length = 0;
    report(root, `expected a mapping at the top level, got ${describe(root)}`);
    return { problems: ctx.problems, config: undefined };
  }
  // Read first: whether more than one worker is allowed depends on it.
  const store = readStore(f.get('store'));
  const config: Config = {
    server: readServer(f.get('server'), store.redis !== undefined),
    authentication: readAuthentication(f.get('authentication'), root),
    upstream: readUpstream(f.get('upstream')),
    identityHeaders: readIdentityHeaders(f.get('identityHeaders')),
    authorization: readAuthorization(f.get('authorization')),
    rateLimits: readRateLimits(f.get('rateLimits')),
    tokenBudgets: readTokenBudgets(f.get('tokenBudgets')),
    metering: readMetering(f.get('metering')),
    store,
    logging: readLogging(f.get('logging')),
  };
  const pricing = readPricing(f.get('pricing'));
  if (pricing !== undefined) Object.assign(config, { pricing });
  const metrics = readMetrics(f.get('metrics'));
  if (metrics !== undefined) Object.assign(config, { metrics });
  const portal = readPortal(f.get('portal'), config.authentication, config.server.workers);
  if (portal !== undefined) Object.assign(config, { portal });
  return { problems: ctx.problems, config };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
