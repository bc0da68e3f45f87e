/**
 * The guarded store in front of a real redis-server that dies (SIGKILL) or hangs (SIGSTOP):
 * every call still answers within the deadline, per the `onUnavailable` policy, the breaker
 * keeps the number of timeouts paid small, and after a restart counters are shared again.
 */
import { expect } from 'chai';
import type { OnUnavailable } from '../../../src/config/schema.js';
import { TollgateError } from '../../../src/domain/errors.js';
import { GuardedStore } from '../../../src/store/guarded.js';
import { RedisStore } from '../../../src/store/redis.js';
import type { AdmitResult } from '../../../src/store/store.js';
import { hitWindows } from '../../unit/store/admit-helpers.js';
import { RedisServer } from '../../helpers/redis-server.js';

const TIMEOUT_MS = 100;
const MARGIN_MS = 100;
const PROBE_MS = 250;
const PREFIX = 'tollgate:guard:';

type Outcome = { ms: number; result?: AdmitResult; error?: unknown };

async function timed(call: () => Promise<AdmitResult>): Promise<Outcome> {
  const started = performance.now();
  try {
    const result = await call();
    return { ms: performance.now() - started, result };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('GuardedStore over a real redis-server', function () {
  this.timeout(20_000);
  let server: RedisServer;
  const stores: RedisStore[] = [];

  async function redisStore(): Promise<RedisStore> {
    const s = new RedisStore({
      url: server.url(),
      timeoutMs: TIMEOUT_MS,
      keyPrefix: PREFIX,
      maxReconnectDelayMs: 50,
    });
    stores.push(s);
    await s.ready(3000);
    return s;
  }

  before(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    server.resume();
    if (!server.running) await server.restart();
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  after(async () => {
    await server?.stop();
  });

  function check(policy: OnUnavailable, outcome: Outcome, expectAllowed: boolean): void {
    expect(outcome.ms, 'answered within the deadline').to.be.below(TIMEOUT_MS + MARGIN_MS);
    if (policy === 'closed') {
      expect(outcome.error).to.be.instanceOf(TollgateError);
      expect((outcome.error as TollgateError).code).to.equal('store_unavailable');
      return;
    }
    expect(outcome.error).to.equal(undefined);
    expect(outcome.result?.degraded).to.equal(policy);
    expect(outcome.result?.allowed).to.equal(expectAllowed);
  }

  for (const policy of ['closed', 'open', 'local'] as const) {
    it(`${policy}: a killed Redis answers by policy at once, and after a restart counters are shared again`, async () => {
      const primary = await redisStore();
      const guarded = new GuardedStore(primary, {
        timeoutMs: TIMEOUT_MS,
        onUnavailable: policy,
        failureThreshold: 3,
        probeIntervalMs: PROBE_MS,
      });
      const key = `killed-${policy}`;
      const hit = [{ key, limit: 3, windowMs: 60_000 }];
      expect((await hitWindows(guarded, hit, Date.now())).degraded).to.equal(undefined);

      await server.kill();
      for (let i = 0; i < 6; i += 1) {
        // local counts on this replica alone: the local window has room for 3
        check(
          policy,
          await timed(() => hitWindows(guarded, hit, Date.now())),
          policy !== 'local' || i < 3,
        );
      }
      expect(guarded.stats()).to.include({ state: 'open', errors: 3, fallbacks: 6 });

      await server.restart();
      await primary.ready(3000);
      await sleep(PROBE_MS);
      const back = await hitWindows(guarded, hit, Date.now());
      expect(back.degraded).to.equal(undefined);
      expect(guarded.stats().state).to.equal('closed');
      // the restarted Redis is empty; a second replica sees the guarded store's hit
      const peer = await redisStore();
      expect((await hitWindows(peer, hit, Date.now())).windows[0]?.remaining).to.equal(1);
      await guarded.close();
    });

    it(`${policy}: a hung Redis costs one timeout per probe interval at most`, async () => {
      const primary = await redisStore();
      const guarded = new GuardedStore(primary, {
        timeoutMs: TIMEOUT_MS,
        onUnavailable: policy,
        failureThreshold: 3,
        probeIntervalMs: PROBE_MS,
      });
      const hit = [{ key: `hung-${policy}`, limit: 1000, windowMs: 60_000 }];
      server.pause();
      const started = performance.now();
      let calls = 0;
      while (performance.now() - started < 3 * PROBE_MS + 3 * TIMEOUT_MS) {
        check(policy, await timed(() => hitWindows(guarded, hit, Date.now())), true);
        calls += 1;
        await sleep(10);
      }
      const { timeouts, state } = guarded.stats();
      expect(state).to.not.equal('closed');
      // 3 to open the breaker, then at most one probe per interval
      expect(timeouts).to.be.within(4, 3 + 3);
      expect(calls).to.be.above(timeouts * 2);

      server.resume();
      await sleep(PROBE_MS);
      expect((await hitWindows(guarded, hit, Date.now())).degraded).to.equal(undefined);
      expect(guarded.stats().state).to.equal('closed');
      await guarded.close();
    });
  }
});
