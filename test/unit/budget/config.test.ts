import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { describeProblems, MINIMAL } from '../config/helpers.js';

describe('budget/config keys', () => {
  it('reads tokenBudgets per tenant, group and user, and metering.reservationTtlSeconds', () => {
    const cfg = parseConfig(`${MINIMAL}
tokenBudgets:
  - { tenant: marketing, maxTokens: 100000, period: month }
  - { group: ml-team, maxTokens: 5000, period: day, timeZone: Europe/Berlin }
  - { user: ann@myorg.com, maxTokens: 100, period: hour }
metering: { defaultMaxOutputTokens: 512, reservationTtlSeconds: 120 }
`);
    expect(cfg.tokenBudgets).to.deep.equal([
      { tenant: 'marketing', maxTokens: 100000, period: 'month', timeZone: 'UTC' },
      { group: 'ml-team', maxTokens: 5000, period: 'day', timeZone: 'Europe/Berlin' },
      { user: 'ann@myorg.com', maxTokens: 100, period: 'hour', timeZone: 'UTC' },
    ]);
    expect(cfg.metering).to.deep.equal({ defaultMaxOutputTokens: 512, reservationTtlSeconds: 120 });
  });

  it('leaves reservationTtlSeconds unset by default and refuses nonsense', () => {
    expect(parseConfig(MINIMAL).metering.reservationTtlSeconds).to.equal(undefined);
    const problems = describeProblems(`${MINIMAL}metering: { reservationTtlSeconds: 1 }\n`);
    expect(problems).to.have.length(1);
    expect(problems[0]).to.match(/metering\.reservationTtlSeconds: must be between 10 and 604800, got 1/);
  });
});
