/**
 * What one request's response side knows as its phases run (flow.ts), and what it may ask of
 * the rest of Tollgate: the hand-off from the Check, the ledger, the rules for model lists.
 */
import type { SettleOutcome, ReleaseReason } from '../budgets/ledger.js';
import { deny } from '../domain/denials.js';
import type { Identity } from '../domain/identity.js';
import type { Handoff } from '../handoff/handoff.js';
import type { BodyDecoder } from '../metering/decode.js';
import type { ResponseMeter } from '../metering/meter.js';
import type { Usage } from '../metering/usage.js';
import type { Endpoint } from '../request/endpoint.js';
import type { BodySendMode } from './mode.js';
import type { ModelListRewriter } from './models.js';
import type { Refusal } from './phases.js';

/** What the response side needs from the budget ledger. Implementations must never throw. */
export interface UsageLedger {
  settle(handoff: Handoff, usage: Usage, outcome: SettleOutcome): void | Promise<void>;
  release(handoff: Handoff, reason: ReleaseReason, providerRequestId?: string): void | Promise<void>;
}

/** The authorization rules, for per-caller model lists (check/authorize.ts). */
export interface ModelPolicy {
  allowedModels(identity: Identity, candidates: readonly string[]): string[];
}

export interface ExchangeDeps {
  readonly ledger: UsageLedger;
  /** The current rules; undefined (or absent) leaves `/v1/models` unfiltered. */
  readonly modelPolicy?: () => ModelPolicy | undefined;
  readonly now?: () => number;
  /** Told about failures; the exchange itself carries on unmetered rather than fail the request. */
  readonly onError?: (err: unknown) => void;
}

export class ExchangeState {
  readonly deps: ExchangeDeps;
  /** What the Check handed over; absent for a request Tollgate did not admit. */
  handoff: Handoff | undefined;
  /** The request body's bytes, when this stream asked for it (to edit it) and it is small. */
  requestBody: Buffer | undefined;
  endpoint: Endpoint = 'other';
  /** The hand-off was looked for (request-side.ts pickUp); it is looked for once. */
  pickedUp = false;
  /** Picking it up failed after it was read, on a request that must carry an output limit. */
  pickUpFailed = false;
  /** The request body was asked for, to inject `include_usage` and/or write `outputLimit`. */
  rewriting = false;
  /** The output limit per generation to write; the request must not go upstream without it. */
  outputLimit: number | undefined;
  /** False only when the usage chunk is ours and must be removed from the stream. */
  clientWantsUsage = true;
  /** Set for a `GET …/models` whose list is filtered in the response body. */
  policy: ModelPolicy | undefined;
  list: ModelListRewriter | undefined;
  listMode: BodySendMode = 'none';
  meter: ResponseMeter | undefined;
  /** Decodes a compressed stream we must edit; the client then gets it identity-encoded. */
  decoder: BodyDecoder | undefined;
  readonly decoded: Buffer[] = [];
  /** The upstream's status; 0 until response headers arrive. */
  status = 0;
  /** The provider's own `x-request-id`, for the usage line. */
  providerRequestId: string | undefined;
  /** Settled or released: nothing more goes to the ledger. */
  closed = false;

  constructor(deps: ExchangeDeps) {
    this.deps = deps;
  }

  /** Gives the reservation back without a charge, once. */
  async release(reason: ReleaseReason): Promise<void> {
    const handoff = this.handoff;
    if (!handoff || this.closed) return;
    this.closed = true;
    await this.deps.ledger.release(handoff, reason, this.providerRequestId);
  }

  /**
   * Fail closed: the request must carry an output limit and cannot, so it is refused here
   * (500 internal_error) instead of reaching the upstream unbounded, and its reservation is
   * released.
   */
  refuseUnbounded(): Refusal {
    const handoff = this.handoff;
    if (handoff !== undefined && !this.closed) {
      this.closed = true;
      // Never throws (UsageLedger); caught anyway so a broken ledger cannot stop the answer.
      Promise.resolve(this.deps.ledger.release(handoff, 'not_forwarded')).catch((err: unknown) => this.report(err));
    }
    return {
      denial: deny(
        'internal_error',
        'Tollgate could not limit the output of this request to its token budget, so it was not sent.',
      ),
      details: 'tollgate_output_limit_not_written',
    };
  }

  report(err: unknown): void {
    try {
      this.deps.onError?.(err);
    } catch {
      // a failing reporter must not break the exchange
    }
  }
}
