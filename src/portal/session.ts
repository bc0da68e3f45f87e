/**
 * The portal's server-side state: sessions and sign-ins in progress, each in a bounded map with a
 * time to live, under an id from `crypto.randomBytes` (256 bits). The browser holds only the id,
 * in an HttpOnly, SameSite=Lax cookie (Secure when the portal is served over https).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** An unguessable id: 32 random bytes, base64url. */
export function randomId(): string {
  return randomBytes(32).toString('base64url');
}

interface Entry<T> {
  readonly value: T;
  readonly expiresAt: number;
}

/**
 * Values under random ids, each until its own deadline (at most `ttlMs` after it was put). Past
 * `max` entries the oldest is dropped, so a flood of sign-ins cannot grow memory without bound.
 */
export class ExpiringMap<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(opts: { ttlMs: number; max: number; now?: () => number }) {
    this.ttlMs = opts.ttlMs;
    this.max = opts.max;
    this.now = opts.now ?? Date.now;
  }

  /** Stores `value` under a new id until `min(now + ttl, expiresAt)`. */
  put(value: T, expiresAt = Infinity): string {
    const id = randomId();
    this.sweep();
    while (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.entries.set(id, { value, expiresAt: Math.min(this.now() + this.ttlMs, expiresAt) });
    return id;
  }

  get(id: string | undefined): T | undefined {
    if (id === undefined) return undefined;
    const e = this.entries.get(id);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return e.value;
  }

  /** Removes and returns (a sign-in's state is used once). */
  take(id: string | undefined): T | undefined {
    const value = this.get(id);
    if (id !== undefined) this.entries.delete(id);
    return value;
  }

  /**
   * Replaces the value under a live id, keeping its deadline (a refreshed session stays bounded
   * by the time it was first put for); false when the id is gone or expired.
   */
  replace(id: string, value: T): boolean {
    const e = this.entries.get(id);
    if (e === undefined || e.expiresAt <= this.now()) return false;
    this.entries.set(id, { value, expiresAt: e.expiresAt });
    return true;
  }

  delete(id: string | undefined): void {
    if (id !== undefined) this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Drops expired entries from the front (insertion order ≈ expiry order). */
  private sweep(): void {
    const now = this.now();
    for (const [id, e] of this.entries) {
      if (e.expiresAt > now) break;
      this.entries.delete(id);
    }
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Constant-time comparison of a submitted CSRF token with the session's. */
export function csrfMatches(expected: string, submitted: string | undefined): boolean {
  return submitted !== undefined && submitted !== '' && timingSafeEqual(digest(expected), digest(submitted));
}

/** The cookies of a request (`Cookie` header), first value of each name. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name !== '' && !out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

export interface CookieOptions {
  readonly secure: boolean;
  /** Seconds; 0 deletes the cookie. */
  readonly maxAge: number;
}

/** A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https. */
export function setCookie(name: string, value: string, opts: CookieOptions): string {
  return [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax', `Max-Age=${opts.maxAge}`, ...(opts.secure ? ['Secure'] : [])].join('; ');
}

/** The session cookie's name: the `__Host-` prefix (no Domain, Path=/, Secure) when over https. */
export function cookieName(base: string, secure: boolean): string {
  return secure ? `__Host-${base}` : base;
}
