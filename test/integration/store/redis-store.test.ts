import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../src/store/redis.js';
import { BUDGET_KEY_GRACE_MS } from '../../../src/store/store.js';
import { RedisServer } from '../../helpers/redis-server.js';
import { describeStoreContract } from '../../unit/store/store-contract.js';

const PREFIX = 'tollgate:test:';
const T0 = Date.now();

describe('RedisStore against a real redis-server', function () {
  this.timeout(15_000);
  let server: RedisServer;
  let raw: Redis;
  const open: RedisStore[] = [];

  async function connect(url = server.url()): Promise<RedisStore> {
    const store = new RedisStore({
      url,
      timeoutMs: 2000,
      keyPrefix: PREFIX,
      maxReconnectDelayMs: 50,
    });
    open.push(store);
    await store.ready(3000);
    return store;
  }

  before(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.port, '127.0.0.1');
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });
  after(async () => {
    raw?.disconnect();
    await server?.stop();
  });

  describeStoreContract('RedisStore', () => connect());

  it('two stores (two replicas) share counters exactly', async () => {
    const [a, b] = [await connect(), await connect()];
    const hit = [{ key: 'shared-w', limit: 5, windowMs: 60_000 }];
    await a.hitWindows(hit, T0);
    await a.hitWindows(hit, T0);
    expect((await b.hitWindows(hit, T0)).results[0]?.remaining).to.equal(2);
    const budget = { key: 'shared-b', limit: 1000, amount: 300, expiresAtMs: T0 + 3_600_000 };
    await a.reserve([budget], 'req-1', 60_000, T0);
    expect(await b.readBudget('shared-b', T0)).to.deep.equal({ used: 0, reserved: 300 });
    await b.settle([budget], 'req-1', 120, T0);
    expect(await a.readBudget('shared-b', T0)).to.deep.equal({ used: 120, reserved: 0 });
  });

  it('200 concurrent hits on a limit of 50 across two stores admit exactly 50, all-or-nothing', async () => {
    const stores = [await connect(), await connect()];
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        (stores[i % 2] as RedisStore).hitWindows(
          [
            { key: `per-replica-${i % 2}`, limit: 1000, windowMs: 60_000 },
            { key: 'race-50', limit: 50, windowMs: 60_000 },
          ],
          T0,
        ),
      ),
    );
    expect(results.filter((r) => r.allowed)).to.have.length(50);
    expect(results.filter((r) => !r.allowed).every((r) => r.deniedIndex === 1)).to.equal(true);
    // refused calls consumed nothing from the other window either
    const counts = await raw.mget(
      `${PREFIX}race-50`,
      `${PREFIX}per-replica-0`,
      `${PREFIX}per-replica-1`,
    );
    expect(Number(counts[0])).to.equal(50);
    expect(Number(counts[1]) + Number(counts[2])).to.equal(50);
  });

  it('50 concurrent reservations against room for 10 admit exactly 10; clamped ones fill the rest', async () => {
    const stores = [await connect(), await connect()];
    const run = (key: string, limit: number, amount: number) =>
      Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (stores[i % 2] as RedisStore).reserve(
            [{ key, limit, amount, expiresAtMs: T0 + 3_600_000 }],
            `r${i}`,
            60_000,
            T0,
          ),
        ),
      );
    const ones = await run('race-ten', 10, 1);
    expect(ones.filter((r) => r.allowed)).to.have.length(10);
    expect(await stores[0]?.readBudget('race-ten', T0)).to.deep.equal({ used: 0, reserved: 10 });

    const sevens = await run('race-clamp', 100, 7);
    const admitted = sevens.filter((r) => r.allowed);
    expect(admitted).to.have.length(15); // 14 × 7 = 98, the 15th gets the last 2
    expect(admitted.reduce((sum, r) => sum + (r.reserved[0] ?? 0), 0)).to.equal(100);
  });

  it('ends a window on the Redis clock, starting at the first hit', async () => {
    const store = await connect();
    const hit = [{ key: 'short', limit: 1, windowMs: 150 }];
    expect((await store.hitWindows(hit, T0)).allowed).to.equal(true);
    const denied = await store.hitWindows(hit, T0);
    expect(denied.allowed).to.equal(false);
    expect(denied.results[0]?.resetMs).to.be.within(1, 150);
    await new Promise((r) => setTimeout(r, 200));
    expect((await store.hitWindows(hit, T0)).allowed).to.equal(true);
  });

  it('writes prefixed keys that expire: windows after windowMs, budgets after period end + grace', async () => {
    const store = await connect();
    await store.hitWindows([{ key: 'rl:x:ann', limit: 5, windowMs: 60_000 }], T0);
    expect(await raw.pttl(`${PREFIX}rl:x:ann`)).to.be.within(59_000, 60_000);
    const periodEnd = Date.now() + 3_600_000;
    await store.reserve(
      [{ key: 'tb:t', limit: 10, amount: 1, expiresAtMs: periodEnd }],
      'r',
      60_000,
      Date.now(),
    );
    const ttl = await raw.pttl(`${PREFIX}tb:t`);
    expect(ttl).to.be.within(
      3_600_000 + BUDGET_KEY_GRACE_MS - 5000,
      3_600_000 + BUDGET_KEY_GRACE_MS,
    );
    expect(await raw.pttl(`${PREFIX}tb:t:exp`)).to.be.above(3_600_000);
  });

  it('costs one script call per admission however many windows apply', async () => {
    const store = await connect();
    const hits = ['a', 'b', 'c', 'd'].map((k) => ({ key: `rt-${k}`, limit: 9, windowMs: 60_000 }));
    await store.hitWindows(hits, T0); // loads the script
    await raw.config('RESETSTAT');
    await store.hitWindows(hits, T0);
    const stats = await raw.info('commandstats');
    const evalsha = /cmdstat_evalsha:calls=(\d+)/.exec(stats);
    expect(Number(evalsha?.[1])).to.equal(1);
    expect(stats).to.not.match(/cmdstat_eval:/); // no script reload, no plain EVAL
  });

  it('connects with a password and a db number from the URL', async () => {
    const secured = await RedisServer.start({ password: 's3cr3t' });
    try {
      const store = await connect(secured.url(2));
      await store.hitWindows([{ key: 'in-db-2', limit: 5, windowMs: 60_000 }], T0);
      const check = new Redis({ port: secured.port, host: '127.0.0.1', password: 's3cr3t', db: 2 });
      expect(await check.get(`${PREFIX}in-db-2`)).to.equal('1');
      await check.select(0);
      expect(await check.get(`${PREFIX}in-db-2`)).to.equal(null);
      check.disconnect();

      const wrong = new RedisStore({
        url: `redis://:nope@127.0.0.1:${secured.port}`,
        timeoutMs: 200,
        keyPrefix: PREFIX,
      });
      open.push(wrong);
      const err: unknown = await wrong
        .hitWindows([{ key: 'x', limit: 1, windowMs: 1000 }], T0)
        .catch((e: unknown) => e);
      expect(err).to.be.instanceOf(Error);
    } finally {
      await Promise.all(open.splice(0).map((s) => s.close()));
      await secured.stop();
    }
  });
});
