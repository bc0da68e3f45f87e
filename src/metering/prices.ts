/**
 * `pricing:` as one lookup (docs/budgets.md): the operator's `models` first, then the dated
 * built-in table (metering/openai-prices.ts) unless `builtin: false`, then the `unknownModel`
 * fallback price when the operator gave one.
 */
import type { PriceConfig, PricingConfig } from '../config/schema.js';
import { OPENAI_PRICES } from './openai-prices.js';
import { priceTable, type ModelPrice, type PriceEntry } from './pricing.js';

/** What the configuration prices a model at: its tables, then the fallback (if any). */
export interface Pricing {
  /** Undefined when no table prices `model` and unknown models are refused. */
  price(model: string, serviceTier?: string): ModelPrice | undefined;
}

/** The lookup of a configuration; absent `pricing:` = the built-in table, unknown models refused. */
export function pricingFromConfig(config: PricingConfig | undefined): Pricing {
  const models = config?.models ?? [];
  const operator: PriceEntry[] = models.map((m) => ({
    model: m.model,
    price: priceOf(m),
    ...(m.tiers !== undefined ? { tiers: Object.fromEntries(Object.entries(m.tiers).map(([t, p]) => [t, priceOf(p)])) } : {}),
  }));
  const table = config?.builtin === false ? priceTable(operator) : priceTable(operator, OPENAI_PRICES);
  const unknown = config?.unknownModel;
  const fallback = unknown !== undefined && unknown !== 'refuse' ? priceOf(unknown) : undefined;
  return { price: (model, tier) => table.lookup(model, tier) ?? fallback };
}

function priceOf(p: PriceConfig): ModelPrice {
  return {
    input: p.input,
    output: p.output,
    ...(p.cachedInput !== undefined ? { cachedInput: p.cachedInput } : {}),
    ...(p.reasoning !== undefined ? { reasoning: p.reasoning } : {}),
  };
}

