/**
 * Bounded LRU of verified tokens, keyed by the SHA-256 of the token so the cache never holds
 * a usable credential. A hit spares the signature check; expiry is re-checked on every hit.
 */
import { createHash } from 'node:crypto';
import type { Identity } from '../domain/identity.js';

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class VerifiedTokenCache {
  readonly #max: number;
  // A Map iterates in insertion order; re-inserting on a hit keeps the oldest entry first.
  readonly #entries = new Map<
    string,
    { readonly identity: Identity; readonly expiresAt: number }
  >();

  constructor(maxEntries: number) {
    this.#max = Math.max(0, Math.floor(maxEntries));
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The identity cached for `hash`, unless its token has expired by `nowSeconds`. */
  get(hash: string, nowSeconds: number): Identity | undefined {
    const entry = this.#entries.get(hash);
    if (entry === undefined) return undefined;
    this.#entries.delete(hash);
    if (entry.expiresAt <= nowSeconds) return undefined;
    this.#entries.set(hash, entry);
    return entry.identity;
  }

  /**
   * Remember a verified identity. It stays valid until `exp + skew`, the same instant jose
   * would start answering "expired".
   */
  set(hash: string, identity: Identity, skewSeconds: number): void {
    if (this.#max === 0) return;
    this.#entries.delete(hash);
    this.#entries.set(hash, { identity, expiresAt: identity.expiresAt + skewSeconds });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.#entries.clear();
  }
}
