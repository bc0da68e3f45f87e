/**
 * Hands what ext_authz learned about a request (identity, model, body, budget reservation) to
 * the same request's ext_proc stream. One Tollgate serves one Envoy, so both calls reach this
 * process; the admission id travels in ext_authz dynamic metadata (`admission`), which Envoy
 * forwards to ext_proc. Entries left behind (a request that never reached ext_proc) are swept
 * after `ttlMs`; their budget reservations also expire in the store on their own.
 */
import type { Reservation } from '../domain/reservation.js';
import type { Identity } from '../domain/identity.js';

export interface Handoff {
  readonly id: string;
  readonly requestId: string;
  readonly identity: Identity;
  readonly method: string;
  readonly path: string;
  readonly model?: string;
  /**
   * The parsed JSON request body, when it was JSON. Not the raw text too: ext_proc edits the
   * bytes Envoy sends it, and an admission nobody takes waits here for minutes.
   */
  readonly body?: unknown;
  /** Prompt tokens estimated at admission (0 when the endpoint is not metered). */
  readonly promptEstimate: number;
  readonly reservation?: Reservation;
  /**
   * The output limit per generation (per choice) to write into the request before it goes
   * upstream: the budgets' cap, or the default when the request named none. Absent when the
   * request's own limit fits (or no budget applies): the body then goes unchanged.
   */
  readonly outputLimit?: number;
  /** Epoch ms of the Check. */
  readonly admittedAt: number;
}

export class Handoffs {
  private readonly entries = new Map<string, { handoff: Handoff; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly onExpire: ((handoff: Handoff) => void) | undefined;

  constructor(opts: { ttlMs?: number; now?: () => number; onExpire?: (handoff: Handoff) => void } = {}) {
    this.ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.now = opts.now ?? Date.now;
    this.onExpire = opts.onExpire;
  }

  put(handoff: Handoff): void {
    this.sweep();
    this.entries.set(handoff.id, { handoff, expiresAt: this.now() + this.ttlMs });
  }

  /** Removes and returns the admission; a second take of the same id returns undefined. */
  take(id: string): Handoff | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    return entry.handoff;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Drops expired entries. Map order is insertion order, so the scan stops at the first live one. */
  sweep(): void {
    const now = this.now();
    for (const [id, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.entries.delete(id);
      this.onExpire?.(entry.handoff);
    }
  }
}
