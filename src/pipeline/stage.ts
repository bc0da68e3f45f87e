/**
 * The contract every post-authentication stage fulfils. A stage sees plain objects only.
 */
import type { Config } from '../config/schema.js';
import type { Denial, GatewayRequest, Identity } from './types.js';

/** Everything later stages know about an authenticated request. */
export interface RequestContext {
  readonly request: GatewayRequest;
  readonly identity: Identity;
  /** The JSON body's `model`, when the body is a JSON object with a string model. */
  readonly model?: string;
  /** The parsed JSON body, when the body is JSON. */
  readonly body?: unknown;
  /** Admission time, epoch milliseconds. */
  readonly now: number;
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
}

export type StageResult = { readonly ok: StageGrant } | { readonly deny: Denial };

export interface Stage {
  readonly name: 'authorize' | 'rate-limit' | 'budget-reserve';
  run(ctx: RequestContext): Promise<StageResult>;
}
