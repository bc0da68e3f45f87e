import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../src/store/redis.js';
import { BUDGET_KEY_GRACE_MS } from '../../../src/store/store.js';
import { RedisServer } from '../../helpers/redis-server.js';
import { hitWindows, reserve } from '../../unit/store/admit-helpers.js';
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
    await hitWindows(a, hit, T0);
    await hitWindows(a, hit, T0);
    expect((await hitWindows(b, hit, T0)).windows[0]?.remaining).to.equal(2);
    const budget = { key: 'shared-b', limit: 1000, amount: 300, minAmount: 300, expiresAtMs: T0 + 3_600_000 };
    await reserve(a, [budget], 'req-1', 60_000, T0);
    expect(await b.readBudget('shared-b', T0)).to.deep.equal({ used: 0, reserved: 300 });
    await b.settle([budget], 'req-1', [120], T0);
    expect(await a.readBudget('shared-b', T0)).to.deep.equal({ used: 120, reserved: 0 });
  });

  it('a replica that dies holding concurrency slots leaks none: they expire after the TTL', async () => {
    const [a, b] = [await connect(), await connect()];
    const ttlMs = 400;
    const take = (store: RedisStore, id: string) => {
      const now = Date.now();
      const slot = { key: 'cc:crash:ann', limit: 2, amount: 1, minAmount: 1, expiresAtMs: now + ttlMs + 60_000 };
      return store.admit({ windows: [], budgets: [slot], reservationId: id, ttlMs }, now);
    };
    expect((await Promise.all([take(a, 'a1'), take(a, 'a2')])).map((r) => r.allowed)).to.deep.equal([true, true]);
    await a.close(); // gone without releasing anything
    expect((await take(b, 'b1')).allowed).to.equal(false);
    await new Promise((r) => setTimeout(r, ttlMs + 50));
    expect((await Promise.all([take(b, 'b2'), take(b, 'b3'), take(b, 'b4')])).map((r) => r.allowed).sort()).to.deep.equal([false, true, true]);
  });

  it('200 concurrent hits on a limit of 50 across two stores admit exactly 50, all-or-nothing', async () => {
    const stores = [await connect(), await connect()];
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        hitWindows(
          stores[i % 2] as RedisStore,
          [
            { key: `per-replica-${i % 2}`, limit: 1000, windowMs: 60_000 },
            { key: 'race-50', limit: 50, windowMs: 60_000 },
          ],
          T0,
        ),
      ),
    );
    expect(results.filter((r) => r.allowed)).to.have.length(50);
    expect(results.filter((r) => !r.allowed).every((r) => r.refusedBy?.index === 1)).to.equal(true);
    // refused calls consumed nothing from the other window either
    const counts = await raw.mget(
      `${PREFIX}race-50`,
      `${PREFIX}per-replica-0`,
      `${PREFIX}per-replica-1`,
    );
    expect(Number(counts[0])).to.equal(50);
    expect(Number(counts[1]) + Number(counts[2])).to.equal(50);
  });

  it('50 concurrent reservations against room for 10 admit exactly 10; cut ones fill the rest', async () => {
    const stores = [await connect(), await connect()];
    const run = (key: string, limit: number, amount: number, minAmount = 1) =>
      Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          reserve(
            stores[i % 2] as RedisStore,
            [{ key, limit, amount, minAmount, expiresAtMs: T0 + 3_600_000 }],
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

    // minAmount = amount: never admitted on partial room, so the last 2 tokens stay free.
    const whole = await run('race-whole', 100, 7, 7);
    const fit = whole.filter((r) => r.allowed);
    expect(fit).to.have.length(14);
    expect(fit.every((r) => r.reserved[0] === 7)).to.equal(true);
    expect(whole.filter((r) => !r.allowed).every((r) => r.remaining[0] === 2)).to.equal(true);
    expect(await stores[1]?.readBudget('race-whole', T0)).to.deep.equal({ used: 0, reserved: 98 });
  });

  it('concurrent admissions over two stores: budget refusals use no window, window refusals reserve nothing', async () => {
    const stores = [await connect(), await connect()];
    const race = (window: { key: string; limit: number }, budget: { key: string; limit: number }) =>
      Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (stores[i % 2] as RedisStore).admit(
            {
              windows: [{ ...window, windowMs: 60_000 }],
              budgets: [{ ...budget, amount: 1, minAmount: 1, expiresAtMs: T0 + 3_600_000 }],
              reservationId: `${budget.key}-${i}`,
              ttlMs: 60_000,
            },
            T0,
          ),
        ),
      );
    const kinds = (rs: { refusedBy?: { kind: string } }[]) => rs.map((r) => r.refusedBy?.kind);

    // The budget has room for 10, the window for plenty.
    const byBudget = await race({ key: 'mix-w1', limit: 1000 }, { key: 'mix-b1', limit: 10 });
    expect(kinds(byBudget).filter((k) => k === undefined)).to.have.length(10);
    expect(kinds(byBudget).filter((k) => k === 'budget')).to.have.length(40);
    expect(await raw.get(`${PREFIX}mix-w1`)).to.equal('10');

    // The window has room for 10, the budget for plenty.
    const byWindow = await race({ key: 'mix-w2', limit: 10 }, { key: 'mix-b2', limit: 1000 });
    expect(kinds(byWindow).filter((k) => k === undefined)).to.have.length(10);
    expect(kinds(byWindow).filter((k) => k === 'window')).to.have.length(40);
    expect(await stores[0]?.readBudget('mix-b2', T0)).to.deep.equal({ used: 0, reserved: 10 });
  });

  it('ends a window on the Redis clock, starting at the first hit', async () => {
    const store = await connect();
    const hit = [{ key: 'short', limit: 1, windowMs: 150 }];
    expect((await hitWindows(store, hit, T0)).allowed).to.equal(true);
    const denied = await hitWindows(store, hit, T0);
    expect(denied.allowed).to.equal(false);
    expect(denied.windows[0]?.resetMs).to.be.within(1, 150);
    await new Promise((r) => setTimeout(r, 200));
    expect((await hitWindows(store, hit, T0)).allowed).to.equal(true);
  });

  it('writes prefixed keys that expire: windows after windowMs, budgets when the caller says', async () => {
    const store = await connect();
    await hitWindows(store, [{ key: 'rl:x:ann', limit: 5, windowMs: 60_000 }], T0);
    expect(await raw.pttl(`${PREFIX}rl:x:ann`)).to.be.within(59_000, 60_000);
    const periodEnd = Date.now() + 3_600_000;
    await reserve(
      store,
      [{ key: 'tb:t', limit: 10, amount: 1, minAmount: 1, expiresAtMs: periodEnd + BUDGET_KEY_GRACE_MS }],
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

  it('costs one script call per admission however many windows and budgets apply', async () => {
    const store = await connect();
    const request = {
      windows: ['a', 'b', 'c', 'd'].map((k) => ({ key: `rt-${k}`, limit: 9, windowMs: 60_000 })),
      budgets: ['e', 'f'].map((k) => ({
        key: `rt-${k}`,
        limit: 1000,
        amount: 10,
        minAmount: 10,
        expiresAtMs: T0 + 3_600_000,
      })),
      reservationId: 'rt',
      ttlMs: 60_000,
    };
    await store.admit(request, T0); // loads the script
    await raw.config('RESETSTAT');
    await store.admit(request, T0);
    const stats = await raw.info('commandstats');
    const evalsha = /cmdstat_evalsha:calls=(\d+)/.exec(stats);
    expect(Number(evalsha?.[1])).to.equal(1);
    expect(stats).to.not.match(/cmdstat_eval:/); // no script reload, no plain EVAL
  });

  it('connects with a password and a db number from the URL', async () => {
    const secured = await RedisServer.start({ password: 's3cr3t' });
    try {
      const store = await connect(secured.url(2));
      await hitWindows(store, [{ key: 'in-db-2', limit: 5, windowMs: 60_000 }], T0);
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
      const err: unknown = await hitWindows(
        wrong,
        [{ key: 'x', limit: 1, windowMs: 1000 }],
        T0,
      ).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(Error);
    } finally {
      await Promise.all(open.splice(0).map((s) => s.close()));
      await secured.stop();
    }
  });
});
