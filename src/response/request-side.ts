/**
 * Phases `request headers` and `request body`: pick up what the Check handed over (decoded
 * from the forwarded ext_authz metadata, handoff/handoff.ts), and make the request say what metering
 * needs — `stream_options.include_usage` on a streaming chat/completions request, and the
 * output limit a budget admitted (budgets/fit.ts). The limit is what keeps a request within
 * the tokens its budgets reserved, so writing it fails closed: a body that cannot carry it is
 * refused here and never reaches the upstream. The body is asked for (BUFFERED) only when an
 * edit is due.
 */
import { decodeHandoff } from '../handoff/handoff.js';
import { hasOutputLimit, rewriteRequest } from '../metering/request-rewrite.js';
import { endpointForPath } from '../request/endpoint.js';
import { isModelList } from '../request/endpoint.js';
import type { BodyAction, HeaderAction } from './phases.js';
import type { ExchangeState } from './state.js';

export function requestHeaders(
  x: ExchangeState,
  metadata: Record<string, unknown>,
  endOfStream: boolean,
): HeaderAction | void {
  // A request without a body asks the model for nothing: there is nothing to bound.
  if (!pickUp(x, metadata, !endOfStream)) return;
  if (x.pickUpFailed) return { refuse: x.refuseUnbounded() };
  return x.rewriting ? { modeOverride: { requestBody: 'buffered' } } : undefined;
}

/**
 * Picks up the hand-off from the first message that carries it (once): the request headers,
 * or for a stream's filter the request body or the response headers. `bodyFollows`: the
 * request body is still to come, so it is to be edited when the hand-off says so
 * (`x.rewriting`). False when there is no hand-off, or it failed and the request goes on.
 * Throws nothing: a request that must carry a limit and cannot is refused on its body.
 */
export function pickUp(x: ExchangeState, metadata: Record<string, unknown>, bodyFollows: boolean): boolean {
  if (x.pickedUp) return x.handoff !== undefined;
  x.pickedUp = true;
  try {
    const handoff = decodeHandoff(metadata);
    if (!handoff) return false; // not admitted by us: pass through
    x.handoff = handoff;
    x.endpoint = endpointForPath(handoff.path);
    if (isModelList(handoff.method, handoff.path)) x.policy = x.deps.modelPolicy?.();
    if (!bodyFollows) return true;
    if (handoff.outputLimit !== undefined && hasOutputLimit(handoff.path)) x.outputLimit = handoff.outputLimit;
    // Decided by the Check on the parsed body; the edits are made on the bytes Envoy sends next.
    const inject = (x.endpoint === 'chat' || x.endpoint === 'completions') && handoff.injectUsage;
    if (!inject && x.outputLimit === undefined) return true;
    x.rewriting = true;
    if (inject) x.clientWantsUsage = false;
    return true;
  } catch (err) {
    x.report(err);
    // Whatever failed, a request that must carry a limit does not go on without one.
    const h = x.handoff;
    if (h?.outputLimit !== undefined && hasOutputLimit(h.path) && bodyFollows) {
      x.outputLimit = h.outputLimit;
      x.rewriting = true;
      x.pickUpFailed = true;
      return true;
    }
    return false;
  }
}

export function requestBody(
  x: ExchangeState,
  chunk: Buffer,
  endOfStream: boolean,
  metadata: Record<string, unknown>,
): BodyAction | void {
  pickUp(x, metadata, true);
  const handoff = x.handoff;
  if (!x.rewriting || !handoff) return;
  x.rewriting = false;
  const limit = x.outputLimit;
  // The hand-off failed half-way (reported): the limit cannot be trusted to be written.
  if (x.pickUpFailed) return { refuse: x.refuseUnbounded() };
  try {
    // BUFFERED sends the whole body at once; a partial one cannot be edited safely. Without
    // the injection the upstream then sends no usage chunk, so there is nothing to remove;
    // without the limit the request would be unbounded, so it goes no further.
    if (!endOfStream) return limit !== undefined ? { refuse: x.refuseUnbounded() } : undefined;
    // Splice into the bytes Envoy really holds, so every other byte stays the client's; only
    // the small top-level members that decide the edits are parsed. A body small enough is
    // kept, so that a response ending without usage has its prompt counted (estimatePrompt).
    if (chunk.length <= MAX_KEPT_BODY_BYTES) x.requestBody = chunk;
    const rewrite = rewriteRequest(handoff.path, undefined, chunk, limit !== undefined ? { outputLimit: limit } : {});
    if (rewrite.body === undefined) return;
    return { body: rewrite.body, setHeaders: { 'content-length': String(rewrite.body.length) } };
  } catch (err) {
    x.report(err);
    if (limit !== undefined) return { refuse: x.refuseUnbounded() };
  }
}

/**
 * The largest request body kept for counting an aborted prompt: past it (inline images, long
 * contexts) the Check's quick estimate is charged instead of holding megabytes per stream.
 */
const MAX_KEPT_BODY_BYTES = 1024 * 1024;
