/**
 * The signing keys of one identity provider: caching, the unknown-`kid` refetch cooldown and stale serving while the IdP is down.
 *
 * Keys are selected here, never by the token: the token's `kid` and `alg` only pick among
 * keys the issuer published, and the verifier passes the provider's allow-list to jose.
 */
import type { CryptoKey, JWK } from 'jose';
import { importJWK } from 'jose/key/import';
import type { Algorithm, ProviderConfig } from '../config/schema.js';
import { AuthenticationError } from '../domain/errors.js';
import { describeValue } from './claims.js';
import { discoverJwksUri, fetchJson, type FetchFn } from './discovery.js';
import { getDocument } from './http-document.js';

export type { FetchFn } from './discovery.js';

/** Minimal logger shape (pino-compatible) so identity does not depend on telemetry. */
export interface IdentityLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface KeySourceOptions {
  /** Clock in epoch milliseconds (tests inject a fake one). */
  readonly now?: () => number;
  readonly fetch?: FetchFn;
  readonly logger?: IdentityLogger;
}

/** Counters for metrics and status pages. */
export interface KeySourceStats {
  /** Successful key-set fetches. */
  readonly refreshes: number;
  /** Failed discovery or key-set fetches. */
  readonly failures: number;
  /** Usable keys currently cached. */
  readonly keys: number;
  /** Epoch ms of the last successful fetch. */
  readonly lastSuccessAt?: number;
  readonly lastError?: string;
}

interface KeyEntry {
  readonly kid: string | undefined;
  readonly alg: string | undefined;
  readonly jwk: JWK;
  /** Imported CryptoKeys per algorithm, created on first use. */
  readonly imported: Map<string, Promise<CryptoKey>>;
}

// With no key ever fetched, a failed fetch is retried by the next request, but not more
// than once a second: requests then fail fast instead of each waiting for the timeout.
const UNAVAILABLE_RETRY_MS = 1000;

/** Which key type (and curve) can verify each algorithm. */
function fitsAlgorithm(jwk: JWK, alg: string): boolean {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return jwk.kty === 'RSA';
  if (alg === 'ES256') return jwk.kty === 'EC' && jwk.crv === 'P-256';
  if (alg === 'ES384') return jwk.kty === 'EC' && jwk.crv === 'P-384';
  if (alg === 'ES512') return jwk.kty === 'EC' && jwk.crv === 'P-521';
  if (alg === 'EdDSA') return jwk.kty === 'OKP' && (jwk.crv === 'Ed25519' || jwk.crv === 'Ed448');
  return false;
}

/**
 * Keep only the public members of an asymmetric signing key. Symmetric (`oct`) keys are never
 * imported: an HMAC key in a public JWKS is either a mistake or an attack. Private members
 * (`d`, `p`, …) are dropped so a misconfigured IdP cannot make us hold private material.
 */
function toEntry(raw: unknown): KeyEntry | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const k = raw as Record<string, unknown>;
  if (k.use !== undefined && k.use !== 'sig') return undefined;
  if (Array.isArray(k.key_ops) && !k.key_ops.includes('verify')) return undefined;
  const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
  let jwk: JWK;
  if (k.kty === 'RSA' && str(k.n) && str(k.e)) jwk = { kty: 'RSA', n: k.n, e: k.e };
  else if (k.kty === 'EC' && str(k.crv) && str(k.x) && str(k.y))
    jwk = { kty: 'EC', crv: k.crv, x: k.x, y: k.y };
  else if (k.kty === 'OKP' && str(k.crv) && str(k.x)) jwk = { kty: 'OKP', crv: k.crv, x: k.x };
  else return undefined;
  return {
    kid: typeof k.kid === 'string' ? k.kid : undefined,
    alg: typeof k.alg === 'string' ? k.alg : undefined,
    jwk,
    imported: new Map(),
  };
}

/** The key set of one provider. */
export class KeySource {
  readonly provider: ProviderConfig;
  readonly #now: () => number;
  readonly #fetch: FetchFn;
  readonly #logger: IdentityLogger | undefined;
  #jwksUri: string | undefined;
  #keys: readonly KeyEntry[] = [];
  #loaded = false;
  #inflight: Promise<void> | undefined;
  /** Start of the last fetch of any kind: paces retries and background refreshes. */
  #lastAttemptAt: number | undefined;
  /** Start of the last refetch an unknown `kid` caused: only these start the cooldown. */
  #lastKidRefetchAt: number | undefined;
  #lastSuccessAt: number | undefined;
  #lastError: string | undefined;
  #refreshes = 0;
  #failures = 0;

  constructor(provider: ProviderConfig, opts: KeySourceOptions = {}) {
    this.provider = provider;
    this.#now = opts.now ?? Date.now;
    this.#fetch = opts.fetch ?? getDocument;
    this.#logger = opts.logger;
    this.#jwksUri = provider.jwksUri;
  }

  /** True once a key set has been fetched at least once. */
  get ready(): boolean {
    return this.#loaded;
  }

  get stats(): KeySourceStats {
    return {
      refreshes: this.#refreshes,
      failures: this.#failures,
      keys: this.#keys.length,
      ...(this.#lastSuccessAt !== undefined ? { lastSuccessAt: this.#lastSuccessAt } : {}),
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
    };
  }

  /** Fetch the keys at start-up. Never throws: returns the error so the server still starts. */
  async prefetch(): Promise<Error | undefined> {
    try {
      await this.#refresh();
      return undefined;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  /**
   * The keys that may verify a token with this header. One key when the token names a `kid`;
   * every fitting key when it names none (the verifier tries them in turn).
   * Throws AuthenticationError: jwks_unavailable, unknown_kid or alg_not_allowed.
   */
  async keysFor(kid: string | undefined, alg: Algorithm): Promise<CryptoKey[]> {
    await this.#ensureLoaded();
    let found = this.#select(kid, alg);
    let refetchNote = '';
    if (found.length === 0 && !this.#hasKid(kid)) {
      const outcome = await this.#refetchForUnknownKid();
      found = this.#select(kid, alg);
      refetchNote = {
        refetched: ' (the key set was refetched)',
        failed: ' (the key set could not be refetched; cached keys were searched)',
        cooling: ` (it was refetched for an unknown kid less than ${this.provider.jwksCooldownSeconds}s ago)`,
      }[outcome];
    } else {
      this.#refreshIfStale();
    }
    if (found.length === 0) {
      const who = `provider ${describeValue(this.provider.name)}`;
      if (kid !== undefined && this.#hasKid(kid)) {
        const kinds = this.#keys
          .filter((k) => k.kid === kid)
          .map((k) => k.alg ?? `${k.jwk.kty} key`);
        throw new AuthenticationError(
          'alg_not_allowed',
          `key ${describeValue(kid)} of ${who} is for ${kinds.join('/')}, not ${alg}`,
        );
      }
      throw new AuthenticationError(
        'unknown_kid',
        kid === undefined
          ? `token has no kid and ${who} publishes no key for ${alg}${refetchNote}`
          : `no key with kid ${describeValue(kid)} in the key set of ${who}${refetchNote}`,
      );
    }
    return Promise.all(found.map((entry) => this.#import(entry, alg)));
  }

  #hasKid(kid: string | undefined): boolean {
    return kid !== undefined && this.#keys.some((k) => k.kid === kid);
  }

  #select(kid: string | undefined, alg: Algorithm): KeyEntry[] {
    return this.#keys.filter(
      (k) =>
        (kid === undefined || k.kid === kid) &&
        (k.alg === undefined || k.alg === alg) &&
        fitsAlgorithm(k.jwk, alg),
    );
  }

  #import(entry: KeyEntry, alg: string): Promise<CryptoKey> {
    let key = entry.imported.get(alg);
    if (key === undefined) {
      key = importJWK(entry.jwk, alg).then((k) => {
        if (k instanceof Uint8Array) throw new Error('symmetric key refused');
        return k;
      });
      // A key that fails to import (bad modulus, unsupported curve) must not stay cached as
      // a rejected promise forever; the next refresh replaces the entry anyway.
      key.catch(() => entry.imported.delete(alg));
      entry.imported.set(alg, key);
    }
    return key.catch((err: unknown) => {
      throw new AuthenticationError(
        'bad_signature',
        `key ${describeValue(entry.kid ?? '(no kid)')} cannot be used for ${alg}`,
        { cause: err },
      );
    });
  }

  /**
   * An unknown kid usually means the IdP rotated its keys: look again, then not before the
   * cooldown passed, so random kids cannot make us hammer the IdP. Only these refetches start
   * the cooldown: a start-up or background fetch just before a rotation must not delay it. A
   * fetch already in flight, of any kind, is joined rather than repeated, so concurrent
   * requests with new kids share one.
   */
  async #refetchForUnknownKid(): Promise<'refetched' | 'failed' | 'cooling'> {
    if (this.#inflight === undefined) {
      if (!this.#cooledSince(this.#lastKidRefetchAt)) return 'cooling';
      this.#lastKidRefetchAt = this.#now();
    }
    return this.#refresh().then(
      () => 'refetched' as const,
      () => 'failed' as const,
    );
  }

  /** True when `since` (epoch ms) is at least one cooldown ago, or never happened. */
  #cooledSince(since: number | undefined): boolean {
    return since === undefined || this.#now() - since >= this.provider.jwksCooldownSeconds * 1000;
  }

  async #ensureLoaded(): Promise<void> {
    if (this.#loaded) return;
    if (this.#inflight === undefined && this.#lastAttemptAt !== undefined) {
      const retryMs = Math.min(UNAVAILABLE_RETRY_MS, this.provider.jwksCooldownSeconds * 1000);
      if (this.#now() - this.#lastAttemptAt < retryMs) throw this.#unavailable();
    }
    try {
      await this.#refresh();
    } catch {
      throw this.#unavailable();
    }
  }

  #unavailable(): AuthenticationError {
    return new AuthenticationError(
      'jwks_unavailable',
      `the signing keys of provider ${describeValue(this.provider.name)} could not be fetched: ${this.#lastError ?? 'unknown error'}`,
    );
  }

  /** Past max age, refresh in the background; the current keys keep serving meanwhile. */
  #refreshIfStale(): void {
    if (this.#lastSuccessAt === undefined || this.#inflight !== undefined) return;
    const age = this.#now() - this.#lastSuccessAt;
    // While the IdP fails, retry at most once per cooldown, not on every request.
    if (
      age < this.provider.jwksCacheMaxAgeSeconds * 1000 ||
      !this.#cooledSince(this.#lastAttemptAt)
    )
      return;
    this.#refresh().catch(() => undefined);
  }

  /** One fetch at a time: concurrent callers share the same promise. */
  #refresh(): Promise<void> {
    this.#inflight ??= this.#load().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #load(): Promise<void> {
    this.#lastAttemptAt = this.#now();
    const timeoutMs = this.provider.jwksTimeoutMs;
    try {
      const uri =
        this.#jwksUri ?? (await discoverJwksUri(this.#fetch, this.provider.issuer, timeoutMs));
      this.#jwksUri = uri;
      const body = await fetchJson(this.#fetch, uri, timeoutMs, 'JWKS');
      const raw =
        typeof body === 'object' && body !== null ? (body as { keys?: unknown }).keys : undefined;
      if (!Array.isArray(raw)) throw new Error(`JWKS ${uri} has no "keys" array`);
      const keys = raw.map(toEntry).filter((k): k is KeyEntry => k !== undefined);
      // An empty or all-unusable set is treated as a failure: replacing good keys with
      // nothing would lock every user out on one bad IdP response.
      if (keys.length === 0)
        throw new Error(`JWKS ${uri} has no usable signature keys (RSA, EC or OKP)`);
      this.#keys = keys;
      this.#loaded = true;
      this.#refreshes += 1;
      this.#lastSuccessAt = this.#lastAttemptAt;
      this.#lastError = undefined;
      this.#logger?.info({ provider: this.provider.name, keys: keys.length }, 'jwks refreshed');
    } catch (err) {
      this.#failures += 1;
      this.#lastError = err instanceof Error ? err.message : String(err);
      this.#logger?.warn(
        { provider: this.provider.name, err: this.#lastError, stale: this.#loaded },
        this.#loaded ? 'jwks refresh failed; serving cached keys' : 'jwks fetch failed',
      );
      throw err;
    }
  }
}
