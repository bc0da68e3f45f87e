/**
 * `server.heapGrowingPercent`: the V8 option it sets is one this node accepts (V8 ignores an
 * unknown name passed at run time, so a typo would silently do nothing), and the key's range.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { heapGrowingFlag } from '../../../src/server/heap.js';
import { parseConfig } from '../../../src/config/load.js';
import { describeProblems, MINIMAL } from '../config/helpers.js';

const nodeAccepts = (flag: string): boolean =>
  spawnSync(process.execPath, [flag, '-e', '0'], { stdio: 'ignore' }).status === 0;

describe('server/heap: heapGrowingPercent', () => {
  it('sets an option this node knows (and node refuses one it does not)', () => {
    expect(heapGrowingFlag(30)).to.equal('--heap-growing-percent=30');
    expect(nodeAccepts(heapGrowingFlag(30))).to.equal(true);
    expect(nodeAccepts(heapGrowingFlag(0))).to.equal(true);
    expect(nodeAccepts('--heap-growing-percnt=30')).to.equal(false);
  });

  it('takes 0 (V8 adaptive) to 400, nothing else', () => {
    for (const ok of [0, 30, 400])
      expect(parseConfig(`${MINIMAL}server: { heapGrowingPercent: ${ok} }\n`).server.heapGrowingPercent).to.equal(ok);
    for (const bad of ['-1', '401', '1.5', 'auto']) {
      expect(describeProblems(`${MINIMAL}server: { heapGrowingPercent: ${bad} }\n`).join('\n')).to.match(/server\.heapGrowingPercent/);
    }
  });
});
