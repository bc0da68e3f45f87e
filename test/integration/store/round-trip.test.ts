/**
 * DESIGN 1.7: one admission is one round trip to Redis, however many limits and budgets apply,
 * and a settlement is one more. Measured on the production wiring (createStore: GuardedStore
 * over RedisStore, the admission stage with both planners) against a real redis-server, three
 * ways: the commands the client wrote, the commands Redis saw from that connection (MONITOR),
 * and Redis's own command statistics.
 */
import { expect } from 'chai';
import { Redis, type Command } from 'ioredis';
import type { Config } from '../../../src/config/schema.js';
import { admitter } from '../../helpers/unit.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { RateLimitPlanner } from '../../../src/limits/rate-limit.js';
import type { PlanGrant } from '../../../src/limits/admit.js';
import { createStore, type CreatedStore } from '../../../src/store/index.js';
import { RedisServer } from '../../helpers/redis-server.js';
import { budget, config, ctx } from '../../unit/budgets/helpers.js';

/**
 * Three limits (one with a concurrency limit too) and two budgets that all apply to the
 * helpers' chat request (ann, tenant acme).
 */
function threeLimitsTwoBudgets(): Config {
  return {
    ...config([
      budget({ tenant: 'acme', maxTokens: 1_000_000 }),
      budget({ user: 'ann@myorg.com', maxTokens: 100_000, period: 'day' }),
    ]),
    rateLimits: [
      {
        name: 'per-user',
        match: { claims: {} },
        requestsPerUnit: 100,
        unit: 'minute',
        // and a concurrency limit: its slot is taken in the same script, freed in the same settle
        maxConcurrent: 100,
        key: 'user',
      },
      {
        name: 'per-tenant',
        match: { claims: {} },
        requestsPerUnit: 1000,
        unit: 'hour',
        key: 'tenant',
      },
      {
        name: 'chat',
        match: { path: '/v1/chat/completions', claims: {} },
        requestsPerUnit: 10,
        unit: 'minute',
        key: 'user',
      },
    ],
  };
}

/** Every command the client hands to its socket, by name, until `stop()`. */
function clientCommands(client: Redis): { names: string[]; stop(): void } {
  const names: string[] = [];
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command: Command, stream?: Parameters<Redis['sendCommand']>[1]) => {
    names.push(command.name);
    return send(command, stream);
  };
  return { names, stop: () => (client.sendCommand = send) };
}

describe('one Redis round trip per admission (3 limits, one with a concurrency limit, + 2 budgets)', function () {
  this.timeout(20_000);
  let server: RedisServer;
  let raw: Redis;
  let monitor: Redis;
  let created: CreatedStore;
  /** The store connection's address, as MONITOR names the source of its commands. */
  let storeAddr: string | undefined;
  /** What MONITOR reported: [source, command...]; Lua's own calls have source `lua`. */
  const seen: string[][] = [];
  let markers = 0;

  /** MONITOR is ordered: once a marker sent now shows up, everything before it has too. */
  async function flush(): Promise<void> {
    const marker = `marker-${++markers}`;
    await raw.echo(marker);
    while (!seen.some((s) => s[1]?.toLowerCase() === 'echo' && s[2] === marker))
      await new Promise((r) => setTimeout(r, 5));
  }

  /** Runs `fn` and returns what MONITOR saw from the store's own connection meanwhile. */
  async function watched(fn: () => Promise<unknown>): Promise<{ direct: string[][]; lua: number }> {
    await flush();
    const from = seen.length;
    await fn();
    await flush();
    const during = seen.slice(from);
    return {
      direct: during.filter((s) => s[0] === storeAddr),
      lua: during.filter((s) => s[0] === 'lua').length,
    };
  }

  before(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.port, '127.0.0.1');
    monitor = await raw.monitor();
    monitor.on('monitor', (_time: string, args: string[], source: string) =>
      seen.push([source, ...args]),
    );
    created = await createStore({
      redis: { url: server.url(), timeoutMs: 2000, onUnavailable: 'closed', keyPrefix: 'rt:' },
    });
    await created.redis?.ready(3000);
    const info = String(await created.redis?.client.call('CLIENT', 'INFO'));
    storeAddr = /\baddr=(\S+)/.exec(info)?.[1];
    expect(storeAddr).to.match(/^127\.0\.0\.1:\d+$/);
  });

  after(async () => {
    await created?.store.close();
    monitor?.disconnect();
    raw?.disconnect();
    await server?.stop();
  });

  it('costs one command from the client and one EVALSHA at the server, warm or cold', async () => {
    const cfg = threeLimitsTwoBudgets();
    const stage = admitter(
      [new RateLimitPlanner(cfg), new BudgetPlanner(cfg)],
      created.store,
    );
    const admit = async (i: number): Promise<PlanGrant> => {
      const r = await stage.run(ctx({ now: Date.now(), maxTokens: 10, handoffId: `adm-${i}` }));
      if (!('ok' in r)) throw new Error(`refused: ${JSON.stringify(r)}`);
      return r.ok;
    };
    const client = created.redis!.client as Redis;

    // Cold: the connection's first script call sends the script itself (EVAL), still once.
    const sent = clientCommands(client);
    const cold = await watched(() => admit(0));
    expect(sent.names, 'commands the client sent').to.have.length(1);
    expect(cold.direct.map((s) => s[1]?.toLowerCase())).to.deep.equal(['eval']);

    // Warm: one EVALSHA naming all 3 windows and 3 × 2 slot and budget keys; the rest runs inside Redis.
    await raw.config('RESETSTAT');
    sent.names.length = 0;
    const warm = await watched(async () => {
      for (let i = 1; i <= 5; i += 1) await admit(i);
    });
    sent.stop();
    expect(sent.names, 'commands the client sent for 5 admissions').to.deep.equal(
      Array(5).fill('evalsha'),
    );
    expect(warm.direct, 'commands Redis received from the store for 5 admissions').to.have.length(
      5,
    );
    for (const cmd of warm.direct) {
      expect(cmd[1]?.toLowerCase()).to.equal('evalsha');
      expect(cmd[3], 'keys: 3 windows + (1 slot counter + 2 budgets) × (hash, zset)').to.equal('9');
    }
    expect(warm.lua, 'the script’s own work, inside Redis').to.be.greaterThan(5 * 7);
    const stats = await raw.info('commandstats');
    expect(Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1])).to.equal(5);
    expect(stats).to.not.match(/cmdstat_eval:/);

    // And it counted: 6 admissions in every window and both budgets.
    const last = await admit(6);
    expect(last.responseHeaders?.['x-ratelimit-remaining-requests']).to.equal('3'); // chat: 10/min
    // Its one reservation: the per-user slot, then both budgets; 7 slots held (none settled yet).
    expect(last.reservation?.units).to.deep.equal(['slot', 'tokens', 'tokens']);
    expect(await raw.hget(`rt:${last.reservation?.budgets[0]?.key ?? ''}`, 'reserved')).to.equal('7');
  });

  it('a settlement is one more', async () => {
    const cfg = threeLimitsTwoBudgets();
    const stage = admitter(
      [new RateLimitPlanner(cfg), new BudgetPlanner(cfg)],
      created.store,
    );
    const r = await stage.run(ctx({ now: Date.now(), maxTokens: 10, handoffId: 'settle-me' }));
    if (!('ok' in r) || r.ok.reservation === undefined) throw new Error('not admitted');
    const { budgets, id, units } = r.ok.reservation;
    // As the ledger settles: the slot to 0 (freed), each budget to its usage.
    const amounts = budgets.map((_, i) => (units?.[i] === 'slot' ? 0 : 42));
    const settled = await watched(() => created.store.settle(budgets, id, amounts, Date.now()));
    // EVAL the first time this connection settles, EVALSHA after: one command either way.
    expect(settled.direct).to.have.length(1);
    expect(settled.direct[0]?.[1]?.toLowerCase()).to.match(/^eval(sha)?$/);
    expect(settled.direct[0]?.[3], 'keys: (1 slot counter + 2 budgets) × (hash, zset)').to.equal('6');
  });
});
