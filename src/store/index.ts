/**
 * Builds the store a config asks for: in-memory counters by default (one replica), or Redis
 * behind the guard (timeout, circuit breaker, `onUnavailable` policy) with `store.redis`.
 *
 * The Redis client (ioredis, about 10 MiB resident once loaded) is imported only when
 * `store.redis` is configured: a sidecar on the memory store never loads it.
 */
import type { StoreConfig } from '../config/schema.js';
import { ConfigError } from '../config/problems.js';
import { readCaFileSync, resolveSecretSync } from '../config/secrets.js';
import { GuardedStore, type GuardedStoreOptions } from './guarded.js';
import { MemoryStore } from './memory.js';
import type { RedisStore } from './redis.js';
import type { CounterSource, Store } from './store.js';
import { MemoryUsageBook, type UsageBook } from './usage-book.js';

export type { Store } from './store.js';
export { GuardedStore, type BreakerState } from './guarded.js';
export { MemoryStore } from './memory.js';
export type { RedisStore } from './redis.js';
export type { UsageBook, UsageRow, UsageTally } from './usage-book.js';

export interface CreatedStore {
  readonly store: Store;
  /**
   * The counters themselves (the memory or Redis store, without the guard's fallbacks), for
   * `GET /counters`: a read that fails says so rather than show the local or an empty counter.
   */
  readonly counters: CounterSource;
  /** Present with `store.redis`: breaker state and counters for metrics. */
  readonly guarded?: GuardedStore;
  /** Present with `store.redis`: the client, e.g. to await `ready()` at start-up. */
  readonly redis?: RedisStore;
  /** Per-day usage tallies (usage-book.ts), beside the counters in the same store. */
  readonly usage: UsageBook;
}

export async function createStore(
  config: StoreConfig,
  options: Pick<
    GuardedStoreOptions,
    'onStateChange' | 'onError' | 'onFallback' | 'failureThreshold' | 'probeIntervalMs'
  > = {},
): Promise<CreatedStore> {
  const r = config.redis;
  if (r === undefined) {
    const memory = new MemoryStore();
    return { store: memory, counters: memory, usage: new MemoryUsageBook() };
  }
  const [{ RedisStore }, { RedisUsageBook }] = await Promise.all([import('./redis.js'), import('./redis-usage.js')]);
  // Secrets are read now, at start-up (and on a reload that changes `store:`).
  const url = r.url === undefined ? undefined : typeof r.url === 'string' ? r.url : resolveSecretSync(r.url, 'store.redis.url').trim();
  const ca = typeof r.tls === 'object' ? readCaFileSync(r.tls.ca.file, 'store.redis.tls.ca') : undefined;
  // A URL read from {env} / {file} is only known now: a CA needs it to be rediss://.
  if (ca !== undefined && url !== undefined && !url.startsWith('rediss://'))
    throw new ConfigError([{ path: 'store.redis.tls', message: 'a CA needs a TLS connection: write the URL as `rediss://`' }]);
  const redis = new RedisStore({
    ...(url !== undefined ? { url } : {}),
    ...(r.sentinels !== undefined ? { sentinels: r.sentinels } : {}),
    ...(r.name !== undefined ? { name: r.name } : {}),
    ...(r.cluster !== undefined ? { cluster: r.cluster } : {}),
    ...(r.password !== undefined ? { password: resolveSecretSync(r.password, 'store.redis.password').trim() } : {}),
    // With a URL the scheme says TLS; with sentinels or nodes, `tls: true` or a CA does.
    ...(url === undefined && r.tls !== undefined && r.tls !== false ? { tls: true } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(r.waitForReplicas !== undefined ? { waitForReplicas: r.waitForReplicas } : {}),
    timeoutMs: r.timeoutMs,
    keyPrefix: r.keyPrefix,
  });
  const guarded = new GuardedStore(redis, {
    ...options,
    timeoutMs: r.timeoutMs,
    onUnavailable: r.onUnavailable,
  });
  const usage = new RedisUsageBook(redis.client, redis.keyPrefix, r.timeoutMs);
  return { store: guarded, counters: redis, guarded, redis, usage };
}
