/**
 * The contract of every row in the Check table (flow.ts): a step reads what earlier steps
 * found in the CheckState and adds to it, or refuses the request. A step never sees Envoy.
 */
import type { Authz, Denial, ShadowDenial } from '../domain/decision.js';
import type { Identity } from '../domain/identity.js';
import type { InboundRequest } from '../domain/request.js';
import type { Reservation, TokenPrice } from '../domain/reservation.js';
import type { PlanInput } from '../limits/admit.js';
import type { EndpointInfo } from '../request/endpoint.js';

export type StepName =
  | 'path'
  | 'authenticate'
  | 'whoami'
  | 'read-body'
  | 'authorize'
  | 'admit'
  | 'respond'
  | 'hand-off';

/** One row of the Check: a refusal ends the Check; nothing (undefined) passes to the next row. */
export interface CheckStep {
  readonly name: StepName;
  /**
   * Reported as a stage: its duration in `tollgate_stage_duration_*`, in the audit line's
   * `stages`, and as a span. The steps that can take time (a signature, a store call) are.
   */
  readonly reported: boolean;
  run(check: CheckState): Denial | undefined | Promise<Denial | undefined>;
}

/**
 * What the Check knows about one request so far. Steps fill it in table order; a step that
 * reads a field an earlier step should have set and finds none is a wiring bug, and the
 * Check fails closed (500) rather than guess.
 */
export class CheckState {
  readonly request: InboundRequest;
  /** Admission time, epoch milliseconds. */
  readonly now: number;
  /** Names the hand-off to ext_proc and the budget reservation (a UUID). */
  readonly handoffId: string;

  identity?: Identity;
  /** The verified bearer token, to keep it from reaching the upstream anywhere else. */
  token?: string;
  endpoint?: EndpointInfo;
  /** The JSON body's `model`, when it has a string one. */
  model?: string;
  /** The parsed JSON body, when the body is JSON. */
  body?: unknown;

  authz?: Authz;
  shadowDenied?: ShadowDenial;
  /** Tokens reserved in the request's budgets; settled by ext_proc. */
  reservation?: Reservation;
  /** Prompt tokens estimated for a metered request (0 when none). */
  promptEstimate = 0;
  /** Output limit per generation ext_proc must write into the request. */
  outputLimit?: number;
  /** What the request's model costs, when priced (cost budgets, usage lines, metrics). */
  price?: TokenPrice;

  /** Request headers to set (overwrite) toward the upstream. */
  readonly setHeaders: Record<string, string> = {};
  readonly removeHeaders: string[] = [];
  readonly removeQueryParams: string[] = [];
  /** Headers added to the downstream response (x-ratelimit-*). */
  readonly responseHeaders: Record<string, string> = {};
  /** JSON-able ext_authz dynamic metadata from the steps (access logs, ext_proc). */
  readonly metadata: Record<string, unknown> = {};
  /**
   * What to give back when the Check ends refused or failed after a step took something (the
   * admission's reservation and concurrency slots): run once by CheckFlow, never on an allow.
   */
  readonly undo: (() => Promise<void>)[] = [];

  constructor(request: InboundRequest, now: number, handoffId: string) {
    this.request = request;
    this.now = now;
    this.handoffId = handoffId;
  }

  /** The verified caller (set by `authenticate`). */
  get caller(): Identity {
    return present(this.identity, 'identity');
  }

  /** The endpoint catalogue's entry (set by `read-body`). */
  get catalogued(): EndpointInfo {
    return present(this.endpoint, 'endpoint');
  }

  /** What the limit and budget planners read. */
  planInput(): PlanInput {
    return {
      request: this.request,
      identity: this.caller,
      endpoint: this.catalogued,
      now: this.now,
      handoffId: this.handoffId,
      ...(this.model !== undefined ? { model: this.model } : {}),
      ...(this.body !== undefined ? { body: this.body } : {}),
    };
  }
}

function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`check step out of order: no ${what} yet`);
  return value;
}
