/**
 * Redis that survives a failover, and Redis Cluster (issue 13): real redis-server processes —
 * a primary, a replica and a sentinel; three cluster primaries — behind the guarded store
 * exactly as `store.redis` builds it (createStore).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Cluster, Redis } from 'ioredis';
import { createStore, type CreatedStore } from '../../../src/store/index.js';
import { clusterPrefix } from '../../../src/store/redis.js';
import type { AdmitRequest } from '../../../src/store/store.js';
import { RedisServer } from '../../helpers/redis-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One admission under a window (per user) and a budget (per tenant): keys of different subjects. */
function admission(i: number, user = `user-${i % 7}`): AdmitRequest {
  return {
    windows: [{ key: `rl:per-user:${user}`, limit: 1_000_000, windowMs: 3_600_000 }],
    budgets: [{ key: `tb:tenant:t${i % 3}:2026-12`, limit: 1_000_000_000, amount: 10, minAmount: 10, expiresAtMs: Date.now() + 86_400_000 }],
    reservationId: `r-${i}`,
    ttlMs: 600_000,
  };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('store: Redis Sentinel failover', function () {
  this.timeout(60_000);
  let primary: RedisServer | undefined;
  let replica: RedisServer | undefined;
  let sentinel: RedisServer | undefined;
  let created: CreatedStore | undefined;

  before(async () => {
    primary = await RedisServer.start();
    const p = primary.port;
    replica = await RedisServer.start({ args: () => ['--replicaof', '127.0.0.1', String(p)] });
    sentinel = await RedisServer.start({
      args: (_port, dir) => {
        const file = path.join(dir, 'sentinel.conf');
        writeFileSync(file, [`sentinel monitor main 127.0.0.1 ${p} 1`, 'sentinel down-after-milliseconds main 1000', 'sentinel failover-timeout main 5000', ''].join('\n'));
        return [file, '--sentinel'];
      },
    });
    const r = replica;
    await until('the replica to sync', async () => {
      const c = new Redis(r.port, '127.0.0.1', { lazyConnect: true });
      await c.connect();
      const info = await c.info('replication');
      c.disconnect();
      return info.includes('master_link_status:up');
    });
    created = await createStore(
      // Every write acknowledged by the replica: what a failover promotes has every count.
      { redis: { sentinels: [`127.0.0.1:${sentinel.port}`], name: 'main', waitForReplicas: 1, timeoutMs: 200, onUnavailable: 'closed', keyPrefix: 'ha:' } },
      { failureThreshold: 1_000_000 },
    );
    await created.redis?.ready(5000);
  });

  after(async () => {
    await created?.store.close();
    await Promise.all([sentinel?.stop(), replica?.stop(), primary?.stop()]);
  });

  const count = async (port: number, key: string): Promise<number> => {
    const c = new Redis(port, '127.0.0.1', { lazyConnect: true });
    await c.connect();
    const v = await c.get(key);
    c.disconnect();
    return Number(v ?? 0);
  };

  it('follows a failover under traffic: the policy answers the switch, counters are exact after it', async () => {
    const store = created!.store;
    const s = sentinel!;
    let admitted = 0;
    let refused = 0;
    let i = 0;
    const run = async (n: number) => {
      for (let k = 0; k < n; k++, i++) {
        try {
          const r = await store.admit(admission(i, 'alice'), Date.now());
          if (r.allowed) admitted++;
        } catch {
          refused++; // `closed`: the store is unavailable, the request is refused (503)
        }
      }
    };
    await run(50);
    expect([admitted, refused]).to.deep.equal([50, 0]);
    expect(await count(primary!.port, 'ha:rl:per-user:alice')).to.equal(50);

    // Fail over (as an orchestrator would) while requests keep coming.
    const admin = new Redis(s.port, '127.0.0.1', { lazyConnect: true });
    await admin.connect();
    const traffic = (async () => {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        await run(1);
        const master = (await admin.call('SENTINEL', 'get-master-addr-by-name', 'main')) as string[];
        if (Number(master[1]) === replica!.port && refused + admitted > 60) {
          // The client follows once it wrote successfully to the new primary.
          const before = admitted;
          await run(5);
          if (admitted === before + 5) return;
        }
        await sleep(20);
      }
      throw new Error('the store never followed the failover');
    })();
    await admin.call('SENTINEL', 'failover', 'main');
    await traffic;
    admin.disconnect();

    // Nothing admitted was lost in the switch (each write reached the replica before it
    // counted); a write refused by the policy may still have landed (erring on limiting).
    const onNewPrimary = await count(replica!.port, 'ha:rl:per-user:alice');
    expect(onNewPrimary).to.be.at.least(admitted).and.at.most(admitted + refused);
    expect(refused, 'the closed policy answered during the switch').to.be.above(0);
    // From here on, counting is exact on the new primary.
    const settled = onNewPrimary;
    const more = admitted;
    await run(20);
    expect(admitted - more).to.equal(20);
    expect(await count(replica!.port, 'ha:rl:per-user:alice')).to.equal(settled + 20);
  });
});

describe('store: Redis Cluster with three primaries', function () {
  this.timeout(60_000);
  const nodes: RedisServer[] = [];
  let created: CreatedStore | undefined;
  let inspect: Cluster | undefined;

  before(async () => {
    for (let n = 0; n < 3; n++) {
      nodes.push(await RedisServer.start({ args: (port) => ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'] }));
    }
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
    const seed = nodes[0]!;
    await until('the cluster to be ok', async () => {
      const c = new Redis(seed.port, '127.0.0.1', { lazyConnect: true });
      await c.connect();
      const info = await c.cluster('INFO');
      c.disconnect();
      return info.includes('cluster_state:ok');
    });
    created = await createStore({
      redis: { cluster: nodes.map((s) => `127.0.0.1:${s.port}`), timeoutMs: 500, onUnavailable: 'closed', keyPrefix: 'tollgate:' },
    });
    await created.redis?.ready(5000);
    inspect = new Cluster(nodes.map((s) => ({ host: '127.0.0.1', port: s.port })));
  });

  after(async () => {
    inspect?.disconnect();
    await created?.store.close();
    await Promise.all(nodes.map((s) => s.stop()));
  });

  it('keeps every key of an admission in one hash slot, so one script still counts them all', async () => {
    expect(clusterPrefix('tollgate:')).to.equal('{tollgate}:');
    expect(clusterPrefix('{team-a}:tollgate:')).to.equal('{team-a}:tollgate:');
    const store = created!.store;
    let allowed = 0;
    for (let i = 0; i < 60; i++) if ((await store.admit(admission(i), Date.now())).allowed) allowed++;
    expect(allowed).to.equal(60);
    // 7 users' windows and 3 tenants' budgets, each exact, all in the slot of `{tollgate}`.
    let windows = 0;
    for (let u = 0; u < 7; u++) windows += Number((await inspect!.get(`{tollgate}:rl:per-user:user-${u}`)) ?? 0);
    expect(windows).to.equal(60);
    const reserved = await Promise.all([0, 1, 2].map(async (t) => Number(await inspect!.hget(`{tollgate}:tb:tenant:t${t}:2026-12`, 'reserved'))));
    expect(reserved.reduce((a, b) => a + b, 0)).to.equal(60 * 10);
    const slots = new Set(await Promise.all(['rl:per-user:user-0', 'tb:tenant:t1:2026-12'].map((k) => inspect!.cluster('KEYSLOT', `{tollgate}:${k}`))));
    expect(slots.size).to.equal(1);
    // Settlement reaches the same slot.
    await store.settle([{ key: 'tb:tenant:t0:2026-12', expiresAtMs: Date.now() + 86_400_000 }], 'r-0', [7], Date.now());
    expect(Number(await inspect!.hget('{tollgate}:tb:tenant:t0:2026-12', 'used'))).to.equal(7);
  });
});
