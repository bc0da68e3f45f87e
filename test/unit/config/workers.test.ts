import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { MINIMAL, describeProblems } from './helpers.js';

const REDIS = `store:
  redis: { url: "redis://127.0.0.1:6379" }
`;

describe('config: server.workers', () => {
  it('defaults to 1 (one process, no cluster)', () => {
    expect(parseConfig(MINIMAL).server.workers).to.equal(1);
  });

  it('takes a number or auto when the counters live in Redis', () => {
    expect(parseConfig(`${MINIMAL}server: { workers: 4 }\n${REDIS}`).server.workers).to.equal(4);
    expect(parseConfig(`${MINIMAL}server: { workers: auto }\n${REDIS}`).server.workers).to.equal('auto');
  });

  it('takes 1 with the memory store', () => {
    expect(parseConfig(`${MINIMAL}server: { workers: 1 }\n`).server.workers).to.equal(1);
  });

  it('refuses more than one worker with the memory store, at server.workers', () => {
    expect(describeProblems(`${MINIMAL}server: { workers: 2 }\n`)).to.deep.equal([
      '3: server.workers: 2 workers need `store.redis`: the memory store counts in one process, so limits and budgets would be multiplied by the workers (use 1 worker, or configure store.redis)',
    ]);
    expect(describeProblems(`${MINIMAL}server:\n  workers: auto\n`)).to.deep.equal([
      '4: server.workers: `auto` workers need `store.redis`: the memory store counts in one process, so limits and budgets would be multiplied by the workers (use 1 worker, or configure store.redis)',
    ]);
  });

  it('refuses values that are not auto or 1-256', () => {
    expect(describeProblems(`${MINIMAL}server: { workers: 0 }\n${REDIS}`)).to.deep.equal([
      '3: server.workers: must be between 1 and 256, got 0',
    ]);
    expect(describeProblems(`${MINIMAL}server: { workers: 1.5 }\n${REDIS}`)).to.deep.equal([
      '3: server.workers: expected an integer, got the number 1.5',
    ]);
    expect(describeProblems(`${MINIMAL}server: { workers: all }\n${REDIS}`)).to.deep.equal([
      '3: server.workers: expected `auto` or a number of processes (1-256), got the string "all"',
    ]);
  });
});
