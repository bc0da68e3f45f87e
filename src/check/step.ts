/**
 * The contract every post-authentication stage fulfils. A stage sees plain objects only.
 */
import type { Config } from '../config/schema.js';
import type { EndpointInfo } from '../request/endpoint.js';
import type { Reservation } from '../domain/reservation.js';
import type { Denial } from '../domain/decision.js';
import type { InboundRequest } from '../domain/request.js';
import type { Identity } from '../domain/identity.js';

/** Everything later stages know about an authenticated request. */
export interface RequestContext {
  readonly request: InboundRequest;
  readonly identity: Identity;
  /** The endpoint catalogue's entry for the request (request/endpoint.ts). */
  readonly endpoint: EndpointInfo;
  /** The JSON body's `model`, when the body is a JSON object with a string model. */
  readonly model?: string;
  /** The parsed JSON body, when the body is JSON. */
  readonly body?: unknown;
  /** Handoff time, epoch milliseconds. */
  readonly now: number;
  /**
   * The admission id the Gateway made for this request (a UUID): the key ext_proc finds the
   * admission by, and the budget reservation's id. Absent only where a stage runs outside the
   * Gateway (unit tests); the admission stage then makes its own.
   */
  readonly handoffId?: string;
  readonly config: Config;
}

/** What a stage adds to an allowed request. */
export interface StageGrant {
  /** Headers for the downstream response (x-ratelimit-*). */
  readonly responseHeaders?: Readonly<Record<string, string>>;
  /** Extra JSON-able metadata for ext_authz dynamic metadata (read again by ext_proc). */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** Request headers to set toward upstream. */
  readonly setHeaders?: Readonly<Record<string, string>>;
  /** Tokens reserved in the request's budgets (budget stage); settled by ext_proc. */
  readonly reservation?: Reservation;
  /** Prompt tokens estimated for a metered request (budget stage); see Handoff. */
  readonly promptEstimate?: number;
  /** Output limit per generation ext_proc must write into the request (budget stage). */
  readonly outputLimit?: number;
}

export type StageResult = { readonly ok: StageGrant } | { readonly deny: Denial };

export interface Stage {
  /** `admit` counts rate limits and token budgets together, in one store call (admit.ts). */
  readonly name: 'authorize' | 'admit';
  run(ctx: RequestContext): Promise<StageResult>;
}
