import { expect } from 'chai';
import { formatResetDuration, retryAfterSeconds } from '../../../src/limits/rate-headers.js';

describe('formatResetDuration (Go duration strings, as OpenAI sends)', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [-5, '0s'],
    [Number.NaN, '0s'],
    [1, '1ms'],
    [9, '9ms'],
    [12, '12ms'],
    [12.2, '13ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [1050, '1.05s'],
    [1001, '1.001s'],
    [59_999, '59.999s'],
    [60_000, '1m0s'],
    [90_000, '1m30s'],
    [360_000, '6m0s'],
    [3_600_000, '1h0m0s'],
    [3_661_500, '1h1m1.5s'],
    [86_400_000, '24h0m0s'],
    [30 * 86_400_000, '720h0m0s'],
  ];
  for (const [ms, expected] of cases) {
    it(`${ms} ms → ${expected}`, () => {
      expect(formatResetDuration(ms)).to.equal(expected);
    });
  }
});

describe('retryAfterSeconds', () => {
  it('rounds up to whole seconds, at least 1', () => {
    expect([0, 1, 999, 1000, 1001, 59_500].map(retryAfterSeconds)).to.deep.equal([
      '1',
      '1',
      '1',
      '1',
      '2',
      '60',
    ]);
  });
});
