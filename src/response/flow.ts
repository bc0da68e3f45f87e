/**
 * The response side (ext_proc), as named phases in the order Envoy sends them. One
 * MeteringExchange per HTTP request: it picks up what the Check handed over, makes the
 * request report usage within its admitted output limit, meters the response, and settles
 * the hand-off with the ledger exactly once. Each phase's logic is a file of this folder; the
 * stream loop that speaks Envoy's protocol is at the edge (edge/extproc-adapter.ts).
 *
 *   request headers   request-side.ts   pick up the hand-off; ask for the body if it needs edits
 *                                       (a stream's filter skips this phase: the hand-off is picked
 *                                       up with the first message it sends, handoff/stream-profile.ts)
 *   request body      request-side.ts   inject include_usage, write the output limit (fail closed)
 *   response headers  response-side.ts  release on errors and unmetered endpoints; start the meter
 *   response body     response-side.ts  meter (decoding when needed), drop the injected usage chunk
 *   end               end.ts            settle: provider usage, or an estimate when cut short
 */
import type { BodyAction, HeaderAction, ResponsePhases } from './phases.js';
import { end } from './end.js';
import { requestBody, requestHeaders } from './request-side.js';
import { responseBody, responseHeaders } from './response-side.js';
import { ExchangeState, type ExchangeDeps } from './state.js';

export class MeteringExchange implements ResponsePhases {
  private readonly state: ExchangeState;

  constructor(deps: ExchangeDeps) {
    this.state = new ExchangeState(deps);
  }

  requestHeaders(_headers: Record<string, string>, metadata: Record<string, unknown>, endOfStream: boolean): HeaderAction | void {
    return requestHeaders(this.state, metadata, endOfStream);
  }

  requestBody(chunk: Buffer, endOfStream: boolean, metadata: Record<string, unknown> = {}): BodyAction | void {
    return requestBody(this.state, chunk, endOfStream, metadata);
  }

  responseHeaders(
    headers: Record<string, string>,
    endOfStream: boolean,
    metadata: Record<string, unknown> = {},
  ): Promise<HeaderAction | void> {
    return responseHeaders(this.state, headers, endOfStream, metadata);
  }

  responseBody(chunk: Buffer, endOfStream: boolean): Promise<BodyAction | void> {
    return responseBody(this.state, chunk, endOfStream);
  }

  end(outcome: 'complete' | 'aborted'): Promise<void> {
    return end(this.state, outcome);
  }
}

/** A fresh exchange per ext_proc stream (GrpcServerOptions.newExchange). */
export function exchangeFactory(deps: ExchangeDeps): () => ResponsePhases {
  return () => new MeteringExchange(deps);
}
