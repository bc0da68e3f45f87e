/**
 * Shared counters in Redis: every replica sees the same windows and budgets (DESIGN 1.7).
 *
 * Why custom scripts rather than rate-limiter-flexible's RateLimiterRedis: that limiter
 * consumes one key per call, so a request under three limits and two budgets would cost five
 * round trips and could consume from the first ones before a later one refuses. Our admission
 * script checks every window and budget of a request and then writes to all or none, in one
 * EVALSHA: one round trip however many limits and budgets apply.
 *
 * The client is set up to fail fast rather than queue: no offline queue, no retried
 * commands (a resent INCR would count twice). The deadline of a call (`timeoutMs`) and what a
 * failure means belong to the guarded store (guarded.ts) that always wraps this one: a
 * second, client-side command timer would fire in the same timer phase as the guard's and
 * fail a call whose reply is already waiting in the socket.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ADMIT, READ_BUDGET, SETTLE } from './redis-scripts.js';
import { wholeTokens, type AdmitRequest, type AdmitResult, type BudgetState, type SettleResult, type Store, type WindowCount } from './store.js';
import type { RedisStoreConfig } from '../config/schema.js';
import { type BudgetRef } from '../domain/reservation.js';

/**
 * `store.redis` with its secrets read (config/schema.ts says what each key means):
 * `waitForReplicas` with Sentinel keeps a failover from losing counts — a write the old primary
 * took but no replica got is a failure, answered by `onUnavailable`; `timeoutMs` is the guard's
 * deadline, here only the connection handshake's floor.
 */
export type RedisStoreOptions = Omit<RedisStoreConfig, 'url' | 'password' | 'onUnavailable' | 'tls'> & {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. */
  readonly url?: string;
  readonly password?: string;
  /** TLS to the sentinels and the primary, or to every Cluster node (a URL says it by its scheme). */
  readonly tls?: boolean;
  /** PEM CA certificate(s) to verify the server with, instead of Node's CA store. */
  readonly ca?: string;
  /** Longest pause between reconnection attempts (default 1000 ms). */
  readonly maxReconnectDelayMs?: number;
};

type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;
interface ScriptCommands {
  tollgateAdmit: ScriptCall;
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

/** `host:port` (IPv6 in brackets) → ioredis's node shape. */
function node(hostPort: string): { host: string; port: number } {
  const at = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(at + 1)) };
}

/**
 * The key prefix as a Cluster needs it: every key of one admission must hash to one slot for
 * its script to run, and keys of many tenants, groups and users meet in one admission, so they
 * all carry one hash tag (`{tollgate}:` for `tollgate:`). Cluster then gives failover, not
 * sharding of Tollgate's keys (docs/scaling.md).
 */
export function clusterPrefix(prefix: string): string {
  if (/\{[^}]+\}/.test(prefix)) return prefix;
  const tag = prefix.replace(/:+$/, '') || 'tollgate';
  return `{${tag}}:`;
}

export class RedisStore implements Store {
  readonly client: Redis | Cluster;
  private readonly prefix: string;
  private readonly scripts: ScriptCommands;
  private readonly waitForReplicas: number;
  private readonly waitTimeoutMs: number;
  /** The last connection error, for diagnostics; the guarded store counts failures itself. */
  lastError: Error | undefined;

  /** Every key's prefix (with a Cluster, the deployment's hash tag). */
  get keyPrefix(): string {
    return this.prefix;
  }

  constructor(options: RedisStoreOptions) {
    const maxDelay = options.maxReconnectDelayMs ?? 1000;
    // Verification is never turned off; a CA only replaces Node's store as what is trusted.
    const trust = options.ca !== undefined ? { ca: options.ca } : {};
    const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 10), maxDelay);
    const common: RedisOptions = {
      // A handshake (TLS included) may need more than one command's budget.
      connectTimeout: Math.max(1000, options.timeoutMs),
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      retryStrategy,
      ...(options.password !== undefined ? { password: options.password } : {}),
      ...(options.tls === true ? { tls: { ...trust } } : {}),
    };
    this.prefix = options.cluster !== undefined ? clusterPrefix(options.keyPrefix) : options.keyPrefix;
    this.waitForReplicas = options.waitForReplicas ?? 0;
    // Inside the guard's deadline, so a lagging replica is a clean failure, not a late reply.
    this.waitTimeoutMs = Math.max(1, Math.floor(options.timeoutMs / 2));
    if (options.cluster !== undefined) {
      this.client = new Cluster(options.cluster.map(node), {
        redisOptions: common,
        enableOfflineQueue: false,
        clusterRetryStrategy: retryStrategy,
      });
    } else if (options.sentinels !== undefined) {
      if (options.name === undefined) throw new TypeError('Redis Sentinel needs the primary\'s name');
      this.client = new Redis({
        ...common,
        sentinels: options.sentinels.map(node),
        name: options.name,
        // ioredis ignores `tls` with sentinels unless told: TLS to the sentinels and the primary.
        ...(options.tls === true ? { enableTLSForSentinelMode: true, sentinelTLS: { ...trust } } : {}),
        sentinelRetryStrategy: retryStrategy,
        // Follow a failover at once: the sentinels announce the new primary.
        failoverDetector: true,
      });
    } else {
      if (options.url === undefined) throw new TypeError('Redis needs a url, sentinels or cluster');
      const fromUrl = redisOptionsFromUrl(options.url);
      if (options.ca !== undefined) {
        if (fromUrl.tls === undefined) throw new TypeError('a CA needs a rediss:// URL');
        fromUrl.tls = { ...fromUrl.tls, ...trust };
      }
      this.client = new Redis({ ...fromUrl, ...common });
    }
    // Without a listener ioredis prints every reconnection failure as "Unhandled error event".
    this.client.on('error', (err: Error) => {
      this.lastError = err;
      quietAfterFirstError((this.client as { stream?: unknown }).stream);
    });
    this.client.defineCommand('tollgateAdmit', { lua: ADMIT });
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

  async admit(request: AdmitRequest, now: number): Promise<AdmitResult> {
    const { windows: hits, budgets: items } = request;
    if (hits.length === 0 && items.length === 0)
      return { allowed: true, windows: [], reserved: [], remaining: [] };
    const keys = [...hits.map((h) => this.prefix + h.key), ...this.budgetKeys(items)];
    const args = [
      hits.length,
      request.reservationId,
      Math.ceil(request.ttlMs),
      Math.floor(now),
      ...hits.flatMap((h) => [Math.floor(h.limit), Math.max(1, Math.ceil(h.windowMs))]),
      ...items.flatMap((it) => [
        Math.floor(it.limit),
        wholeTokens(it.amount),
        wholeTokens(it.minAmount),
        it.expiresAtMs,
      ]),
    ];
    const reply = ints(
      await this.write('tollgateAdmit', [keys.length, ...keys, ...args]),
      2 + 2 * hits.length + 2 * items.length,
    );
    const [kind = 0, index = 0] = reply;
    const windows = hits.map((h, i) => ({
      limit: h.limit,
      remaining: Math.max(0, h.limit - (reply[2 + 2 * i] ?? 0)),
      resetMs: reply[3 + 2 * i] ?? h.windowMs,
    }));
    const b0 = 2 + 2 * hits.length;
    const reserved = items.map((_, j) => reply[b0 + 2 * j] ?? 0);
    const remaining = items.map((_, j) => reply[b0 + 1 + 2 * j] ?? 0);
    if (kind === 0) return { allowed: true, windows, reserved, remaining };
    const refusedBy = {
      kind: kind === 1 ? ('window' as const) : ('budget' as const),
      index: index - 1,
    };
    return { allowed: false, windows, reserved, remaining, refusedBy };
  }

  async settle(
    items: readonly BudgetRef[],
    reservationId: string,
    amounts: readonly number[],
    _now: number,
  ): Promise<SettleResult> {
    return { used: await this.runSettle(items, reservationId, amounts) };
  }

  async release(items: readonly BudgetRef[], reservationId: string, _now: number): Promise<void> {
    await this.runSettle(items, reservationId, []);
  }

  async readBudget(key: string, now: number): Promise<BudgetState> {
    const keys = this.budgetKeys([{ key }]);
    const [used = 0, reserved = 0] = ints(
      await this.scripts.tollgateReadBudget(2, ...keys, Math.floor(now)),
      2,
    );
    return { used, reserved };
  }

  /** A window's count and time left, read only (GET and PTTL of its key). */
  async readWindow(key: string, _now: number): Promise<WindowCount> {
    const k = this.prefix + key;
    const [count, pttl] = await Promise.all([this.client.get(k), this.client.pttl(k)]);
    const n = count === null ? 0 : Number(count);
    return pttl > 0 && n > 0 ? { count: n, resetMs: pttl } : { count: n };
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
    amounts: readonly number[],
  ): Promise<number[]> {
    if (items.length === 0) return [];
    const keys = this.budgetKeys(items);
    const pairs = items.flatMap((it, i) => [wholeTokens(amounts[i] ?? 0), it.expiresAtMs]);
    return ints(
      await this.write('tollgateSettle', [keys.length, ...keys, reservationId, ...pairs]),
      items.length,
    );
  }

  /**
   * Runs a writing script; with `waitForReplicas`, WAIT follows it in the same round trip and
   * a write fewer replicas acknowledged fails (the guard's policy then answers).
   */
  private async write(script: 'tollgateAdmit' | 'tollgateSettle', args: (string | number)[]): Promise<unknown> {
    if (this.waitForReplicas === 0) return this.scripts[script](...args);
    const pipeline = this.client.pipeline() as unknown as {
      [K in typeof script]: (...a: (string | number)[]) => unknown;
    } & { wait(n: number, ms: number): unknown; exec(): Promise<[Error | null, unknown][] | null> };
    pipeline[script](...args);
    pipeline.wait(this.waitForReplicas, this.waitTimeoutMs);
    const [reply, acked] = (await pipeline.exec()) ?? [];
    if (reply?.[0]) throw reply[0];
    if (acked?.[0]) throw acked[0];
    if (Number(acked?.[1] ?? 0) < this.waitForReplicas) {
      throw new Error(`Redis write acknowledged by ${String(acked?.[1])} of ${this.waitForReplicas} replicas`);
    }
    return reply?.[1];
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

const quieted = new WeakSet<object>();

/**
 * ioredis listens for a socket's first `error` only (`once`). A TLS socket can report a second
 * one after it (the server's alert arriving after our refusal of its certificate): with no
 * listener left, that error would be thrown out of the process. The first error has already
 * been handled; later ones on the same dead socket are dropped.
 */
function quietAfterFirstError(stream: unknown): void {
  if (!(stream instanceof EventEmitter) || quieted.has(stream)) return;
  quieted.add(stream);
  stream.on('error', () => undefined);
}
