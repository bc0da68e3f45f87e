/**
 * `pricing:` — what models cost, for `maxCost` budgets and the cost in usage lines and metrics.
 * Prices are USD per million tokens, read as exact decimals (at most six places) into integer
 * pico-dollars per token; metering/pricing.ts does the arithmetic.
 */
import { isMap } from 'yaml';
import { DEFAULT_PRICING, type ModelPricingConfig, type PriceConfig, type PricingConfig } from './schema.js';
import { isNull, readBoolean, readDecimal, readMap, readString, report, required, setOwn } from './validate-core.js';
import type { Cursor } from './validate-core.js';

/** USD per million tokens: six decimals (a millionth of a dollar per million tokens). */
const PRICE_PLACES = 6;
/** $10 000 per million tokens: far above any model, low enough that sums stay exact. */
const MAX_PRICE = 10_000 * 10 ** PRICE_PLACES;

const PRICE_KEYS = ['input', 'cachedInput', 'output', 'reasoning'] as const;

export function readPricing(cur: Cursor | undefined): PricingConfig | undefined {
  if (cur === undefined) return undefined;
  const f = readMap(cur, ['models', 'builtin', 'unknownModel'], true);
  if (f === undefined) return DEFAULT_PRICING;
  return {
    models: readModels(f.get('models')),
    builtin: readBoolean(f.get('builtin')) ?? DEFAULT_PRICING.builtin,
    unknownModel: readUnknownModel(f.get('unknownModel')) ?? DEFAULT_PRICING.unknownModel,
  };
}

/** `models: { <glob>: { input, cachedInput?, output, reasoning?, tiers? } }`, in file order. */
function readModels(cur: Cursor | undefined): ModelPricingConfig[] {
  if (cur === undefined) return [];
  const f = readMap(cur, undefined, true);
  if (f === undefined) return [];
  const out: ModelPricingConfig[] = [];
  for (const [model, item] of f) {
    if (model.trim() === '') {
      report(item, 'a model pattern must not be empty');
      continue;
    }
    const fields = readMap(item, [...PRICE_KEYS, 'tiers']);
    if (fields === undefined) continue;
    const price = readPrice(item, fields);
    const tiers = readTiers(fields.get('tiers'));
    if (price !== undefined) out.push({ model, ...price, ...(tiers !== undefined ? { tiers } : {}) });
  }
  return out;
}

function readTiers(cur: Cursor | undefined): Record<string, PriceConfig> | undefined {
  if (cur === undefined) return undefined;
  const f = readMap(cur);
  if (f === undefined) return undefined;
  const tiers: Record<string, PriceConfig> = {};
  for (const [tier, item] of f) {
    const fields = readMap(item, PRICE_KEYS);
    const price = fields !== undefined ? readPrice(item, fields) : undefined;
    if (price !== undefined) setOwn(tiers, tier, price);
  }
  return tiers;
}

function readPrice(parent: Cursor, f: ReadonlyMap<string, Cursor>): PriceConfig | undefined {
  const input = readDecimal(required(parent, f, 'input'), PRICE_PLACES, MAX_PRICE);
  const output = readDecimal(required(parent, f, 'output'), PRICE_PLACES, MAX_PRICE);
  const cachedInput = readDecimal(f.get('cachedInput'), PRICE_PLACES, MAX_PRICE);
  const reasoning = readDecimal(f.get('reasoning'), PRICE_PLACES, MAX_PRICE);
  if (input === undefined || output === undefined) return undefined;
  return {
    input,
    output,
    ...(cachedInput !== undefined ? { cachedInput } : {}),
    ...(reasoning !== undefined ? { reasoning } : {}),
  };
}

/** `refuse`, or a fallback price `{ input, output, … }`. */
function readUnknownModel(cur: Cursor | undefined): PricingConfig['unknownModel'] | undefined {
  if (cur === undefined || isNull(cur)) return undefined;
  if (isMap(cur.node)) {
    const f = readMap(cur, PRICE_KEYS);
    return f !== undefined ? readPrice(cur, f) : undefined;
  }
  const s = readString(cur);
  if (s === undefined) return undefined;
  if (s !== 'refuse') {
    report(cur, `expected \`refuse\` or a fallback price { input, output }, got ${JSON.stringify(s)}`);
    return undefined;
  }
  return 'refuse';
}
