/**
 * What a request costs, in whole micro-dollars, from a price table (`pricing:`).
 *
 * Prices are read from the config as USD per million tokens with at most six decimals, and
 * kept as integers: USD per million tokens × 10⁶ = pico-dollars (10⁻¹² USD) per token. A cost
 * is then an exact integer sum of products (in BigInt when it passes 2⁵³ pico-dollars: a long
 * context on an expensive model), rounded UP to whole micro-dollars once per request and budget
 * — the unit the store counts in. Nothing is ever a float, so millions of settlements add up to
 * exactly the sum of their rounded costs; rounding up errs on the side of limiting, by less
 * than one micro-dollar per request.
 *
 * Lookup: entries are globs on the model name (ignoring case, as model rules do). The
 * operator's `pricing.models` are consulted first and the built-in table only when none of
 * them matches; within one table the most specific pattern wins — the one with the most
 * literal characters, then the one listed first. An exact name is the most specific of all.
 */
import type { TokenPrice } from '../domain/reservation.js';
import { compileGlobs, type GlobMatcher } from '../policy/glob.js';
import type { Usage } from './usage.js';

/** Pico-dollars per token (= USD per million tokens × 10⁶), integers. */
export type ModelPrice = TokenPrice;

export interface PriceEntry {
  /** A glob on the model name, e.g. `gpt-4o`, `gpt-4o-2024-*`, `ft:gpt-4o-mini:*`. */
  readonly model: string;
  readonly price: ModelPrice;
  /** Prices by the request's `service_tier` (`flex`, `priority`, …); others use `price`. */
  readonly tiers?: Readonly<Record<string, ModelPrice>>;
}

export interface PriceTable {
  /** The first table that has a matching entry decides. */
  lookup(model: string, serviceTier?: string): ModelPrice | undefined;
}

interface Compiled {
  readonly entry: PriceEntry;
  readonly match: GlobMatcher;
  readonly specificity: number;
}

function compile(entries: readonly PriceEntry[]): Compiled[] {
  return entries.map((entry, i) => ({
    entry,
    match: compileGlobs([entry.model], { ignoreCase: true }),
    // Literal characters count; an exact name outranks any glob of the same length. The index
    // keeps the sort stable: on a tie the entry listed first wins.
    specificity: (entry.model.replace(/[*?]/g, '').length * 2 + (/[*?]/.test(entry.model) ? 0 : 1)) * 100_000 - i,
  }));
}

/** Longest model name (with its service tier) whose price is remembered: a real one is far shorter. */
const MAX_CACHED_KEY_CHARS = 256;

/** A lookup over `tables`, in order: the first with any matching entry answers. */
export function priceTable(...tables: readonly (readonly PriceEntry[])[]): PriceTable {
  const compiled = tables.map((t) => compile(t).sort((a, b) => b.specificity - a.specificity));
  const cache = new Map<string, ModelPrice | null>();
  return {
    lookup(model, serviceTier) {
      const key = `${serviceTier ?? ''}\u0000${model}`;
      const hit = cache.get(key);
      if (hit !== undefined) return hit ?? undefined;
      let found: ModelPrice | undefined;
      for (const table of compiled) {
        const best = table.find((c) => c.match(model));
        if (best === undefined) continue;
        // The tier comes from the request body: only the table's own tiers, never `toString` & co.
        const tiers = best.entry.tiers;
        const tier = serviceTier !== undefined && tiers !== undefined && Object.hasOwn(tiers, serviceTier) ? tiers[serviceTier] : undefined;
        found = tier ?? best.entry.price;
        break;
      }
      // Model names come from requests: bounded in number and in length.
      if (key.length > MAX_CACHED_KEY_CHARS) return found;
      if (cache.size >= 1024) cache.clear();
      cache.set(key, found ?? null);
      return found;
    },
  };
}

const PICO_PER_MICRO = 1_000_000n;

/** Pico-dollars → micro-dollars, rounded up. */
function toMicros(pico: bigint): number {
  return Number((pico + PICO_PER_MICRO - 1n) / PICO_PER_MICRO);
}

/** What `usage` costs at `price`, in whole micro-dollars (rounded up). */
export function costOfUsage(price: ModelPrice, usage: Pick<Usage, 'inputTokens' | 'outputTokens' | 'cachedInputTokens' | 'reasoningTokens'>): number {
  const cached = Math.min(usage.cachedInputTokens ?? 0, usage.inputTokens);
  const reasoning = Math.min(usage.reasoningTokens ?? 0, usage.outputTokens);
  return picoToMicros([
    [usage.inputTokens - cached, price.input],
    [cached, price.cachedInput ?? price.input],
    [usage.outputTokens - reasoning, price.output],
    [reasoning, price.reasoning ?? price.output],
  ]);
}

/**
 * Σ tokens × pico-dollars per token, rounded up to micro-dollars. Plain numbers while every
 * product and the sum stay below 2⁵³ (integer arithmetic is exact there), BigInt beyond.
 */
function picoToMicros(terms: readonly (readonly [tokens: number, pico: number])[]): number {
  let sum = 0;
  for (const [tokens, pico] of terms) sum += tokens * pico;
  if (sum + 999_999 <= Number.MAX_SAFE_INTEGER) {
    const up = sum + 999_999;
    return (up - (up % 1_000_000)) / 1_000_000;
  }
  let big = 0n;
  for (const [tokens, pico] of terms) big += BigInt(tokens) * BigInt(pico);
  return toMicros(big);
}

/**
 * The most a request can cost, in micro-dollars, for its reservation: every prompt token at the
 * uncached input price and every output token at the dearer of output and reasoning.
 */
export function worstCaseCost(price: ModelPrice, promptTokens: number, outputTokens: number): number {
  return picoToMicros([
    [promptTokens, price.input],
    [outputTokens, Math.max(price.output, price.reasoning ?? 0)],
  ]);
}

/**
 * The most output tokens that fit `micros` after the prompt: what a `cap` budget may lower a
 * request's output limit to. 0 when not even the prompt fits.
 */
export function outputTokensWithin(price: ModelPrice, promptTokens: number, micros: number): number {
  const room = BigInt(micros) * PICO_PER_MICRO - BigInt(promptTokens) * BigInt(price.input);
  const out = BigInt(Math.max(price.output, price.reasoning ?? 0));
  if (room <= 0n) return 0;
  if (out === 0n) return Number.MAX_SAFE_INTEGER;
  return Number(room / out);
}

/**
 * USD per million tokens as written in the config (a decimal with at most six places) →
 * pico-dollars per token; undefined when the text is not such a decimal.
 */
export function parsePrice(text: string): number | undefined {
  const m = /^(\d{1,7})(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (m === null) return undefined;
  return Number(m[1]) * 1_000_000 + Number((m[2] ?? '').padEnd(6, '0'));
}

/** Micro-dollars as a USD decimal string (`1234567` → `"1.234567"`), exact. */
export function formatMicros(micros: number): string {
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  const whole = Math.floor(abs / 1_000_000);
  const frac = String(abs % 1_000_000).padStart(6, '0');
  return `${sign}${whole}.${frac}`;
}

/** Micro-dollars as USD with at least two decimals and no trailing zeros past them: `500.00`, `0.0123`. */
export function formatUsd(micros: number): string {
  return formatMicros(micros).replace(/(\.\d\d\d*?)0+$/, '$1');
}
