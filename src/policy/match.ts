/**
 * `match:` blocks (authorization rules and rate limits) compiled once into predicates.
 *
 * A match is a conjunction: path, methods, models and every listed claim must all match; a
 * missing key means "any". Lists are "any of": a method, a model glob, a claim glob. An empty
 * list therefore matches nothing (fail closed rather than silently meaning "any").
 */
import type { RequestMatch } from '../config/schema.js';
import { claimStrings, trustedClaim } from '../identity/claims.js';
import type { Identity } from '../domain/identity.js';
import { compileGlobs, type GlobMatcher } from './glob.js';

/** What a match is evaluated against. */
export interface MatchInput {
  /** Request path without the query string (canonical: request/canonical.ts). */
  readonly path: string;
  readonly method: string;
  /** The JSON body's `model`, when it has one. */
  readonly model?: string;
  readonly identity: Identity;
  /**
   * The endpoint makes the provider run models the gate cannot judge or meter (batches,
   * Realtime, multipart audio, unknown endpoints: request/endpoint.ts). Not matched by rules;
   * read by the policy's default.
   */
  readonly indirect?: boolean;
}

/**
 * The outcome of one match. When matched, `claimsUsed` maps every claim key of the rule to
 * the caller's value that satisfied it (the first matching element of a list claim), so the
 * audit line can say why a rule applied.
 */
export type MatchResult =
  | { readonly matched: true; readonly claimsUsed: Readonly<Record<string, string>> }
  | { readonly matched: false };

/**
 * Why a match failed: the first condition (in evaluation order) the request did not meet.
 * Only computed for an explanation (`tollgate explain`); a live Check passes no sink.
 */
export interface MatchMiss {
  readonly field: 'path' | 'method' | 'model' | 'claim';
  /** The claim key, for a `claim` miss. */
  readonly key?: string;
  /** What the rule asks for (a path, methods, model globs or claim globs). */
  readonly wanted: readonly string[];
  /** What the request has (its path, method, model, or the caller's values of the claim). */
  readonly got: readonly string[];
}

/** `why` is told the first unmet condition of a failed match (explanations only). */
export type CompiledMatch = (input: MatchInput, why?: (miss: MatchMiss) => void) => MatchResult;

const NO_MATCH: MatchResult = Object.freeze({ matched: false });

/**
 * The caller's values for a claim key: `user`, `groups` and `tenant` are the provider's mapped
 * claims (already resolved at authentication); any other key is a claim path in the token.
 * An absent claim yields `[]`, which no glob matches (not even `*`).
 */
export function claimValues(identity: Identity, key: string): readonly string[] {
  switch (key) {
    case 'user':
      return [identity.user];
    case 'groups':
      return identity.groups;
    case 'tenant':
      return identity.tenant !== undefined ? [identity.tenant] : [];
    default:
      return claimStrings(trustedClaim(identity.claims, key));
  }
}

/**
 * Paths match regardless of letter case: a rule written for `/v1/batches*` must also hold for
 * `/V1/Batches` on an upstream that routes case-insensitively (on one that does not, the
 * request is a 404 anyway).
 */
function compilePath(path: string | undefined): ((p: string) => boolean) | undefined {
  if (path === undefined) return undefined;
  const lower = path.toLowerCase();
  if (lower.endsWith('*')) {
    const prefix = lower.slice(0, -1);
    return (p) => p.toLowerCase().startsWith(prefix);
  }
  return (p) => p.toLowerCase() === lower;
}

function compileMethods(
  methods: readonly string[] | undefined,
): ((m: string) => boolean) | undefined {
  if (methods === undefined) return undefined;
  const allowed = new Set(methods.map((m) => m.toUpperCase()));
  return (m) => allowed.has(m.toUpperCase());
}

/** Compile a `match:` block into a predicate. Call once per config, not per request. */
export function compileMatch(match: RequestMatch): CompiledMatch {
  const pathOk = compilePath(match.path);
  const methodOk = compileMethods(match.methods);
  // Model names match regardless of letter case, so `GPT-4o` meets the rule for `gpt-4o*`
  // whatever the provider makes of the capitals.
  const modelOk: GlobMatcher | undefined =
    match.models !== undefined ? compileGlobs(match.models, { ignoreCase: true }) : undefined;
  const claims: ReadonlyArray<readonly [string, GlobMatcher]> = Object.entries(match.claims).map(
    ([key, globs]) => [key, compileGlobs(globs)] as const,
  );

  const miss = (why: ((m: MatchMiss) => void) | undefined, m: MatchMiss): MatchResult => {
    why?.(m);
    return NO_MATCH;
  };
  return (input, why) => {
    // Cheapest checks first; claim paths may walk nested token objects.
    if (pathOk !== undefined && !pathOk(input.path))
      return miss(why, { field: 'path', wanted: [match.path ?? ''], got: [input.path] });
    if (methodOk !== undefined && !methodOk(input.method))
      return miss(why, { field: 'method', wanted: match.methods ?? [], got: [input.method] });
    if (modelOk !== undefined && (input.model === undefined || !modelOk(input.model)))
      return miss(why, { field: 'model', wanted: match.models ?? [], got: input.model !== undefined ? [input.model] : [] });
    const used: Array<[string, string]> = [];
    for (const [key, ok] of claims) {
      const values = claimValues(input.identity, key);
      const hit = values.find((value) => ok(value));
      if (hit === undefined)
        return miss(why, { field: 'claim', key, wanted: match.claims[key] ?? [], got: values });
      used.push([key, hit]);
    }
    // fromEntries defines own properties, so even a claim key like `__proto__` is recorded.
    return { matched: true, claimsUsed: Object.fromEntries(used) };
  };
}
