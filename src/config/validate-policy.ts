/** Request policy sections: `authorization`, `rateLimits`, `tokenBudgets`, and their `match` blocks. */
import type {
  AuthorizationConfig,
  AuthorizationRule,
  BudgetPeriod,
  ClaimMatch,
  RateLimitConfig,
  RateUnit,
  RequestMatch,
  TokenBudgetConfig,
} from './schema.js';
import {
  checkUnique,
  readDecimal,
  readEnum,
  readInt,
  readList,
  readMap,
  readString,
  readStrings,
  report,
  required,
  setOwn,
} from './validate-core.js';
import type { Cursor } from './validate-core.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'];
const MODES = ['enforce', 'shadow'] as const;
const ACTIONS = ['allow', 'deny'] as const;
const UNITS: readonly RateUnit[] = ['second', 'minute', 'hour', 'day'];
const PERIODS: readonly BudgetPeriod[] = ['minute', 'hour', 'day', 'week', 'month'];
/** Each slot is one entry in the store; a limit past this is a typo, not a concurrency. */
const MAX_CONCURRENT = 100_000;

/** Absent `match` matches every request (useful for a final catch-all rule). */
export function readMatch(cur: Cursor | undefined): RequestMatch {
  if (cur === undefined) return { claims: {} };
  const f = readMap(cur, ['path', 'methods', 'models', 'claims'], true);
  if (f === undefined) return { claims: {} };
  const path = readPathPattern(f.get('path'));
  const methods = readMethods(f.get('methods'));
  const models = readStrings(f.get('models'));
  return {
    ...(path !== undefined ? { path } : {}),
    ...(methods !== undefined ? { methods } : {}),
    ...(models !== undefined ? { models } : {}),
    claims: readClaimMatch(f.get('claims')),
  };
}

function readPathPattern(cur: Cursor | undefined): string | undefined {
  const s = readString(cur);
  if (s === undefined || cur === undefined) return undefined;
  if (!s.startsWith('/')) {
    report(cur, `must start with "/", got ${JSON.stringify(s)}`);
    return undefined;
  }
  if (s.slice(0, -1).includes('*')) {
    report(cur, 'may contain `*` only at the end (prefix match)');
    return undefined;
  }
  if (/[?#\s]/.test(s)) {
    report(cur, 'must be a bare path without query string, fragment or spaces');
    return undefined;
  }
  return s;
}

function readMethods(cur: Cursor | undefined): string[] | undefined {
  const list = readStrings(cur);
  if (list === undefined || cur === undefined) return undefined;
  const out: string[] = [];
  for (const m of list) {
    const upper = m.toUpperCase();
    if (!METHODS.includes(upper)) report(cur, `unknown HTTP method ${JSON.stringify(m)}`);
    else if (!out.includes(upper)) out.push(upper);
  }
  return out;
}

function readClaimMatch(cur: Cursor | undefined): ClaimMatch {
  if (cur === undefined) return {};
  const f = readMap(cur, undefined, true);
  if (f === undefined) return {};
  const out: Record<string, readonly string[]> = {};
  for (const [key, value] of f) {
    const globs = readStrings(value);
    if (globs !== undefined) setOwn(out, key, globs);
  }
  return out;
}

export function readAuthorization(cur: Cursor | undefined): AuthorizationConfig {
  const fallback: AuthorizationConfig = { default: 'allow', mode: 'enforce', rules: [] };
  if (cur === undefined) return fallback;
  const f = readMap(cur, ['default', 'mode', 'rules'], true);
  if (f === undefined) return fallback;
  const mode = readEnum(f.get('mode'), MODES) ?? 'enforce';
  const rulesCur = f.get('rules');
  const items = rulesCur === undefined ? [] : (readList(rulesCur, true) ?? []);
  const rules: { rule: AuthorizationRule; nameCur: Cursor | undefined }[] = [];
  for (const item of items) {
    const r = readMap(item, ['name', 'match', 'action', 'mode']);
    if (r === undefined) continue;
    const nameCur = required(item, r, 'name');
    const name = readString(nameCur);
    rules.push({
      nameCur: name !== undefined ? nameCur : undefined,
      rule: {
        name: name ?? '',
        match: readMatch(r.get('match')),
        action: readEnum(required(item, r, 'action'), ACTIONS) ?? 'deny',
        // A rule's own mode; `authorization.mode: shadow` is applied to the whole decision in
        // policy/rules.ts, so rules must not inherit it (allow rules would stop deciding).
        mode: readEnum(r.get('mode'), MODES) ?? 'enforce',
      },
    });
  }
  checkUnique(
    rules.map((r) => ({ value: r.nameCur && r.rule.name, cur: r.nameCur ?? cur })),
    'rule name',
  );
  return {
    default: readEnum(f.get('default'), ACTIONS) ?? 'allow',
    mode,
    rules: rules.map((r) => r.rule),
  };
}

export function readRateLimits(cur: Cursor | undefined): RateLimitConfig[] {
  if (cur === undefined) return [];
  const items = readList(cur, true) ?? [];
  const out: { cfg: RateLimitConfig; nameCur: Cursor | undefined }[] = [];
  for (const item of items) {
    const f = readMap(item, ['name', 'match', 'requestsPerUnit', 'unit', 'maxConcurrent', 'key']);
    if (f === undefined) continue;
    const nameCur = required(item, f, 'name');
    const name = readString(nameCur);
    // A window (`requestsPerUnit` per `unit`), a concurrency limit, or both: never neither.
    const windowed = f.has('requestsPerUnit') || f.has('unit');
    if (!windowed && !f.has('maxConcurrent')) {
      report(item, 'needs `requestsPerUnit` with `unit` (requests per window), `maxConcurrent` (requests in flight) or both');
    }
    const requestsPerUnit = windowed
      ? readInt(required(item, f, 'requestsPerUnit'), 1, Number.MAX_SAFE_INTEGER) ?? 1
      : undefined;
    const unit = windowed ? readEnum(required(item, f, 'unit'), UNITS) ?? 'second' : undefined;
    const maxConcurrent = readInt(f.get('maxConcurrent'), 1, MAX_CONCURRENT);
    out.push({
      nameCur: name !== undefined ? nameCur : undefined,
      cfg: {
        name: name ?? '',
        match: readMatch(f.get('match')),
        ...(requestsPerUnit !== undefined && unit !== undefined ? { requestsPerUnit, unit } : {}),
        ...(maxConcurrent !== undefined ? { maxConcurrent } : {}),
        key: readString(f.get('key')) ?? 'user',
      },
    });
  }
  checkUnique(
    out.map((r) => ({ value: r.nameCur && r.cfg.name, cur: r.nameCur ?? cur })),
    'rate limit name',
  );
  return out.map((r) => r.cfg);
}

const SUBJECTS = ['tenant', 'group', 'user'] as const;

export function readTokenBudgets(cur: Cursor | undefined): TokenBudgetConfig[] {
  if (cur === undefined) return [];
  const items = readList(cur, true) ?? [];
  const out: TokenBudgetConfig[] = [];
  const subjects: { value: string | undefined; cur: Cursor }[] = [];
  for (const item of items) {
    const f = readMap(item, [...SUBJECTS, 'maxTokens', 'maxCost', 'period', 'timeZone']);
    if (f === undefined) continue;
    const present = SUBJECTS.filter((s) => f.has(s));
    if (present.length !== 1) {
      const what = present.length === 0 ? 'none is set' : `found ${present.join(' and ')}`;
      report(item, `needs exactly one of \`tenant\`, \`group\` or \`user\` (${what})`);
    }
    const kind = present[0];
    const subjectCur = kind !== undefined ? f.get(kind) : undefined;
    const subject = readString(subjectCur);
    if (kind !== undefined && subjectCur !== undefined && present.length === 1) {
      // One budget per subject, and besides it one tokens-per-minute limit.
      const perMinute = readString(f.get('period')) === 'minute' ? ' per minute' : '';
      subjects.push({
        value: subject === undefined ? undefined : `${kind}\u0000${subject}\u0000${perMinute}`,
        cur: subjectCur,
      });
    }
    if (!f.has('maxTokens') && !f.has('maxCost')) {
      report(item, 'needs `maxTokens` (tokens), `maxCost` (USD) or both');
    }
    const maxTokens = readInt(f.get('maxTokens'), 1, Number.MAX_SAFE_INTEGER);
    const maxCostMicros = readMaxCost(f.get('maxCost'));
    out.push({
      ...(kind !== undefined ? { [kind]: subject ?? '' } : {}),
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      ...(maxCostMicros !== undefined ? { maxCostMicros } : {}),
      period: readEnum(required(item, f, 'period'), PERIODS) ?? 'month',
      timeZone: readTimeZone(f.get('timeZone')) ?? 'UTC',
    });
  }
  checkUnique(subjects, 'budget for', (v) => {
    const [kind, subject, perMinute] = v.split('\u0000');
    return `${kind} ${JSON.stringify(subject)}${perMinute}`;
  });
  return out;
}

/** USD per period, at most six decimals, stored as whole micro-dollars; at least $0.000001. */
function readMaxCost(cur: Cursor | undefined): number | undefined {
  const micros = readDecimal(cur, 6, Number.MAX_SAFE_INTEGER);
  if (micros === 0 && cur !== undefined) {
    report(cur, 'must be more than 0');
    return undefined;
  }
  return micros;
}

export function readTimeZone(cur: Cursor | undefined): string | undefined {
  const tz = readString(cur);
  if (tz === undefined || cur === undefined) return undefined;
  try {
    // Canonical spelling, so `utc` and `UTC` name the same budget period boundaries.
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    report(cur, `unknown IANA time zone ${JSON.stringify(tz)} (for example UTC or Europe/Berlin)`);
    return undefined;
  }
}
