import { expect } from 'chai';
import { OPENAI_PRICES } from '../../../src/metering/openai-prices.js';
import {
  costOfUsage,
  formatMicros,
  outputTokensWithin,
  parsePrice,
  priceTable,
  worstCaseCost,
  type ModelPrice,
  type PriceEntry,
} from '../../../src/metering/pricing.js';

const usd = (text: string): number => parsePrice(text)!;
const P = (input: string, output: string, cachedInput?: string, reasoning?: string): ModelPrice => ({
  input: usd(input),
  output: usd(output),
  ...(cachedInput !== undefined ? { cachedInput: usd(cachedInput) } : {}),
  ...(reasoning !== undefined ? { reasoning: usd(reasoning) } : {}),
});

describe('metering/pricing', () => {
  describe('parsePrice: USD per million tokens → pico-dollars per token', () => {
    it('reads decimals exactly, up to six places', () => {
      expect(parsePrice('2.50')).to.equal(2_500_000);
      expect(parsePrice('0.075')).to.equal(75_000);
      expect(parsePrice('0.000001')).to.equal(1);
      expect(parsePrice('10')).to.equal(10_000_000);
      expect(parsePrice('0')).to.equal(0);
      // 0.1 + 0.2 would drift as floats; here each is an exact integer.
      expect(parsePrice('0.1')! + parsePrice('0.2')!).to.equal(parsePrice('0.3'));
    });
    it('refuses what is not a plain non-negative decimal', () => {
      for (const bad of ['-1', '1e3', '0.0000001', '1,5', '', '.5', 'NaN', '12345678']) {
        expect(parsePrice(bad), bad).to.equal(undefined);
      }
    });
  });

  describe('lookup precedence', () => {
    const operator: PriceEntry[] = [
      { model: 'gpt-4o*', price: P('1', '1') },
      { model: 'gpt-4o-mini', price: P('2', '2') },
      { model: 'gpt-4o-mini-*', price: P('3', '3') },
      { model: 'ft:*', price: P('4', '4') },
      { model: 'ft:*', price: P('5', '5') },
    ];
    const builtin: PriceEntry[] = [
      { model: 'o3', price: P('6', '6'), tiers: { flex: P('0.5', '0.5') } },
      { model: 'gpt-4o-mini', price: P('7', '7') },
    ];
    const table = priceTable(operator, builtin);

    it('takes the most specific matching pattern, an exact name first', () => {
      expect(table.lookup('gpt-4o-mini')).to.deep.equal(P('2', '2'));
      expect(table.lookup('gpt-4o-mini-2024-07-18')).to.deep.equal(P('3', '3'));
      expect(table.lookup('gpt-4o')).to.deep.equal(P('1', '1'));
    });
    it('on equal specificity, the entry listed first', () => {
      expect(table.lookup('ft:gpt-4o:acme::abc')).to.deep.equal(P('4', '4'));
    });
    it('prices a model name too long to be remembered, every time', () => {
      const long = `gpt-4o-mini-2024-07-18${'x'.repeat(400)}`;
      for (let i = 0; i < 2; i++) expect(table.lookup(long)).to.deep.equal(P('3', '3'));
    });
    it('matches model names ignoring case, as model rules do', () => {
      expect(table.lookup('GPT-4O-Mini')).to.deep.equal(P('2', '2'));
    });
    it("consults the operator's entries before the built-in table, whatever their specificity", () => {
      expect(priceTable([{ model: '*', price: P('9', '9') }], builtin).lookup('o3')).to.deep.equal(P('9', '9'));
      expect(table.lookup('o3')).to.deep.equal(P('6', '6'));
    });
    it("uses the request's service tier where the entry prices it, else the standard price", () => {
      expect(table.lookup('o3', 'flex')).to.deep.equal(P('0.5', '0.5'));
      expect(table.lookup('o3', 'priority')).to.deep.equal(P('6', '6'));
    });
    it('reads only the entry\'s own tiers: a service_tier named like an object property is the standard price', () => {
      for (const tier of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']) {
        expect(table.lookup('o3', tier), tier).to.deep.equal(P('6', '6'));
        expect(table.lookup('gpt-4o', tier), tier).to.deep.equal(P('1', '1'));
      }
    });
    it('answers undefined for a model no table prices', () => {
      expect(table.lookup('claude-3')).to.equal(undefined);
      expect(priceTable().lookup('gpt-4o')).to.equal(undefined);
    });
  });

  describe('cost of each usage shape, in micro-dollars rounded up', () => {
    const gpt4o = P('2.50', '10.00', '1.25');
    it('chat / Responses: uncached input, cached input and output at their prices', () => {
      // 1,000 input of which 400 cached, 500 output: 600×2.5 + 400×1.25 + 500×10 = 7,000 µ$.
      expect(costOfUsage(gpt4o, { inputTokens: 1000, cachedInputTokens: 400, outputTokens: 500 })).to.equal(7000);
    });
    it('reasoning tokens at the output price unless priced apart', () => {
      const usage = { inputTokens: 0, outputTokens: 1000, reasoningTokens: 800 };
      expect(costOfUsage(gpt4o, usage)).to.equal(10_000);
      expect(costOfUsage(P('1', '10', undefined, '20'), usage)).to.equal(200 * 10 + 800 * 20);
    });
    it('embeddings: input only', () => {
      expect(costOfUsage(P('0.02', '0'), { inputTokens: 1_000_000, outputTokens: 0 })).to.equal(20_000);
    });
    it('no cache price: cached tokens cost the input price', () => {
      expect(costOfUsage(P('1', '1'), { inputTokens: 10, cachedInputTokens: 10, outputTokens: 0 })).to.equal(10);
    });
    it('rounds each cost up to a whole micro-dollar, never down', () => {
      const nano = P('0.05', '0.40', '0.005');
      expect(costOfUsage(nano, { inputTokens: 1, outputTokens: 0 })).to.equal(1); // 0.05 µ$
      expect(costOfUsage(nano, { inputTokens: 20, outputTokens: 0 })).to.equal(1); // exactly 1 µ$
      expect(costOfUsage(nano, { inputTokens: 21, outputTokens: 0 })).to.equal(2); // 1.05 µ$
      expect(costOfUsage(nano, { inputTokens: 0, outputTokens: 0 })).to.equal(0);
    });
    it('clamps a bogus breakdown to its total', () => {
      expect(costOfUsage(gpt4o, { inputTokens: 10, cachedInputTokens: 50, outputTokens: 0 })).to.equal(13); // 12.5 → 13
    });
    it('stays exact beyond 2^53 pico-dollars (a long context on a dear model)', () => {
      const dear = P('1000000', '1000000');
      // 10^9 tokens × 10^12 pico = 10^21 pico = 10^15 µ$.
      expect(costOfUsage(dear, { inputTokens: 1_000_000_000, outputTokens: 0 })).to.equal(1e15);
    });
    it('adds up exactly over 200,000 settlements', () => {
      const mini = P('0.15', '0.60', '0.075');
      let sum = 0;
      for (let i = 0; i < 200_000; i++) sum += costOfUsage(mini, { inputTokens: 40, outputTokens: 10 }); // 12 µ$ each
      expect(sum).to.equal(2_400_000);
      expect(formatMicros(sum)).to.equal("2.400000");
    });
  });

  describe('reservation arithmetic', () => {
    const price = P('2', '8', '0.5', '16');
    it('worst case: the prompt uncached, the output at the dearer of output and reasoning', () => {
      expect(worstCaseCost(price, 1000, 100)).to.equal(2000 + 1600);
    });
    it('output tokens within a room: the inverse of the worst case, rounded down', () => {
      expect(outputTokensWithin(price, 1000, 3600)).to.equal(100);
      expect(outputTokensWithin(price, 1000, 3615)).to.equal(100);
      expect(outputTokensWithin(price, 1000, 1999)).to.equal(0);
      expect(outputTokensWithin(P('1', '0'), 10, 100)).to.equal(Number.MAX_SAFE_INTEGER);
    });
  });

  it('formats micro-dollars as exact USD', () => {
    expect(formatMicros(0)).to.equal('0.000000');
    expect(formatMicros(1_234_567)).to.equal('1.234567');
    expect(formatMicros(500_000_000)).to.equal('500.000000');
  });

  describe('the built-in OpenAI table', () => {
    const table = priceTable(OPENAI_PRICES);
    it('prices aliases, dated snapshots and fine-tuned models', () => {
      expect(table.lookup('gpt-4o-mini')).to.deep.equal(P('0.15', '0.60', '0.075'));
      expect(table.lookup('gpt-4o-mini-2024-07-18')).to.deep.equal(P('0.15', '0.60', '0.075'));
      expect(table.lookup('gpt-4o-2024-08-06')).to.deep.equal(P('2.50', '10.00', '1.25'));
      expect(table.lookup('ft:gpt-4o-mini-2024-07-18:acme::a1b2')).to.deep.equal(P('0.30', '1.20', '0.15'));
      expect(table.lookup('text-embedding-3-small')).to.deep.equal(P('0.02', '0'));
      expect(table.lookup('o3', 'flex')).to.deep.equal(P('1.00', '4.00', '0.25'));
    });
    it('has no pattern listed twice', () => {
      const names = OPENAI_PRICES.map((e) => e.model);
      expect(new Set(names).size).to.equal(names.length);
    });
  });
});
