/**
 * Token verification: bearer extraction, size limit, structural checks, issuer → provider,
 * key lookup and jose verification with the provider's algorithm allow-list and skew, then
 * the claim mapping to an Identity. Every refusal is an AuthenticationError with a ReasonCode.
 */
// jose's entry points one by one: its index loads every JWE/JWK/JWKS module too (+1.7 MiB RSS).
import * as errors from 'jose/errors';
import { UnsecuredJWT } from 'jose/jwt/unsecured';
import type { ProviderConfig } from '../config/schema.js';
import { AuthenticationError } from '../domain/errors.js';
import type { Identity } from '../domain/identity.js';
import { describeValue } from './claims.js';
import { toIdentity } from './mapping.js';
import { signatureValid } from './signature.js';
import { KeySource, type FetchFn, type IdentityLogger, type KeySourceStats } from './jwks.js';
import { checkHeader, extractBearer, parseCompact, type UnverifiedToken } from './token.js';
import { DEFAULT_TOKEN_CACHE_BYTES, DEFAULT_TOKEN_CACHE_ENTRIES, tokenHash, VerifiedTokenCache } from './token-cache.js';

export interface AuthenticatorOptions {
  /** Clock in epoch milliseconds; drives exp/nbf checks, the token cache and JWKS cooldowns. */
  readonly now?: () => number;
  /** Verified-token cache entries (default 10,000; 0 disables the cache). */
  readonly cacheSize?: number;
  /** Verified-token cache memory bound, estimated bytes (default 32 MiB; see token-cache.ts). */
  readonly cacheBytes?: number;
  readonly fetch?: FetchFn;
  readonly logger?: IdentityLogger;
}

export interface AuthenticatorStats {
  /** Signature checks performed (cache misses that reached jose). */
  readonly verifications: number;
  readonly cacheHits: number;
  readonly cacheEntries: number;
  /** Estimated memory held by the verified-token cache. */
  readonly cacheBytes: number;
  readonly providers: readonly ({
    readonly name: string;
    readonly ready: boolean;
  } & KeySourceStats)[];
}

export interface PrefetchFailure {
  readonly provider: string;
  readonly error: Error;
}

const DEFAULT_MAX_TOKEN_BYTES = 8192;

/** `{"alg":"none"}`: the header UnsecuredJWT.decode wants around a payload it validates. */
const UNSIGNED_HEADER = Buffer.from('{"alg":"none"}').toString('base64url');

interface Provider {
  readonly config: ProviderConfig;
  readonly keys: KeySource;
}

function isoTime(epochSeconds: unknown): string {
  return typeof epochSeconds === 'number' && Number.isFinite(epochSeconds)
    ? new Date(epochSeconds * 1000).toISOString()
    : 'an invalid time';
}

/** Translate jose's failures into our reason codes with messages a user can act on. */
function mapJoseError(
  err: unknown,
  config: ProviderConfig,
  token: UnverifiedToken,
): AuthenticationError {
  if (err instanceof AuthenticationError) return err;
  const provider = describeValue(config.name);
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    const kid = token.header.kid;
    return new AuthenticationError(
      'bad_signature',
      `token signature does not verify with ${kid === undefined ? 'the keys' : `key ${describeValue(kid)}`} of provider ${provider}`,
    );
  }
  if (err instanceof errors.JWTExpired) {
    return new AuthenticationError(
      'token_expired',
      `token expired at ${isoTime(token.payload.exp)}`,
    );
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing')
      return new AuthenticationError('missing_claim', `token has no "${err.claim}" claim`);
    if (err.claim === 'nbf' && err.reason === 'check_failed') {
      return new AuthenticationError(
        'token_not_yet_valid',
        `token is not valid before ${isoTime(token.payload.nbf)}`,
      );
    }
    if (err.claim === 'aud') {
      return new AuthenticationError(
        'bad_audience',
        `token audience ${describeValue(token.payload.aud)} is not accepted by provider ${provider}`,
      );
    }
    if (err.claim === 'iss')
      return new AuthenticationError(
        'unknown_issuer',
        `token issuer does not match provider ${provider}`,
      );
    return new AuthenticationError(
      'malformed_token',
      `token claim "${err.claim}" is invalid: ${err.message}`,
    );
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new AuthenticationError(
      'alg_not_allowed',
      `token algorithm ${describeValue(token.header.alg)} is not allowed for provider ${provider}`,
    );
  }
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) {
    return new AuthenticationError('malformed_token', `token is invalid: ${err.message}`, {
      cause: err,
    });
  }
  // jose raises TypeError for keys it will not use (e.g. an RSA modulus under 2048 bits).
  return new AuthenticationError(
    'bad_signature',
    `token could not be verified with the keys of provider ${provider}`,
    { cause: err },
  );
}

/** Verifies bearer tokens against the configured providers. One instance per configuration. */
export class Authenticator {
  readonly #providers: readonly Provider[];
  readonly #now: () => number;
  readonly #cache: VerifiedTokenCache;
  readonly #inflight = new Map<string, Promise<{ identity: Identity; skew: number }>>();
  readonly #maxTokenBytes: number;
  readonly #logger: IdentityLogger | undefined;
  #verifications = 0;
  #cacheHits = 0;

  constructor(providers: readonly ProviderConfig[], opts: AuthenticatorOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#logger = opts.logger;
    const sourceOpts = {
      now: this.#now,
      ...(opts.fetch !== undefined ? { fetch: opts.fetch } : {}),
      ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
    };
    this.#providers = providers.map((config) => ({
      config,
      keys: new KeySource(config, sourceOpts),
    }));
    this.#cache = new VerifiedTokenCache(
      opts.cacheSize ?? DEFAULT_TOKEN_CACHE_ENTRIES,
      opts.cacheBytes ?? DEFAULT_TOKEN_CACHE_BYTES,
    );
    this.#maxTokenBytes =
      providers.length > 0
        ? Math.max(...providers.map((p) => p.maxTokenBytes))
        : DEFAULT_MAX_TOKEN_BYTES;
  }

  /**
   * Fetch every provider's keys. Never throws: failures are logged and returned, so the
   * server starts anyway and a later request retries the fetch.
   */
  async prefetch(): Promise<PrefetchFailure[]> {
    const results = await Promise.all(
      this.#providers.map(async (p) => ({
        provider: p.config.name,
        error: await p.keys.prefetch(),
      })),
    );
    const failures = results.filter((r): r is PrefetchFailure => r.error !== undefined);
    for (const f of failures)
      this.#logger?.warn(
        { provider: f.provider, err: f.error.message },
        'jwks prefetch failed; will retry on demand',
      );
    return failures;
  }

  /** True when every provider has fetched its keys at least once. */
  get ready(): boolean {
    return this.#providers.every((p) => p.keys.ready);
  }

  get stats(): AuthenticatorStats {
    return {
      verifications: this.#verifications,
      cacheHits: this.#cacheHits,
      cacheEntries: this.#cache.size,
      cacheBytes: this.#cache.bytes,
      providers: this.#providers.map((p) => ({
        name: p.config.name,
        ready: p.keys.ready,
        ...p.keys.stats,
      })),
    };
  }

  /** Verify the `authorization` header value; throws AuthenticationError when it does not verify. */
  async authenticate(authorization: string | undefined): Promise<Identity> {
    const token = extractBearer(authorization);
    // Before any parsing: an oversized token costs us nothing but this length check.
    const size = Buffer.byteLength(token, 'utf8');
    if (size > this.#maxTokenBytes) {
      throw new AuthenticationError(
        'token_too_large',
        `token is ${size} bytes; the limit is ${this.#maxTokenBytes}`,
      );
    }
    const hash = tokenHash(token);
    const cached = this.#cache.get(hash, this.#now() / 1000);
    if (cached !== undefined) {
      this.#cacheHits += 1;
      return cached;
    }
    // Concurrent requests with the same new token share one verification.
    let pending = this.#inflight.get(hash);
    if (pending === undefined) {
      pending = this.#verify(token, size).finally(() => this.#inflight.delete(hash));
      this.#inflight.set(hash, pending);
    }
    const { identity, skew } = await pending;
    this.#cache.set(hash, identity, skew, size);
    return identity;
  }

  async #verify(token: string, size: number): Promise<{ identity: Identity; skew: number }> {
    const parsed = parseCompact(token);
    const alg = checkHeader(parsed.header);
    const iss = parsed.payload.iss;
    if (iss === undefined)
      throw new AuthenticationError('missing_claim', 'token has no "iss" claim');
    if (typeof iss !== 'string')
      throw new AuthenticationError('malformed_token', 'token "iss" claim is not a string');
    const candidates = this.#providers.filter((p) => p.config.issuer === iss);
    if (candidates.length === 0) {
      throw new AuthenticationError(
        'unknown_issuer',
        `token issuer ${describeValue(iss)} is not a configured provider`,
      );
    }
    // Several providers may share an issuer with different audiences: the first that
    // accepts the token wins; an audience mismatch moves on to the next one.
    let failure: AuthenticationError | undefined;
    for (const provider of candidates) {
      try {
        const identity = await this.#verifyWith(provider, parsed, alg, size);
        return { identity, skew: provider.config.clockSkewSeconds };
      } catch (err) {
        failure = mapJoseError(err, provider.config, parsed);
        if (failure.code !== 'bad_audience') throw failure;
      }
    }
    throw failure ?? new AuthenticationError('unknown_issuer', 'no provider accepted the token');
  }

  async #verifyWith(
    provider: Provider,
    parsed: UnverifiedToken,
    alg: string,
    size: number,
  ): Promise<Identity> {
    const { config } = provider;
    if (size > config.maxTokenBytes) {
      throw new AuthenticationError(
        'token_too_large',
        `token is ${size} bytes; provider ${describeValue(config.name)} accepts at most ${config.maxTokenBytes}`,
      );
    }
    const allowed = config.algorithms.find((a) => a === alg);
    if (allowed === undefined) {
      throw new AuthenticationError(
        'alg_not_allowed',
        `algorithm ${describeValue(alg)} is not allowed for provider ${describeValue(config.name)} (allowed: ${config.algorithms.join(', ')})`,
      );
    }
    const kid = parsed.header.kid as string | undefined;
    const keys = await provider.keys.keysFor(kid, allowed);
    const nowMs = this.#now();
    // The signature in place with node:crypto (signature.ts); only a kid-less token has
    // several candidate keys, tried in turn.
    const { header, payload: body, signature } = parsed.parts;
    const signed = Buffer.from(signature, 'base64url');
    const signingInput = `${header}.${body}`;
    const verified = keys.some((key) => {
      this.#verifications += 1;
      return signatureValid(allowed, key, signingInput, signed);
    });
    if (!verified) throw new errors.JWSSignatureVerificationFailed();
    // The claims by jose's own claims-set check, on the payload exactly as signed: the same
    // validation jwtVerify applies after its signature check (the "none" header only carries
    // the payload there; the real header was checked above and in checkHeader).
    const { payload } = UnsecuredJWT.decode(`${UNSIGNED_HEADER}.${body}.`, {
      issuer: config.issuer,
      audience: [...config.audiences],
      requiredClaims: ['exp'],
      clockTolerance: config.clockSkewSeconds,
      currentDate: new Date(nowMs),
    });
    // jose checks iat only together with maxTokenAge; a token issued in the future is as
    // suspicious as one with a future nbf.
    if (typeof payload.iat === 'number' && payload.iat > nowMs / 1000 + config.clockSkewSeconds) {
      throw new AuthenticationError(
        'token_not_yet_valid',
        `token is issued in the future (iat ${isoTime(payload.iat)})`,
      );
    }
    return toIdentity(config, payload);
  }
}
