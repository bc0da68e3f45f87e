/**
 * The built-in price table: OpenAI's published standard prices for its text models, in USD per
 * million tokens, as of OPENAI_PRICES_DATE. Prices change; an operator's `pricing.models`
 * entries are consulted before this table (docs/budgets.md), and `pricing.builtin: false`
 * switches it off. Update it by editing the rows below (and the date), never at run time.
 *
 * Columns: input, cached input ('' = no cache discount), output. Each family is listed by its
 * alias and its dated snapshots (`gpt-4o-2024-08-06`); fine-tuned models (`ft:<base>:…`) have
 * their own prices. Reasoning tokens are billed as output tokens by OpenAI, so no row prices
 * them apart. Tiers: `flex` and `priority` (the request's `service_tier`) where OpenAI
 * publishes them.
 */
import { parsePrice, type ModelPrice, type PriceEntry } from './pricing.js';

export const OPENAI_PRICES_DATE = '2026-12-01';

type Row = readonly [input: string, cachedInput: string, output: string];

function price([input, cached, output]: Row): ModelPrice {
  const p = (text: string): number => {
    const v = parsePrice(text);
    if (v === undefined) throw new Error(`openai-prices: bad price ${JSON.stringify(text)}`);
    return v;
  };
  return { input: p(input), ...(cached !== '' ? { cachedInput: p(cached) } : {}), output: p(output) };
}

interface Family {
  readonly names: readonly string[];
  readonly standard: Row;
  readonly flex?: Row;
  readonly priority?: Row;
}

const FAMILIES: readonly Family[] = [
  { names: ['gpt-5', 'gpt-5-20*', 'gpt-5-chat-latest', 'gpt-5.1', 'gpt-5.1-20*'], standard: ['1.25', '0.125', '10.00'], flex: ['0.625', '0.0625', '5.00'], priority: ['2.50', '0.25', '20.00'] },
  { names: ['gpt-5-mini', 'gpt-5-mini-20*'], standard: ['0.25', '0.025', '2.00'], flex: ['0.125', '0.0125', '1.00'], priority: ['0.45', '0.045', '3.60'] },
  { names: ['gpt-5-nano', 'gpt-5-nano-20*'], standard: ['0.05', '0.005', '0.40'], flex: ['0.025', '0.0025', '0.20'] },
  { names: ['gpt-4.1', 'gpt-4.1-20*'], standard: ['2.00', '0.50', '8.00'], priority: ['3.50', '0.875', '14.00'] },
  { names: ['gpt-4.1-mini', 'gpt-4.1-mini-20*'], standard: ['0.40', '0.10', '1.60'], priority: ['0.70', '0.175', '2.80'] },
  { names: ['gpt-4.1-nano', 'gpt-4.1-nano-20*'], standard: ['0.10', '0.025', '0.40'], priority: ['0.20', '0.05', '0.80'] },
  { names: ['gpt-4o', 'gpt-4o-20*'], standard: ['2.50', '1.25', '10.00'], priority: ['4.25', '2.125', '17.00'] },
  { names: ['chatgpt-4o-latest'], standard: ['5.00', '', '15.00'] },
  { names: ['gpt-4o-mini', 'gpt-4o-mini-20*'], standard: ['0.15', '0.075', '0.60'], priority: ['0.25', '0.125', '1.00'] },
  { names: ['o1', 'o1-20*'], standard: ['15.00', '7.50', '60.00'] },
  { names: ['o1-mini', 'o1-mini-20*', 'o3-mini', 'o3-mini-20*'], standard: ['1.10', '0.55', '4.40'] },
  { names: ['o3', 'o3-20*'], standard: ['2.00', '0.50', '8.00'], flex: ['1.00', '0.25', '4.00'], priority: ['3.50', '0.875', '14.00'] },
  { names: ['o4-mini', 'o4-mini-20*'], standard: ['1.10', '0.275', '4.40'], flex: ['0.55', '0.138', '2.20'], priority: ['2.00', '0.50', '8.00'] },
  { names: ['gpt-4-turbo', 'gpt-4-turbo-20*'], standard: ['10.00', '', '30.00'] },
  { names: ['gpt-4', 'gpt-4-0613'], standard: ['30.00', '', '60.00'] },
  { names: ['gpt-3.5-turbo', 'gpt-3.5-turbo-0125'], standard: ['0.50', '', '1.50'] },
  { names: ['gpt-3.5-turbo-instruct'], standard: ['1.50', '', '2.00'] },
  { names: ['ft:gpt-4o-mini*'], standard: ['0.30', '0.15', '1.20'] },
  { names: ['ft:gpt-4o-20*', 'ft:gpt-4o:*'], standard: ['3.75', '1.875', '15.00'] },
  { names: ['ft:gpt-4.1-mini*'], standard: ['0.80', '0.20', '3.20'] },
  { names: ['ft:gpt-4.1-nano*'], standard: ['0.20', '0.05', '0.80'] },
  { names: ['ft:gpt-4.1-20*', 'ft:gpt-4.1:*'], standard: ['3.00', '0.75', '12.00'] },
  { names: ['text-embedding-3-small'], standard: ['0.02', '', '0'] },
  { names: ['text-embedding-3-large'], standard: ['0.13', '', '0'] },
  { names: ['text-embedding-ada-002'], standard: ['0.10', '', '0'] },
];

export const OPENAI_PRICES: readonly PriceEntry[] = FAMILIES.flatMap((f) => {
  const tiers: Record<string, ModelPrice> = {};
  if (f.flex !== undefined) tiers['flex'] = price(f.flex);
  if (f.priority !== undefined) tiers['priority'] = price(f.priority);
  const standard = price(f.standard);
  return f.names.map((model) => ({ model, price: standard, ...(Object.keys(tiers).length > 0 ? { tiers } : {}) }));
});
