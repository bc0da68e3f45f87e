/**
 * The guard's deadline after a blocked event loop: a reply that is already waiting in the
 * socket when the loop wakes up must win over the timer that became due meanwhile.
 */
import { expect } from 'chai';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { GuardedStore } from '../../../src/store/guarded.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { Store } from '../../../src/store/store.js';
import { hitWindows } from '../../unit/store/admit-helpers.js';

const HIT = [{ key: 'k', limit: 10, windowMs: 60_000 }];
const TIMEOUT_MS = 20;

/** Blocks the event loop, as a burst of synchronous work on a saturated sidecar does. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

describe('GuardedStore deadline after a blocked event loop', () => {
  let server: Server;
  let client: Socket;
  let peer: Socket;

  before(async () => {
    server = createServer();
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    client = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    peer = await accepted;
  });

  after(async () => {
    client?.destroy();
    peer?.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  /** A primary whose answer arrives as socket data, like a Redis reply. */
  function socketPrimary(): Store {
    const inner = new MemoryStore();
    return {
      admit: (request, now) =>
        new Promise((resolve, reject) => {
          client.once('data', () => {
            inner.admit(request, now).then(resolve, reject);
          });
        }),
      settle: (...args) => inner.settle(...args),
      release: (...args) => inner.release(...args),
      readBudget: (...args) => inner.readBudget(...args),
      close: () => inner.close(),
    };
  }

  it('takes a reply that arrived while the loop was blocked past the deadline', async () => {
    const guarded = new GuardedStore(socketPrimary(), {
      timeoutMs: TIMEOUT_MS,
      onUnavailable: 'closed',
    });
    const call = hitWindows(guarded, HIT, 0);
    peer.write('+OK\r\n'); // the reply is in the client's socket buffer from here on
    blockFor(TIMEOUT_MS * 3); // the timer is long due when the loop wakes up
    const result = await call;
    expect(result.allowed).to.equal(true);
    expect(result.degraded).to.equal(undefined);
    expect(guarded.stats()).to.include({ errors: 0, timeouts: 0, state: 'closed' });
  });

  it('still times out a store that has not answered', async () => {
    const guarded = new GuardedStore(socketPrimary(), {
      timeoutMs: TIMEOUT_MS,
      onUnavailable: 'open',
    });
    const started = performance.now();
    const result = await hitWindows(guarded, HIT, 0);
    expect(result.degraded).to.equal('open');
    expect(performance.now() - started).to.be.below(TIMEOUT_MS + 500);
    expect(guarded.stats()).to.include({ errors: 1, timeouts: 1 });
    client.removeAllListeners('data');
  });
});
