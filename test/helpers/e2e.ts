/**
 * The scaffolding most end-to-end tests share: a DevIssuer and DevUpstream, the config preamble
 * that trusts that issuer, and `tollgate stack` started and stopped around a describe. Each test
 * still writes its own config (rate limits, rules, budgets…) and passes it as `extra`.
 */
import { Redis } from 'ioredis';
import { DevIssuer } from '../../src/dev/issuer.js';
import { DevUpstream } from '../../src/dev/upstream.js';
import { RedisServer } from './redis-server.js';
import { startStack, type StackProcess } from './stack.js';

/** The `clientId` of the preamble's provider, and so the audience of the issuer's tokens. */
export const AUDIENCE = 'tollgate-test';
/** The environment the preamble's `upstream.apiKey: { env: TEST_UPSTREAM_KEY }` reads. */
export const UPSTREAM_ENV: Readonly<Record<string, string>> = { TEST_UPSTREAM_KEY: 'sk-test' };

/**
 * Ephemeral gRPC and metrics ports, one provider trusting `issuer`, the upstream key from
 * TEST_UPSTREAM_KEY, then `extra` (the test's own top-level keys) verbatim.
 */
export function baseConfig(opts: {
  issuer: DevIssuer;
  extra?: string;
  /** The provider's name (default `main-idp`). */
  name?: string;
  /** More provider keys, in flow style, e.g. `jwksUri: https://…`. */
  provider?: string;
  /** More `server` keys, in flow style, e.g. `maxRequestBytes: 1048576`. */
  server?: string;
}): string {
  const more = opts.provider === undefined ? '' : `, ${opts.provider}`;
  const server = opts.server === undefined ? '' : `, ${opts.server}`;
  return `
server: { grpc: 127.0.0.1:0, metrics: 127.0.0.1:0${server} }
authentication:
  - provider: { name: ${opts.name ?? 'main-idp'}, issuer: ${opts.issuer.url}, clientId: ${AUDIENCE}${more} }
upstream:
  apiKey: { env: TEST_UPSTREAM_KEY }
${opts.extra ?? ''}`;
}

export interface Devs {
  readonly issuer: DevIssuer;
  readonly upstream: DevUpstream;
}

export interface StackContext extends Devs {
  readonly stack: StackProcess;
}

interface Started {
  issuer?: DevIssuer;
  upstream?: DevUpstream;
  stack?: StackProcess;
}

/** What a hook started, read from a test; fails clearly when read before the hook ran. */
function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the ${what} is not started (used outside a test?)`);
  return value;
}

/** Starts both in parallel; each is kept in `state` as soon as it is up, so `closeDevs` finds it. */
async function startDevs(state: Started): Promise<void> {
  await Promise.all([
    DevIssuer.start({ audience: AUDIENCE }).then((issuer) => (state.issuer = issuer)),
    DevUpstream.start().then((upstream) => (state.upstream = upstream)),
  ]);
}

async function closeDevs(state: Started): Promise<void> {
  await Promise.all([state.issuer?.close(), state.upstream?.close()]);
}

/**
 * Registers `before`/`after` hooks in the enclosing describe that start and close a DevIssuer
 * (audience {@link AUDIENCE}) and a DevUpstream; for tests that start their own stacks.
 */
export function withDevs(): Devs {
  const state: Started = {};
  before(() => startDevs(state));
  after(() => closeDevs(state));
  return {
    get issuer() {
      return need(state.issuer, 'issuer');
    },
    get upstream() {
      return need(state.upstream, 'upstream');
    },
  };
}

/**
 * Like {@link withDevs}, then `tollgate stack` with `config(issuer)` in front of the upstream;
 * the stack is stopped before the issuer and upstream close.
 */
export function withStack(
  config: (issuer: DevIssuer) => string,
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): StackContext {
  const state: Started = {};
  before(async () => {
    await startDevs(state);
    state.stack = await startStack({
      config: config(need(state.issuer, 'issuer')),
      upstream: need(state.upstream, 'upstream').url,
      env: { ...UPSTREAM_ENV, ...opts.env },
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    });
  });
  after(async () => {
    await state.stack?.stop();
    await closeDevs(state);
  });
  return {
    get issuer() {
      return need(state.issuer, 'issuer');
    },
    get upstream() {
      return need(state.upstream, 'upstream');
    },
    get stack() {
      return need(state.stack, 'stack');
    },
  };
}

export interface SharedRedis {
  /** The two replicas, in the order they became ready (filled by the `before` hook). */
  readonly stacks: readonly StackProcess[];
  readonly redis: RedisServer;
  /** The test's own connection to the shared Redis, to check what the replicas wrote. */
  readonly inspect: Redis;
}

/**
 * Registers hooks that start a redis-server and two `tollgate stack` replicas configured by
 * `config(redis)`, both in front of `devs.upstream` (call after {@link withDevs}).
 */
export function withSharedRedis(
  devs: Devs,
  config: (redis: RedisServer) => string,
  opts: { timeoutMs?: number } = {},
): SharedRedis {
  const stacks: StackProcess[] = [];
  let redis: RedisServer | undefined;
  let inspect: Redis | undefined;
  before(async () => {
    redis = await RedisServer.start();
    const options = {
      config: config(redis),
      upstream: devs.upstream.url,
      env: UPSTREAM_ENV,
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    };
    await Promise.all([0, 1].map(async () => stacks.push(await startStack(options))));
    inspect = new Redis(redis.url(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    // A test that stops Redis must not make this reader print "Unhandled error event".
    inspect.on('error', () => undefined);
    await inspect.connect();
  });
  after(async () => {
    inspect?.disconnect();
    await Promise.all(stacks.map((s) => s.stop()));
    await redis?.stop();
  });
  return {
    stacks,
    get redis() {
      return need(redis, 'redis-server');
    },
    get inspect() {
      return need(inspect, 'Redis connection');
    },
  };
}
