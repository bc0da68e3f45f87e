/**
 * What the Check hands to the same request's response side (DESIGN 1.9): nothing is held in
 * memory between the two calls. The Check writes the hand-off into its ext_authz dynamic
 * metadata, which Envoy forwards to ext_proc (`metadata_options.forwarding_namespaces`); the
 * response side decodes it from there. So the ext_proc stream may reach another process or
 * another replica than the Check did, and a reservation nobody settles (the request died
 * between the two) simply expires in the store (`metering.reservationTtlSeconds`).
 *
 * Compact and bounded: the keys the access log already reads (`requestId`, `subject`, `user`,
 * `provider`, `groups`, `tenant`, `model`) stay where they are, the hand-off id stays
 * `admission` (Envoy enables ext_proc on its presence), and the rest is one small object under
 * `handoff`. The request body does not travel: ext_proc reads it when it asks for it anyway,
 * and otherwise charges an aborted prompt at the Check's quick estimate.
 */
import type { Identity } from '../domain/identity.js';
import type { CounterUnit, Reservation, TokenPrice } from '../domain/reservation.js';

export interface Handoff {
  /** The hand-off id: also the budget reservation's id. */
  readonly id: string;
  readonly requestId: string;
  /**
   * The caller as the usage line, the metrics and the model-list filter need it: mapped user,
   * groups and tenant, and only the claims the rules read (for model lists).
   */
  readonly identity: Identity;
  readonly method: string;
  readonly path: string;
  readonly model?: string;
  /** Prompt tokens estimated at admission (0 when the endpoint is not metered). */
  readonly promptEstimate: number;
  readonly reservation?: Reservation;
  /**
   * What the model costs (pico-dollars per token), when it is priced: the usage is settled in
   * cost budgets and reported at the price it was admitted at, whatever a reload changes.
   */
  readonly price?: TokenPrice;
  /**
   * The output limit per generation (per choice) to write into the request before it goes
   * upstream: the budgets' cap, or the default when the request named none. Absent when the
   * request's own limit fits (or no budget applies): the body then goes unchanged.
   */
  readonly outputLimit?: number;
  /** The request streams chat/completions without asking for usage: ext_proc injects it. */
  readonly injectUsage: boolean;
  /**
   * A background Responses request: the output it may produce out of sight (its output
   * limit, metering/estimate.ts backgroundOutput), charged when no usage arrives.
   */
  readonly backgroundOutput?: number;
  /** Epoch ms of the Check. */
  readonly admittedAt: number;
}

/** The metadata key that carries the hand-off id; ext_proc is enabled on its presence. */
export const HANDOFF_KEY = 'admission';
/** The metadata key of the compact rest of the hand-off. */
const DETAILS_KEY = 'handoff';
/** Groups past this many bytes (encoded) are cut, whole names only: a bound on the metadata. */
export const MAX_GROUPS_BYTES = 8 * 1024;

/** The compact part, one-letter keys: it rides on every allowed request. */
interface Details {
  /** method, path */
  m: string;
  p: string;
  /** admittedAt, promptEstimate */
  at: number;
  pe: number;
  /** outputLimit */
  ol?: number;
  /** injectUsage */
  iu?: true;
  /** backgroundOutput */
  bo?: number;
  /**
   * reservation: [budget key, period end ms, amount reserved, budget name] per budget, with a
   * fifth `usd` for a cost budget's counter (the amount in micro-dollars), or `slot` for a
   * concurrency limit's slot (key expiry, 1, the limit's name)
   */
  r?: ([string, number, number, string] | [string, number, number, string, 'usd' | 'slot'])[];
  /** price: input, output, cached input, reasoning (pico-dollars per token) */
  pr?: { i: number; o: number; c?: number; r?: number };
  /** claims the rules read, for the model-list filter (model-list requests only) */
  c?: Record<string, unknown>;
}

/**
 * The metadata entries that carry `handoff`. `groups` is the identity headers' encoding of
 * the group list (identity/claims.ts) and is passed in so that it is made once per Check.
 */
export function encodeHandoff(handoff: Handoff, groups: string): Record<string, unknown> {
  const { identity, reservation } = handoff;
  const details: Details = { m: handoff.method, p: handoff.path, at: handoff.admittedAt, pe: handoff.promptEstimate };
  if (handoff.outputLimit !== undefined) details.ol = handoff.outputLimit;
  if (handoff.injectUsage) details.iu = true;
  if (handoff.backgroundOutput !== undefined) details.bo = handoff.backgroundOutput;
  if (reservation !== undefined && reservation.budgets.length > 0) {
    details.r = reservation.budgets.map((b, i) => {
      const entry: [string, number, number, string] = [b.key, b.expiresAtMs, reservation.reserved[i] ?? 0, reservation.names[i] ?? ''];
      const unit = reservation.units?.[i];
      return unit === 'usd' || unit === 'slot' ? [...entry, unit] : entry;
    });
  }
  const price = handoff.price;
  if (price !== undefined) {
    details.pr = {
      i: price.input,
      o: price.output,
      ...(price.cachedInput !== undefined ? { c: price.cachedInput } : {}),
      ...(price.reasoning !== undefined ? { r: price.reasoning } : {}),
    };
  }
  if (Object.keys(identity.claims).length > 0) details.c = { ...identity.claims };
  return {
    requestId: handoff.requestId,
    subject: identity.subject,
    user: identity.user,
    provider: identity.provider,
    groups,
    ...(identity.tenant !== undefined ? { tenant: identity.tenant } : {}),
    ...(handoff.model !== undefined ? { model: handoff.model } : {}),
    [HANDOFF_KEY]: handoff.id,
    [DETAILS_KEY]: details,
  };
}

/**
 * The hand-off in ext_authz metadata (as Envoy forwards it to ext_proc), or undefined when
 * there is none (a request Tollgate did not admit) or it is not well formed.
 */
export function decodeHandoff(metadata: Readonly<Record<string, unknown>>): Handoff | undefined {
  const id = metadata[HANDOFF_KEY];
  const d = metadata[DETAILS_KEY];
  if (typeof id !== 'string' || id === '' || !isRecord(d)) return undefined;
  const { m, p, at, pe } = d;
  if (typeof m !== 'string' || typeof p !== 'string' || !isCount(at) || !isCount(pe)) return undefined;
  const reservation = decodeReservation(id, d['r']);
  const price = decodePrice(d['pr']);
  if (reservation === null || price === null) return undefined;
  // A cost budget cannot be settled without the price it was reserved at.
  if (reservation?.units?.includes('usd') === true && price === undefined) return undefined;
  const str = (key: string): string | undefined => (typeof metadata[key] === 'string' ? (metadata[key]) : undefined);
  const identity: Identity = {
    provider: str('provider') ?? '',
    issuer: '',
    subject: str('subject') ?? '',
    user: str('user') ?? '',
    groups: decodeGroups(str('groups') ?? ''),
    ...(str('tenant') !== undefined ? { tenant: str('tenant') } : {}),
    claims: isRecord(d['c']) ? d['c'] : {},
    expiresAt: 0,
  };
  const model = str('model');
  return {
    id,
    requestId: str('requestId') ?? id,
    identity,
    method: m,
    path: p,
    ...(model !== undefined ? { model } : {}),
    promptEstimate: pe,
    ...(reservation !== undefined ? { reservation } : {}),
    ...(price !== undefined ? { price } : {}),
    ...(isCount(d['ol']) ? { outputLimit: d['ol'] } : {}),
    injectUsage: d['iu'] === true,
    ...(isCount(d['bo']) ? { backgroundOutput: d['bo'] } : {}),
    admittedAt: at,
  };
}

/** undefined: no reservation; null: one that is not well formed. */
function decodeReservation(id: string, value: unknown): Reservation | undefined | null {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) return null;
  const budgets: { key: string; expiresAtMs: number }[] = [];
  const reserved: number[] = [];
  const names: string[] = [];
  const units: CounterUnit[] = [];
  for (const entry of value) {
    if (!Array.isArray(entry) || entry.length > 5) return null;
    const [key, expiresAtMs, amount, name, unit] = entry as unknown[];
    if (typeof key !== 'string' || !isCount(expiresAtMs) || !isCount(amount) || typeof name !== 'string') return null;
    if (unit !== undefined && unit !== 'usd' && unit !== 'slot') return null;
    budgets.push({ key, expiresAtMs });
    reserved.push(amount);
    names.push(name);
    units.push(unit ?? 'tokens');
  }
  return { id, budgets, names, reserved, ...(units.some((u) => u !== 'tokens') ? { units } : {}) };
}

/** undefined: no price; null: one that is not well formed. */
function decodePrice(value: unknown): TokenPrice | undefined | null {
  if (value === undefined) return undefined;
  if (!isRecord(value)) return null;
  const { i, o, c, r } = value;
  if (!isCount(i) || !isCount(o) || (c !== undefined && !isCount(c)) || (r !== undefined && !isCount(r))) return null;
  return { input: i, output: o, ...(c !== undefined ? { cachedInput: c } : {}), ...(r !== undefined ? { reasoning: r } : {}) };
}

/** The identity headers' list encoding, read back: split on `,`, percent-decode each name. */
function decodeGroups(text: string): string[] {
  if (text === '') return [];
  return text.split(',').map((g) => {
    try {
      return decodeURIComponent(g);
    } catch {
      return g;
    }
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
