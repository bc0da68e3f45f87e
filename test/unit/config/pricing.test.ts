import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import { pricingFromConfig } from '../../../src/metering/prices.js';
import { describeProblems, MINIMAL } from './helpers.js';

describe('config/pricing and maxCost', () => {
  it('reads prices as exact pico-dollars per token from the decimal text, tiers and fallback included', () => {
    const cfg = parseConfig(`${MINIMAL}pricing:
  builtin: false
  unknownModel: { input: 1, output: 4.000001 }
  models:
    "gpt-4o*": { input: 2.50, cachedInput: "1.25", output: 10.00 }
    o3:
      input: 0.1
      output: 0.7
      reasoning: 8
      tiers: { flex: { input: 0.05, output: 0.35 } }
tokenBudgets:
  - { tenant: a, maxCost: 500, period: month }
  - { tenant: b, maxCost: 0.000001, maxTokens: 10, period: day }
`, 'test.yaml');
    expect(cfg.pricing).to.deep.equal({
      models: [
        { model: 'gpt-4o*', input: 2_500_000, cachedInput: 1_250_000, output: 10_000_000 },
        {
          model: 'o3',
          input: 100_000,
          output: 700_000,
          reasoning: 8_000_000,
          tiers: { flex: { input: 50_000, output: 350_000 } },
        },
      ],
      builtin: false,
      unknownModel: { input: 1_000_000, output: 4_000_001 },
    });
    expect(cfg.tokenBudgets.map((b) => [b.maxCostMicros, b.maxTokens])).to.deep.equal([
      [500_000_000, undefined],
      [1, 10],
    ]);
  });

  it('refuses prices and costs that are not exact decimals with at most six places', () => {
    const text = `${MINIMAL}pricing:
  builtin: maybe
  unknownModel: guess
  models:
    gpt-x: { input: 0.0000001, output: -1 }
    gpt-y: { output: 1, extra: 2 }
    gpt-z: { input: 1, output: 1, tiers: { flex: { input: abc, output: 1 } } }
tokenBudgets:
  - { tenant: a, maxCost: 0, period: day }
  - { tenant: b, maxCost: 1.5e3, period: day }
`;
    expect(describeProblems(text)).to.deep.equal([
      '4: pricing.builtin: expected true or false, got the string "maybe"',
      '5: pricing.unknownModel: expected `refuse` or a fallback price { input, output }, got "guess"',
      '7: pricing.models.gpt-x.input: has more than 6 decimal places: 0.0000001',
      '7: pricing.models.gpt-x.output: expected a decimal number such as 2.50, got the number -1',
      '8: pricing.models.gpt-y.extra: unknown key `extra` (expected one of: input, cachedInput, output, reasoning, tiers)',
      '8: pricing.models.gpt-y.input: is required',
      '9: pricing.models.gpt-z.tiers.flex.input: expected a decimal number such as 2.50, got the string "abc"',
      '11: tokenBudgets[0].maxCost: must be more than 0',
      '12: tokenBudgets[1].maxCost: expected a decimal number such as 2.50, got the number 1500',
    ]);
  });

  it('looks up operator prices before the built-in table, then the fallback', () => {
    const price = (yaml: string, model: string, tier?: string) =>
      pricingFromConfig(parseConfig(`${MINIMAL}${yaml}`, 't.yaml').pricing).price(model, tier);
    // No pricing: the built-in table, unknown models have no price.
    expect(price('', 'gpt-4o-mini')).to.deep.equal({ input: 150_000, cachedInput: 75_000, output: 600_000 });
    expect(price('', 'llama-3')).to.equal(undefined);
    const ours = `pricing:\n  models:\n    "gpt-4o-mini*": { input: 1, output: 2 }\n`;
    expect(price(ours, 'gpt-4o-mini')).to.deep.equal({ input: 1_000_000, output: 2_000_000 });
    expect(price(ours, 'gpt-4o')?.input).to.equal(2_500_000);
    const off = `pricing:\n  builtin: false\n  unknownModel: { input: 3, output: 4 }\n`;
    expect(price(off, 'gpt-4o')).to.deep.equal({ input: 3_000_000, output: 4_000_000 });
    expect(price('', 'o3', 'flex')?.input).to.equal(1_000_000);
  });
});
