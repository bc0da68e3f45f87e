/** The observability keys: `logging.sampleAllowed` and the `metrics:` section. */
import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/problems.js';

const MINIMAL = `authentication:
  - provider: { name: idp, issuer: https://idp.test, clientId: envoy }
`;

function problems(yaml: string): string[] {
  try {
    parseConfig(`${MINIMAL}${yaml}`);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

describe('config: observability keys', () => {
  it('leaves both unset by default (every allowed line logged, no per-user labels)', () => {
    const cfg = parseConfig(MINIMAL);
    expect(cfg.logging).to.deep.equal({ level: 'info' });
    expect(cfg.metrics).to.equal(undefined);
  });

  it('reads logging.sampleAllowed from 0 to 1', () => {
    expect(
      parseConfig(`${MINIMAL}logging: { level: warn, sampleAllowed: 0.25 }\n`).logging,
    ).to.deep.equal({
      level: 'warn',
      sampleAllowed: 0.25,
    });
    expect(parseConfig(`${MINIMAL}logging: { sampleAllowed: 0 }\n`).logging.sampleAllowed).to.equal(
      0,
    );
    expect(parseConfig(`${MINIMAL}logging: { sampleAllowed: 1 }\n`).logging.sampleAllowed).to.equal(
      1,
    );
  });

  it('refuses a sampling rate outside 0..1 or not a number', () => {
    expect(problems('logging: { sampleAllowed: 1.5 }\n')).to.deep.equal([
      'logging.sampleAllowed: expected a number from 0 to 1, got the number 1.5',
    ]);
    expect(problems('logging: { sampleAllowed: "half" }\n')).to.deep.equal([
      'logging.sampleAllowed: expected a number from 0 to 1, got the string "half"',
    ]);
    expect(problems('logging: { sampleAllowed: -0.1 }\n')).to.have.length(1);
  });

  it('reads the metrics section with its defaults', () => {
    expect(parseConfig(`${MINIMAL}metrics: {}\n`).metrics).to.deep.equal({
      perUserLabels: false,
      maxLabelValues: 100,
    });
    expect(
      parseConfig(`${MINIMAL}metrics: { perUserLabels: true, maxLabelValues: 500 }\n`).metrics,
    ).to.deep.equal({
      perUserLabels: true,
      maxLabelValues: 500,
    });
  });

  it('refuses wrong metrics values and unknown keys, with the path', () => {
    expect(problems('metrics: { perUserLabels: yes please, maxLabelValues: 0 }\n')).to.deep.equal([
      'metrics.perUserLabels: expected true or false, got the string "yes please"',
      'metrics.maxLabelValues: must be between 1 and 100000, got 0',
    ]);
    expect(problems('metrics: { perUserLabel: true }\n')[0]).to.match(
      /^metrics\.perUserLabel: unknown key .*perUserLabels/,
    );
    expect(problems('metrics: 9464\n')[0]).to.equal(
      'metrics: expected a mapping, got the number 9464',
    );
  });
});
