/**
 * The usage book in a real redis-server, through createStore's wiring: the same sums as the
 * memory book, one script call per tally, every key expiring with its day, and a clear
 * rejection (never a hang) when Redis is gone.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createStore, type CreatedStore } from '../../../src/store/index.js';
import { MemoryUsageBook, type UsageBook, type UsageTally } from '../../../src/store/usage-book.js';
import { RedisServer } from '../../helpers/redis-server.js';

const EXPIRES = Date.UTC(2027, 1, 5);

function tally(over: Partial<UsageTally> = {}): UsageTally {
  return {
    day: '2026-12-04',
    tenant: 'acme',
    user: 'ada@example.com',
    model: 'gpt-4o-mini',
    inputTokens: 100,
    outputTokens: 20,
    estimatedTokens: 0,
    costMicros: 33,
    expiresAtMs: EXPIRES,
    ...over,
  };
}

async function writeAll(book: UsageBook): Promise<void> {
  await book.tally(tally());
  await book.tally(tally({ outputTokens: 0, estimatedTokens: 100, costMicros: 0 }));
  await book.tally(tally({ model: 'gpt-4o', user: 'bob:x@example.com' }));
  await book.tally(tally({ tenant: '', user: 'solo' }));
}

describe('integration: the usage book in Redis', function () {
  this.timeout(20_000);
  let server: RedisServer;
  let created: CreatedStore;
  let raw: Redis;

  before(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.port, '127.0.0.1');
    created = await createStore({ redis: { url: server.url(), timeoutMs: 500, onUnavailable: 'closed', keyPrefix: 'ub:' } });
    await created.redis?.ready(3000);
  });

  after(async () => {
    await created?.store.close();
    raw?.disconnect();
    await server?.stop();
  });

  it('answers what the memory book answers', async () => {
    const memory = new MemoryUsageBook(() => Date.UTC(2026, 11, 4));
    await writeAll(memory);
    await writeAll(created.usage);
    const sort = <T extends { user: string; model: string }>(rows: T[]): T[] =>
      rows.sort((a, b) => `${a.user} ${a.model}`.localeCompare(`${b.user} ${b.model}`));
    for (const tenant of ['acme', '']) {
      expect(sort(await created.usage.readDay('2026-12-04', tenant))).to.deep.equal(sort(await memory.readDay('2026-12-04', tenant)));
    }
    expect(await created.usage.readDay('2026-12-04', 'acme', 'ada@example.com')).to.deep.equal([
      { user: 'ada@example.com', model: 'gpt-4o-mini', requests: 2, inputTokens: 200, outputTokens: 20, estimatedTokens: 100, costMicros: 33 },
    ]);
    expect((await created.usage.tenants('2026-12-04')).sort()).to.deep.equal(['', 'acme']);
    expect(await created.usage.readDay('2026-12-05', 'acme')).to.deep.equal([]);
  });

  it('gives every key of the day its expiry, under the store prefix', async () => {
    const keys = (await raw.keys('ub:usage:2026-12-04:*')).sort();
    expect(keys).to.include.members(['ub:usage:2026-12-04:tenants', 'ub:usage:2026-12-04:users:acme', 'ub:usage:2026-12-04:u:acme:ada@example.com']);
    for (const key of keys) expect(await raw.pexpiretime(key)).to.equal(EXPIRES);
  });

  it('costs one command per tally', async () => {
    const before = Number(/calls=(\d+)/.exec((await raw.info('commandstats')).split('\n').find((l) => l.startsWith('cmdstat_evalsha')) ?? '')?.[1] ?? 0);
    await created.usage.tally(tally({ day: '2026-12-06' }));
    const stats = await raw.info('commandstats');
    const after = Number(/calls=(\d+)/.exec(stats.split('\n').find((l) => l.startsWith('cmdstat_evalsha')) ?? '')?.[1] ?? 0);
    expect(after - before).to.equal(1);
  });

  it('rejects at once when Redis is gone', async () => {
    await server.kill();
    const started = Date.now();
    let error: unknown;
    await created.usage.tally(tally()).catch((err: unknown) => (error = err));
    expect(error).to.be.instanceOf(Error);
    expect(Date.now() - started).to.be.below(5000);
    await server.restart();
  });
});
