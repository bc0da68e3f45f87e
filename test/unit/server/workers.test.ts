/**
 * The pure parts of `server.workers`: how many processes `auto` means, how fast a dying
 * worker is forked again, which IPC messages are ours, and the pool's own series.
 */
import { expect } from 'chai';
import {
  RestartBackoff,
  isFromWorker,
  isToWorker,
  poolExposition,
  workerCount,
} from '../../../src/server/workers.js';
import { metricValue } from '../../helpers/prometheus.js';

describe('server/workers', () => {
  it('workerCount: a number as given, auto as one per available CPU (at least one)', () => {
    expect(workerCount(3, 8)).to.equal(3);
    expect(workerCount('auto', 8)).to.equal(8);
    expect(workerCount('auto', 0)).to.equal(1);
    expect(workerCount('auto')).to.be.at.least(1);
  });

  it('RestartBackoff doubles while workers die young, caps, and resets after a stable run', () => {
    const b = new RestartBackoff(100, 1000, 30_000);
    expect([10, 10, 10, 10, 10, 10].map((lived) => b.next(lived))).to.deep.equal([100, 200, 400, 800, 1000, 1000]);
    // One that lived past stableMs starts the series again.
    expect(b.next(30_000)).to.equal(100);
    expect(b.next(5)).to.equal(200);
  });

  it('tells our IPC messages from anything else on the channel', () => {
    expect(isFromWorker({ t: 'listening', address: '127.0.0.1:9001' })).to.equal(true);
    expect(isFromWorker({ t: 'config' })).to.equal(true);
    expect(isFromWorker({ t: 'answer', id: 3, ok: true, value: 'x' })).to.equal(true);
    expect(isFromWorker({ t: 'answer', id: '3', ok: true })).to.equal(false);
    expect(isFromWorker({ t: 'listening' })).to.equal(false);
    expect(isFromWorker({ cmd: 'NODE_CLUSTER' })).to.equal(false);
    expect(isFromWorker(null)).to.equal(false);
    expect(isToWorker({ t: 'stop' })).to.equal(true);
    expect(isToWorker({ t: 'config', text: 'server: {}' })).to.equal(true);
    expect(isToWorker({ t: 'config' })).to.equal(false);
    expect(isToWorker({ t: 'ask', id: 1, question: { kind: 'metrics' } })).to.equal(true);
    expect(isToWorker({ t: 'ask', id: 1 })).to.equal(false);
    expect(isToWorker('stop')).to.equal(false);
  });

  it('poolExposition reports the workers listening and the restarts', () => {
    const text = poolExposition({ live: 2, restarts: 3 });
    expect(metricValue(text, 'tollgate_workers')).to.equal(2);
    expect(metricValue(text, 'tollgate_worker_restarts_total')).to.equal(3);
    expect(text).to.match(/# TYPE tollgate_worker_restarts_total counter/);
  });
});
