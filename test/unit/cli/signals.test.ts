/**
 * The first SIGTERM or SIGINT starts the polite stop; a second one while it runs exits at once,
 * through process.exit, so the 'exit' handlers that kill Envoy still run (Node's default action
 * for the signal would skip them).
 */
import { expect } from 'chai';
import { untilSignal } from '../../../src/cli/signals.js';

describe('cli: signals', () => {
  const signals = ['SIGTERM', 'SIGINT'] as const;
  let before: Map<string, NodeJS.SignalsListener[]>;
  const exit = Object.getOwnPropertyDescriptor(process, 'exit');

  beforeEach(() => {
    before = new Map(signals.map((s) => [s, process.listeners(s)]));
  });

  afterEach(() => {
    if (exit !== undefined) Object.defineProperty(process, 'exit', exit);
    // Leave the test process with exactly the signal listeners it had.
    for (const s of signals) {
      for (const l of process.listeners(s)) if (!before.get(s)?.includes(l)) process.off(s, l);
    }
  });

  it('resolves with the first signal; a second one exits at once with status 1', async () => {
    const exits: Array<number | string | null | undefined> = [];
    process.exit = ((code?: number | string | null) => {
      exits.push(code);
    }) as typeof process.exit;
    const first = untilSignal();
    process.emit('SIGTERM', 'SIGTERM');
    expect(await first).to.equal('SIGTERM');
    expect(exits).to.deep.equal([]);
    process.emit('SIGINT', 'SIGINT');
    expect(exits).to.deep.equal([1]);
  });
});
