/**
 * A guarded output drops every write after its stream failed, so a logger whose reader died
 * (EPIPE) neither throws nor emits nor keeps writing; see test/e2e/stop.test.ts for the
 * processes this protects.
 */
import { Writable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { expect } from 'chai';
import { createLogger } from '../../../src/telemetry/logger.js';
import { guardOutput, type Sink } from '../../../src/telemetry/output.js';

/** A stream like stdout after its reader died: each write fails with EPIPE, the stream stays open. */
function deadPipe(): { stream: Writable; writes: () => number } {
  let writes = 0;
  const stream = new Writable({
    autoDestroy: false,
    write(_chunk: Buffer, _enc, cb) {
      writes++;
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' }));
    },
  });
  return { stream, writes: () => writes };
}

describe('telemetry: guarded output', () => {
  it('drops every line after the first failed write, without throwing or emitting', async () => {
    const pipe = deadPipe();
    const logger = createLogger({ destination: pipe.stream });
    logger.info('first');
    await tick();
    expect(guardOutput(pipe.stream).broken).to.equal(true);
    for (let i = 0; i < 100; i++)
      logger.error({ err: new Error('write EPIPE') }, 'uncaught exception');
    await tick();
    expect(pipe.writes()).to.equal(1);
  });

  it('a sink that throws on write is broken, and the write does not throw', () => {
    let calls = 0;
    const sink: Sink = {
      write() {
        calls++;
        throw new Error('SonicBoom destroyed');
      },
    };
    const output = guardOutput(sink);
    expect(() => output.write('a\n')).not.to.throw();
    output.write('b\n');
    expect(output.broken).to.equal(true);
    expect(calls).to.equal(1);
  });

  it('flush waits for the sink while it works, and calls back at once once it broke', () => {
    let pending: (() => void) | undefined;
    let onError: ((err: Error) => void) | undefined;
    const sink: Sink = {
      write() {},
      flush(cb) {
        pending = () => cb();
      },
      on(_event, listener) {
        onError = listener;
      },
    };
    const output = guardOutput(sink);
    let flushed = 0;
    output.flush(() => flushed++);
    expect(flushed).to.equal(0);
    pending?.();
    expect(flushed).to.equal(1);
    onError?.(new Error('write EBADF'));
    output.flush(() => flushed++);
    expect(flushed).to.equal(2);
  });

  it('one guard per stream, so the logger and the CLI agree on when it broke', () => {
    const { stream } = deadPipe();
    expect(guardOutput(stream)).to.equal(guardOutput(stream));
  });
});
