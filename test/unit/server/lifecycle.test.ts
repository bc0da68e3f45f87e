/**
 * The shutdown helpers: settlements are waited for within a deadline, the grace period is split
 * so the whole stop fits in it, and key fetches are retried until the sidecar is ready.
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { InFlight, retryUntilReady, splitGrace, within } from '../../../src/server/lifecycle.js';

describe('server/lifecycle', () => {
  it('InFlight.drain waits for tracked work, including work tracked while draining', async () => {
    const inflight = new InFlight();
    const done: string[] = [];
    void inflight.track(sleep(20).then(() => done.push('a')));
    // A stream that ends during the drain starts its settlement then.
    setTimeout(() => void inflight.track(sleep(20).then(() => done.push('b'))), 10);
    expect(await inflight.drain(2000)).to.equal(true);
    expect(done).to.deep.equal(['a', 'b']);
    expect(inflight.size).to.equal(0);
  });

  it('InFlight.drain gives up at the deadline and forgets failed work', async () => {
    const inflight = new InFlight();
    void inflight.track(new Promise(() => undefined));
    inflight.track(Promise.reject(new Error('x'))).catch(() => undefined);
    const started = Date.now();
    expect(await inflight.drain(50)).to.equal(false);
    expect(Date.now() - started).to.be.lessThan(1000);
    expect(inflight.size).to.equal(1);
    expect(await new InFlight().drain(0)).to.equal(true);
  });

  it('splitGrace keeps a fifth (at most 2 s) for settlements', () => {
    expect(splitGrace(10_000)).to.deep.equal({ drainMs: 8000, settleMs: 2000 });
    expect(splitGrace(30_000)).to.deep.equal({ drainMs: 28_000, settleMs: 2000 });
    expect(splitGrace(1000)).to.deep.equal({ drainMs: 800, settleMs: 200 });
    expect(splitGrace(0)).to.deep.equal({ drainMs: 0, settleMs: 0 });
  });

  it('within never rejects and never waits past its timeout', async () => {
    await within(Promise.reject(new Error('x')), 1000);
    const started = Date.now();
    await within(new Promise(() => undefined), 30);
    expect(Date.now() - started).to.be.lessThan(1000);
  });

  it('retryUntilReady fetches while not ready, one attempt at a time, and stops once ready', async () => {
    let ready = false;
    let fetches = 0;
    let concurrent = 0;
    const retry = retryUntilReady({
      ready: () => ready,
      fetch: async () => {
        fetches += 1;
        concurrent += 1;
        expect(concurrent).to.equal(1);
        await sleep(15);
        concurrent -= 1;
        if (fetches === 3) ready = true;
        throw new Error('IdP still down'); // failures are swallowed
      },
      intervalMs: 5,
    });
    try {
      const deadline = Date.now() + 5000;
      while (!ready && Date.now() < deadline) await sleep(5);
      await sleep(40);
      expect(ready).to.equal(true);
      expect(fetches).to.equal(3);
    } finally {
      retry.stop();
    }
  });

  it('retryUntilReady backs off while the fetch keeps failing', async () => {
    let fetches = 0;
    const retry = retryUntilReady({
      ready: () => false,
      fetch: () => {
        fetches += 1;
        return Promise.reject(new Error('IdP down'));
      },
      intervalMs: 10,
      maxIntervalMs: 40,
    });
    await sleep(250);
    retry.stop();
    const seen = fetches;
    // 10, 20, 40, 40, … ms apart: about 7 in 250 ms, where a fixed 10 ms pace would make 25.
    expect(seen).to.be.within(3, 9);
    await sleep(60);
    expect(fetches).to.equal(seen);
  });
});
