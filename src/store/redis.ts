/**
 * Shared counters in Redis: every replica sees the same windows and budgets (DESIGN 1.7).
 *
 * Why custom scripts rather than rate-limiter-flexible's RateLimiterRedis: that limiter
 * consumes one key per call, so a request under three limits would cost three round trips
 * and could consume from the first two before the third refuses. Our scripts check every key
 * of an admission and then consume from all or none, in one EVALSHA.
 *
 * The client is set up to fail fast rather than queue: no offline queue, no retried
 * commands (a resent INCR would count twice), a command timeout of `timeoutMs`. The guarded
 * store decides what a failure means.
 */
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { HIT_WINDOWS, READ_BUDGET, RESERVE, SETTLE } from './redis-scripts.js';
import {
  BUDGET_KEY_GRACE_MS,
  wholeTokens,
  type BudgetItem,
  type BudgetRef,
  type BudgetState,
  type HitResult,
  type ReserveResult,
  type SettleResult,
  type Store,
  type WindowHit,
} from './store.js';

export interface RedisStoreOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. */
  readonly url: string;
  /** Per-command timeout. */
  readonly timeoutMs: number;
  /** Prepended to every key, e.g. `tollgate:`. */
  readonly keyPrefix: string;
  /** Longest pause between reconnection attempts (default 1000 ms). */
  readonly maxReconnectDelayMs?: number;
}

type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;
interface ScriptCommands {
  tollgateHitWindows: ScriptCall;
  tollgateReserve: ScriptCall;
  tollgateSettle: ScriptCall;
  tollgateReadBudget: ScriptCall;
}

/**
 * Connection options from a store URL: scheme, credentials, host, port and db number are
 * checked here so a typo fails at start-up rather than on the first request.
 */
export function redisOptionsFromUrl(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`invalid Redis URL: ${JSON.stringify(redactUrl(url))}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new TypeError(
      `Redis URL must start with redis:// or rediss://, got ${JSON.stringify(u.protocol)}`,
    );
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (host === '') throw new TypeError('Redis URL has no host');
  const options: RedisOptions = { host, port: u.port === '' ? 6379 : Number(u.port) };
  if (u.username !== '') options.username = decodeURIComponent(u.username);
  if (u.password !== '') options.password = decodeURIComponent(u.password);
  const dbPath = u.pathname.replace(/^\/+/, '');
  if (dbPath !== '') {
    if (!/^\d+$/.test(dbPath))
      throw new TypeError(`Redis URL path must be a db number, got ${JSON.stringify(dbPath)}`);
    options.db = Number(dbPath);
  }
  // SNI carries host names only; Node warns when it is given an IP address.
  if (u.protocol === 'rediss:') options.tls = isIP(host) === 0 ? { servername: host } : {};
  return options;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

export class RedisStore implements Store {
  readonly client: Redis;
  private readonly prefix: string;
  private readonly scripts: ScriptCommands;
  /** The last connection error, for diagnostics; the guarded store counts failures itself. */
  lastError: Error | undefined;

  constructor(options: RedisStoreOptions) {
    const maxDelay = options.maxReconnectDelayMs ?? 1000;
    this.prefix = options.keyPrefix;
    this.client = new Redis({
      ...redisOptionsFromUrl(options.url),
      // A handshake (TLS included) may need more than one command's budget.
      connectTimeout: Math.max(1000, options.timeoutMs),
      commandTimeout: options.timeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), maxDelay),
    });
    // Without a listener ioredis prints every reconnection failure as "Unhandled error event".
    this.client.on('error', (err: Error) => {
      this.lastError = err;
    });
    this.client.defineCommand('tollgateHitWindows', { lua: HIT_WINDOWS });
    this.client.defineCommand('tollgateReserve', { lua: RESERVE });
    this.client.defineCommand('tollgateSettle', { lua: SETTLE });
    this.client.defineCommand('tollgateReadBudget', { lua: READ_BUDGET });
    this.scripts = this.client as unknown as ScriptCommands;
  }

  /** Resolves once connected; rejects after `timeoutMs` (the store still keeps reconnecting). */
  ready(timeoutMs: number): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        reject(
          new Error(
            `Redis not ready after ${timeoutMs} ms${this.lastError ? `: ${this.lastError.message}` : ''}`,
          ),
        );
      }, timeoutMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('ready', onReady);
    });
  }

  async hitWindows(hits: readonly WindowHit[], _now: number): Promise<HitResult> {
    if (hits.length === 0) return { allowed: true, results: [] };
    const keys = hits.map((h) => this.prefix + h.key);
    const args = hits.flatMap((h) => [Math.floor(h.limit), Math.max(1, Math.ceil(h.windowMs))]);
    const reply = ints(
      await this.scripts.tollgateHitWindows(keys.length, ...keys, ...args),
      1 + 2 * hits.length,
    );
    const denied = reply[0] ?? 0;
    const results = hits.map((h, i) => ({
      limit: h.limit,
      remaining: Math.max(0, h.limit - (reply[1 + 2 * i] ?? 0)),
      resetMs: reply[2 + 2 * i] ?? h.windowMs,
    }));
    return denied === 0
      ? { allowed: true, results }
      : { allowed: false, results, deniedIndex: denied - 1 };
  }

  async reserve(
    items: readonly BudgetItem[],
    reservationId: string,
    ttlMs: number,
    now: number,
  ): Promise<ReserveResult> {
    if (items.length === 0) return { allowed: true, reserved: [], remaining: [] };
    const args = items.flatMap((it) => [
      Math.floor(it.limit),
      wholeTokens(it.amount),
      it.expiresAtMs + BUDGET_KEY_GRACE_MS,
    ]);
    const keys = this.budgetKeys(items);
    const reply = ints(
      await this.scripts.tollgateReserve(
        keys.length,
        ...keys,
        reservationId,
        Math.ceil(ttlMs),
        Math.floor(now),
        ...args,
      ),
      1 + 2 * items.length,
    );
    const denied = reply[0] ?? 0;
    const reserved = items.map((_, i) => reply[1 + 2 * i] ?? 0);
    const remaining = items.map((_, i) => reply[2 + 2 * i] ?? 0);
    return denied === 0
      ? { allowed: true, reserved, remaining }
      : { allowed: false, reserved, remaining, deniedIndex: denied - 1 };
  }

  async settle(
    items: readonly BudgetRef[],
    reservationId: string,
    actualTokens: number,
    _now: number,
  ): Promise<SettleResult> {
    return { used: await this.runSettle(items, reservationId, wholeTokens(actualTokens)) };
  }

  async release(items: readonly BudgetRef[], reservationId: string, _now: number): Promise<void> {
    await this.runSettle(items, reservationId, 0);
  }

  async readBudget(key: string, now: number): Promise<BudgetState> {
    const keys = this.budgetKeys([{ key }]);
    const [used = 0, reserved = 0] = ints(
      await this.scripts.tollgateReadBudget(2, ...keys, Math.floor(now)),
      2,
    );
    return { used, reserved };
  }

  async close(): Promise<void> {
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through: a dead connection cannot say goodbye
      }
    }
    this.client.disconnect();
  }

  private async runSettle(
    items: readonly BudgetRef[],
    reservationId: string,
    actual: number,
  ): Promise<number[]> {
    if (items.length === 0) return [];
    const keys = this.budgetKeys(items);
    const expiries = items.map((it) => it.expiresAtMs + BUDGET_KEY_GRACE_MS);
    return ints(
      await this.scripts.tollgateSettle(keys.length, ...keys, reservationId, actual, ...expiries),
      items.length,
    );
  }

  private budgetKeys(items: readonly { key: string }[]): string[] {
    return items.flatMap((it) => [this.prefix + it.key, `${this.prefix}${it.key}:exp`]);
  }
}

/** A script reply as `length` integers; anything else means a script and client disagree. */
function ints(reply: unknown, length: number): number[] {
  if (!Array.isArray(reply) || reply.length !== length) {
    throw new Error(`unexpected Redis script reply: ${JSON.stringify(reply)}`);
  }
  return reply.map((v) => {
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isFinite(n))
      throw new Error(`unexpected Redis script reply: ${JSON.stringify(reply)}`);
    return n;
  });
}
