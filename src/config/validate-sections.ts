/** The infrastructure sections: server, upstream, identityHeaders, metering, store, logging, metrics. */
import { isMap, isScalar } from 'yaml';
import { DEFAULT_DAILY_USAGE, DEFAULT_HEAP_GROWING_PERCENT, DEFAULT_MAX_LABEL_VALUES, DEFAULT_MAX_REQUEST_BYTES, FIT_TO_BUDGET } from './schema.js';
import { readTimeZone } from './validate-policy.js';
import type {
  DailyUsageConfig,
  IdentityHeaders,
  LoggingConfig,
  MeteringConfig,
  MetricsConfig,
  SecretRef,
  ServerConfig,
  UpstreamConfig,
} from './schema.js';
import {
  checkUnique,
  describe,
  isNull,
  keyPath,
  readBoolean,
  readEnum,
  readInt,
  readMap,
  readString,
  report,
  required,
  setOwn,
} from './validate-core.js';
import type { Cursor } from './validate-core.js';

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

export function readHostPort(cur: Cursor | undefined): string | undefined {
  const s = readString(cur);
  if (s === undefined || cur === undefined) return undefined;
  const m = HOST_PORT.exec(s);
  if (m === null || Number(m[2]) > 65535) {
    report(cur, `expected host:port (port 0-65535, 0 = any free port), got ${JSON.stringify(s)}`);
    return undefined;
  }
  return s;
}

/** The most `server.workers` may ask for: far past any machine's use, short of a fork bomb. */
export const MAX_WORKERS = 256;

/** `server.workers`: `auto` or 1..MAX_WORKERS; more than one only with a shared store. */
function readWorkers(cur: Cursor | undefined, sharedStore: boolean): number | 'auto' | undefined {
  if (cur === undefined) return undefined;
  const v = isScalar(cur.node) ? cur.node.value : undefined;
  const workers = v === 'auto' ? 'auto' : typeof v === 'number' ? readInt(cur, 1, MAX_WORKERS) : undefined;
  if (workers === undefined) {
    if (typeof v !== 'number') report(cur, `expected \`auto\` or a number of processes (1-${MAX_WORKERS}), got ${describe(cur)}`);
    return undefined;
  }
  if (workers !== 1 && !sharedStore) {
    report(
      cur,
      `${workers === 'auto' ? '`auto`' : workers} workers need \`store.redis\`: the memory store counts in one process, so limits and budgets would be multiplied by the workers (use 1 worker, or configure store.redis)`,
    );
    return undefined;
  }
  return workers;
}

/** `sharedStore`: whether `store.redis` is configured (more than one worker needs it). */
export function readServer(cur: Cursor | undefined, sharedStore = false): ServerConfig {
  const defaults: ServerConfig = {
    grpc: '0.0.0.0:9001',
    metrics: '0.0.0.0:9464',
    shutdownGraceSeconds: 10,
    maxRequestBytes: DEFAULT_MAX_REQUEST_BYTES,
    workers: 1,
    heapGrowingPercent: DEFAULT_HEAP_GROWING_PERCENT,
  };
  if (cur === undefined) return defaults;
  const f = readMap(cur, ['grpc', 'metrics', 'metricsToken', 'shutdownGraceSeconds', 'maxRequestBytes', 'workers', 'heapGrowingPercent', 'whoami'], true);
  if (f === undefined) return defaults;
  const metricsCur = f.get('metrics');
  let metrics: string | undefined = defaults.metrics;
  if (metricsCur !== undefined) {
    // `metrics: false` (or an empty value) turns the endpoint off; `true` would be ambiguous.
    const disabled =
      isNull(metricsCur) || (isScalar(metricsCur.node) && metricsCur.node.value === false);
    metrics = disabled ? undefined : readHostPort(metricsCur);
  }
  const tokenCur = f.get('metricsToken');
  const metricsToken = tokenCur === undefined ? undefined : readSecretRef(tokenCur);
  return {
    grpc: readHostPort(f.get('grpc')) ?? defaults.grpc,
    ...(metrics !== undefined ? { metrics } : {}),
    ...(metricsToken !== undefined ? { metricsToken } : {}),
    shutdownGraceSeconds:
      readInt(f.get('shutdownGraceSeconds'), 0, 3600) ?? defaults.shutdownGraceSeconds,
    // 1 KiB .. 256 MiB: gRPC messages past that are refused by grpc-js (and Envoy's buffer grows with it).
    maxRequestBytes: readInt(f.get('maxRequestBytes'), 1024, 256 * 1024 * 1024) ?? defaults.maxRequestBytes,
    workers: readWorkers(f.get('workers'), sharedStore) ?? defaults.workers,
    // 0 = V8's adaptive factor; past 400 % the setting no longer bounds anything V8 would not.
    heapGrowingPercent: readInt(f.get('heapGrowingPercent'), 0, 400) ?? defaults.heapGrowingPercent,
    // Only `false` is kept: absent and `true` both mean on.
    ...(readBoolean(f.get('whoami')) === false ? { whoami: false } : {}),
  };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function readSecretRef(cur: Cursor): SecretRef | undefined {
  const f = readMap(cur, ['env', 'file']);
  if (f === undefined) return undefined;
  if (f.size !== 1) {
    // An empty result after an unknown key (`envv:`) was already reported with a suggestion.
    const unknownOnly = f.size === 0 && isMap(cur.node) && cur.node.items.length > 0;
    if (!unknownOnly) report(cur, 'needs exactly one of `env` (variable name) or `file` (path)');
    return undefined;
  }
  const envCur = f.get('env');
  if (envCur !== undefined) {
    const env = readString(envCur);
    if (env === undefined) return undefined;
    if (!ENV_NAME.test(env)) {
      report(envCur, `not a valid environment variable name: ${JSON.stringify(env)}`);
      return undefined;
    }
    return { env };
  }
  const file = readString(f.get('file'));
  return file === undefined ? undefined : { file };
}

export function readUpstream(cur: Cursor | undefined): UpstreamConfig {
  if (cur === undefined) return { tenants: {} };
  const f = readMap(cur, ['apiKey', 'tenants'], true);
  if (f === undefined) return { tenants: {} };
  const apiKeyCur = f.get('apiKey');
  const apiKey = apiKeyCur !== undefined ? readSecretRef(apiKeyCur) : undefined;
  const tenants: Record<string, UpstreamConfig['tenants'][string]> = {};
  const tenantsCur = f.get('tenants');
  const entries = tenantsCur !== undefined ? readMap(tenantsCur, undefined, true) : undefined;
  for (const [name, tcur] of entries ?? []) {
    const t = readMap(tcur, ['apiKey', 'project', 'organization']);
    if (t === undefined) continue;
    const keyCur = required(tcur, t, 'apiKey');
    const ref = keyCur !== undefined ? readSecretRef(keyCur) : undefined;
    const project = readString(t.get('project'));
    const organization = readString(t.get('organization'));
    if (ref === undefined) continue;
    setOwn(tenants, name, {
      apiKey: ref,
      ...(project !== undefined ? { project } : {}),
      ...(organization !== undefined ? { organization } : {}),
    });
  }
  return { ...(apiKey !== undefined ? { apiKey } : {}), tenants };
}

// RFC 9110 token characters (lower-cased).
const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
// Headers Envoy or the upstream connection own: overwriting them would break routing, framing
// or the upstream credential that Tollgate itself sets.
const RESERVED_HEADERS = new Set([
  'authorization',
  'host',
  'content-length',
  'content-type',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'upgrade',
  'proxy-authorization',
  'proxy-connection',
]);

export function readIdentityHeaders(cur: Cursor | undefined): IdentityHeaders {
  if (cur === undefined) return {};
  const f = readMap(cur, undefined, true);
  if (f === undefined) return {};
  const out: Record<string, string> = {};
  const names: { value: string | undefined; cur: Cursor }[] = [];
  for (const [raw, vcur] of f) {
    const name = raw.toLowerCase();
    const claim = readString(vcur);
    const where = { ctx: vcur.ctx, path: keyPath(cur.path, raw), line: vcur.line };
    if (name.startsWith(':')) report(where, 'HTTP/2 pseudo-headers cannot be identity headers');
    else if (!HEADER_TOKEN.test(name))
      report(where, `not a valid HTTP header name: ${JSON.stringify(raw)}`);
    else if (RESERVED_HEADERS.has(name))
      report(where, `\`${name}\` is reserved and cannot carry identity`);
    else if (name.startsWith('x-envoy-'))
      report(where, 'x-envoy-* headers belong to Envoy and cannot carry identity');
    else {
      names.push({ value: name, cur: vcur });
      if (claim !== undefined) setOwn(out, name, claim);
    }
  }
  // `X-User` and `x-user` are the same header once lower-cased.
  checkUnique(names, 'header');
  return out;
}

export function readMetering(cur: Cursor | undefined): MeteringConfig {
  const defaults: MeteringConfig = { defaultMaxOutputTokens: 4096 };
  if (cur === undefined) return defaults;
  const f = readMap(cur, ['defaultMaxOutputTokens', 'reservationTtlSeconds', 'fitToBudget', 'dailyUsage'], true);
  if (f === undefined) return defaults;
  // Unset stays unset, so the budget stage's documented defaults apply.
  const ttl = readInt(f.get('reservationTtlSeconds'), 10, 7 * 86_400);
  const fit = readEnum(f.get('fitToBudget'), FIT_TO_BUDGET);
  const daily = readDailyUsage(f.get('dailyUsage'));
  return {
    defaultMaxOutputTokens:
      readInt(f.get('defaultMaxOutputTokens'), 1, 10_000_000) ?? defaults.defaultMaxOutputTokens,
    ...(ttl !== undefined ? { reservationTtlSeconds: ttl } : {}),
    ...(fit !== undefined ? { fitToBudget: fit } : {}),
    ...(daily !== undefined ? { dailyUsage: daily } : {}),
  };
}

/** `metering.dailyUsage`: `keepDays` 0..400 (0 = off), `timeZone` an IANA zone. */
function readDailyUsage(cur: Cursor | undefined): DailyUsageConfig | undefined {
  if (cur === undefined) return undefined;
  const f = readMap(cur, ['keepDays', 'timeZone'], true);
  if (f === undefined) return undefined;
  return {
    keepDays: readInt(f.get('keepDays'), 0, 400) ?? DEFAULT_DAILY_USAGE.keepDays,
    timeZone: readTimeZone(f.get('timeZone')) ?? DEFAULT_DAILY_USAGE.timeZone,
  };
}

const LEVELS: readonly LoggingConfig['level'][] = [
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
];

export function readLogging(cur: Cursor | undefined): LoggingConfig {
  if (cur === undefined) return { level: 'info' };
  const f = readMap(cur, ['level', 'sampleAllowed'], true);
  // Unset stays unset (= 1, every allowed decision logged), like metering's optional keys.
  const sample = readFraction(f?.get('sampleAllowed'));
  return {
    level: readEnum(f?.get('level'), LEVELS) ?? 'info',
    ...(sample !== undefined ? { sampleAllowed: sample } : {}),
  };
}

/** A number from 0 to 1 inclusive (`0.25`, `1`, `0`). */
function readFraction(cur: Cursor | undefined): number | undefined {
  if (cur === undefined) return undefined;
  const v = isScalar(cur.node) ? cur.node.value : undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    report(cur, `expected a number from 0 to 1, got ${describe(cur)}`);
    return undefined;
  }
  return v;
}


/** `metrics:` label options. Absent section = absent (the Metrics defaults apply). */
export function readMetrics(cur: Cursor | undefined): MetricsConfig | undefined {
  if (cur === undefined) return undefined;
  const f = readMap(cur, ['perUserLabels', 'maxLabelValues'], true);
  if (f === undefined) return undefined;
  return {
    perUserLabels: readBoolean(f.get('perUserLabels')) ?? false,
    maxLabelValues: readInt(f.get('maxLabelValues'), 1, 100_000) ?? DEFAULT_MAX_LABEL_VALUES,
  };
}
