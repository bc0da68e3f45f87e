import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { describeProblems, MINIMAL } from './helpers.js';

describe('config: budget keys', () => {
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

  it('reads metering.dailyUsage (keepDays 0..400, an IANA zone), unset by default', () => {
    expect(parseConfig(MINIMAL).metering.dailyUsage).to.equal(undefined);
    expect(parseConfig(`${MINIMAL}metering: { dailyUsage: { keepDays: 0, timeZone: europe/berlin } }\n`).metering.dailyUsage).to.deep.equal({
      keepDays: 0,
      timeZone: 'Europe/Berlin',
    });
    expect(parseConfig(`${MINIMAL}metering: { dailyUsage: { timeZone: UTC } }\n`).metering.dailyUsage).to.deep.equal({ keepDays: 62, timeZone: 'UTC' });
    const problems = describeProblems(`${MINIMAL}metering:\n  dailyUsage: { keepDays: 500, timeZone: Mars/Olympus }\n`);
    expect(problems.map((p) => p.replace(/^\d+: /, ''))).to.have.members([
      'metering.dailyUsage.keepDays: must be between 0 and 400, got 500',
      'metering.dailyUsage.timeZone: unknown IANA time zone "Mars/Olympus" (for example UTC or Europe/Berlin)',
    ]);
  });

  it('reads metering.fitToBudget (refuse | cap), unset by default (= refuse)', () => {
    expect(parseConfig(MINIMAL).metering.fitToBudget).to.equal(undefined);
    expect(parseConfig(`${MINIMAL}metering: { fitToBudget: cap }\n`).metering).to.deep.equal({
      defaultMaxOutputTokens: 4096,
      fitToBudget: 'cap',
    });
    expect(parseConfig(`${MINIMAL}metering:\n  fitToBudget: refuse\n`).metering.fitToBudget).to.equal('refuse');
  });

  it('refuses another fitToBudget value with its path and line, suggesting the near miss', () => {
    const problems = describeProblems(`${MINIMAL}metering:\n  defaultMaxOutputTokens: 100\n  fitToBudget: caps\n`);
    expect(problems).to.have.length(1);
    expect(problems[0]).to.match(
      /^\d+: metering\.fitToBudget: expected one of refuse \| cap, got the string "caps"; did you mean `cap`\?$/,
    );
    const line = MINIMAL.split('\n').length + 2;
    expect(problems[0]?.startsWith(`${line}:`)).to.equal(true);
    expect(describeProblems(`${MINIMAL}metering: { fitToBuget: cap }\n`)).to.deep.equal([
      `${MINIMAL.split('\n').length}: metering.fitToBuget: unknown key \`fitToBuget\`; did you mean \`fitToBudget\`?`,
    ]);
  });
});
