/**
 * Bounded LRU of verified tokens, keyed by the SHA-256 of the token so the cache never holds
 * a usable credential. A hit spares the signature check; expiry is re-checked on every hit.
 *
 * Bounded twice: by entries, and by an estimate of the memory they hold, because one entry
 * keeps the token's whole verified payload (claims of any size up to `maxTokenBytes`). The
 * estimate is `ENTRY_OVERHEAD_BYTES + 2 × token bytes`: measured on V8, an entry costs about
 * 600 bytes plus 1–1.5 bytes per byte of payload JSON, and the payload is at most three
 * quarters of the token; the factor leaves room for claims made of many short values.
 */
import { createHash } from 'node:crypto';
import type { Identity } from '../domain/identity.js';

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Default entry bound of the verified-token cache. */
export const DEFAULT_TOKEN_CACHE_ENTRIES = 10_000;
/** Default memory bound of the verified-token cache (estimated bytes, see the file comment). */
export const DEFAULT_TOKEN_CACHE_BYTES = 32 * 1024 * 1024;
/** Fixed cost of one entry: the map slot, the hash string, the entry and identity objects. */
export const ENTRY_OVERHEAD_BYTES = 640;

/** The memory one cached identity is charged, from the size of its token. */
export function entryBytes(tokenBytes: number): number {
  return ENTRY_OVERHEAD_BYTES + 2 * tokenBytes;
}

interface Entry {
  readonly identity: Identity;
  readonly expiresAt: number;
  readonly bytes: number;
}

export class VerifiedTokenCache {
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;
  // A Map iterates in insertion order; re-inserting on a hit keeps the oldest entry first.
  readonly #entries = new Map<string, Entry>();

  constructor(maxEntries: number, maxBytes = DEFAULT_TOKEN_CACHE_BYTES) {
    this.#maxEntries = Math.max(0, Math.floor(maxEntries));
    this.#maxBytes = Math.max(0, Math.floor(maxBytes));
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The estimated memory held by the entries (see entryBytes). */
  get bytes(): number {
    return this.#bytes;
  }

  /** The identity cached for `hash`, unless its token has expired by `nowSeconds`. */
  get(hash: string, nowSeconds: number): Identity | undefined {
    const entry = this.#entries.get(hash);
    if (entry === undefined) return undefined;
    this.#entries.delete(hash);
    if (entry.expiresAt <= nowSeconds) {
      this.#bytes -= entry.bytes;
      return undefined;
    }
    this.#entries.set(hash, entry);
    return entry.identity;
  }

  /**
   * Remember a verified identity. It stays valid until `exp + skew`, the same instant jose
   * would start answering "expired". `tokenBytes` is the size of the token it came from; an
   * entry that alone exceeds the memory bound is not cached.
   */
  set(hash: string, identity: Identity, skewSeconds: number, tokenBytes: number): void {
    const bytes = entryBytes(tokenBytes);
    if (this.#maxEntries === 0 || bytes > this.#maxBytes) return;
    this.#delete(hash);
    this.#entries.set(hash, { identity, expiresAt: identity.expiresAt + skewSeconds, bytes });
    this.#bytes += bytes;
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#delete(oldest.value);
    }
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #delete(hash: string): void {
    const entry = this.#entries.get(hash);
    if (entry === undefined) return;
    this.#entries.delete(hash);
    this.#bytes -= entry.bytes;
  }
}
