/**
 * The contract of the response side (ext_proc), in plain TypeScript: one ResponsePhases per
 * HTTP request, told each phase in the order Envoy sends them. The stream loop that speaks
 * Envoy's protocol lives at the edge (edge/extproc-adapter.ts) and only dispatches to this.
 */
import type { Denial } from '../domain/decision.js';
import type { ProcessingModeSpec } from './mode.js';

/**
 * The request goes no further: Envoy answers the client with this denial (the OpenAI
 * envelope, rendered at the edge) instead of forwarding it.
 */
export interface Refusal {
  readonly denial: Denial;
  /** Shown as %RESPONSE_CODE_DETAILS% in Envoy's access log. */
  readonly details: string;
}

/** What to do with a headers message. Every field is optional; `{}` or `void` = continue. */
export interface HeaderAction {
  /** Request side only: refuse instead of forwarding; every other field is then ignored. */
  readonly refuse?: Refusal;
  /** Headers to set, overwriting any existing value (lower-case names). */
  readonly setHeaders?: Readonly<Record<string, string>>;
  readonly removeHeaders?: readonly string[];
  /**
   * Replace the whole body in this direction (CONTINUE_AND_REPLACE): Envoy applies it and
   * sends us nothing more in this direction.
   */
  readonly replaceBody?: Buffer;
  /**
   * Change what Envoy sends for the rest of this request. Merged onto the current mode and
   * sent complete, because Envoy takes both body modes from every override.
   */
  readonly modeOverride?: Partial<ProcessingModeSpec>;
}

/** What to do with one body message. `void` = pass the chunk unchanged. */
export interface BodyAction {
  /** Request side only: refuse instead of forwarding; every other field is then ignored. */
  readonly refuse?: Refusal;
  /** Replacement bytes for this chunk (STREAMED) or the whole body (BUFFERED); empty drops it. */
  readonly body?: Buffer;
  /**
   * Header mutations; Envoy honours them on a body answer only in BUFFERED mode (where a
   * rewritten request body needs a matching content-length).
   */
  readonly setHeaders?: Readonly<Record<string, string>>;
  readonly removeHeaders?: readonly string[];
}

type MaybePromise<T> = T | Promise<T>;

/** The phases of one request's response side; a missing method passes its phase through. */
export interface ResponsePhases {
  /** `metadata` is the ext_authz dynamic metadata of this request, as plain JSON (or `{}`). */
  requestHeaders?(
    headers: Record<string, string>,
    metadata: Record<string, unknown>,
    endOfStream: boolean,
  ): MaybePromise<HeaderAction | void>;
  /**
   * `metadata` as for requestHeaders: a filter that skips the request headers (a stream's,
   * handoff/stream-profile.ts) hands the hand-off over with the first message it does send.
   */
  requestBody?(chunk: Buffer, endOfStream: boolean, metadata?: Record<string, unknown>): MaybePromise<BodyAction | void>;
  responseHeaders?(
    headers: Record<string, string>,
    endOfStream: boolean,
    metadata?: Record<string, unknown>,
  ): MaybePromise<HeaderAction | void>;
  responseBody?(chunk: Buffer, endOfStream: boolean): MaybePromise<BodyAction | void>;
  /**
   * Called exactly once. `complete`: after the answer to the last response message Envoy will
   * send (body or headers with end_of_stream, trailers, or the response headers when the mode
   * sends no response body or trailers). `aborted`: the stream was cancelled, half-closed or
   * failed before that.
   */
  end?(outcome: 'complete' | 'aborted'): MaybePromise<void>;
}
