/**
 * Phases `request headers` and `request body`: pick up what the Check handed over (the
 * `admission` id in the forwarded ext_authz metadata), and make the request say what metering
 * needs — `stream_options.include_usage` on a streaming chat/completions request, and the
 * output limit a budget admitted (budgets/fit.ts). The limit is what keeps a request within
 * the tokens its budgets reserved, so writing it fails closed: a body that cannot carry it is
 * refused here and never reaches the upstream. The body is asked for (BUFFERED) only when an
 * edit is due.
 */
import { hasOutputLimit, injectsUsage, rewriteRequest } from '../metering/request-rewrite.js';
import { endpointForPath } from '../request/endpoint.js';
import { isModelList } from './models.js';
import type { BodyAction, HeaderAction } from './phases.js';
import type { ExchangeState } from './state.js';

/** The dynamic-metadata key (in the ext_authz namespace) that carries the hand-off id. */
export const HANDOFF_KEY = 'admission';

export function requestHeaders(
  x: ExchangeState,
  metadata: Record<string, unknown>,
  endOfStream: boolean,
): HeaderAction | void {
  try {
    const id = metadata[HANDOFF_KEY];
    if (typeof id !== 'string' || id === '') return; // not admitted by us: pass through
    const handoff = x.deps.handoffs.take(id);
    if (!handoff) return;
    x.handoff = handoff;
    x.endpoint = endpointForPath(handoff.path);
    if (isModelList(handoff.method, handoff.path)) x.policy = x.deps.modelPolicy?.();
    // A request without a body asks the model for nothing: there is nothing to bound.
    if (endOfStream) return;
    if (handoff.outputLimit !== undefined && hasOutputLimit(handoff.path)) x.outputLimit = handoff.outputLimit;
    // Decided on the parsed body; the edits are made on the bytes Envoy sends next.
    const inject = (x.endpoint === 'chat' || x.endpoint === 'completions') && injectsUsage(handoff.path, handoff.body);
    if (!inject && x.outputLimit === undefined) return;
    x.rewriting = true;
    if (inject) x.clientWantsUsage = false;
    return { modeOverride: { requestBody: 'buffered' } };
  } catch (err) {
    x.report(err);
    // Whatever failed, a request that must carry a limit does not go on without one.
    const h = x.handoff;
    if (h?.outputLimit !== undefined && hasOutputLimit(h.path) && !endOfStream) return { refuse: x.refuseUnbounded() };
  }
}

export function requestBody(x: ExchangeState, chunk: Buffer, endOfStream: boolean): BodyAction | void {
  const handoff = x.handoff;
  if (!x.rewriting || !handoff) return;
  x.rewriting = false;
  const limit = x.outputLimit;
  try {
    // BUFFERED sends the whole body at once; a partial one cannot be edited safely. Without
    // the injection the upstream then sends no usage chunk, so there is nothing to remove;
    // without the limit the request would be unbounded, so it goes no further.
    if (!endOfStream) return limit !== undefined ? { refuse: x.refuseUnbounded() } : undefined;
    // Splice into the bytes Envoy really holds, so every other byte stays the client's.
    const body = isObject(handoff.body) ? handoff.body : parseObject(chunk);
    const rewrite = rewriteRequest(handoff.path, body, chunk, limit !== undefined ? { outputLimit: limit } : {});
    if (rewrite.body === undefined) return;
    return { body: rewrite.body, setHeaders: { 'content-length': String(rewrite.body.length) } };
  } catch (err) {
    x.report(err);
    if (limit !== undefined) return { refuse: x.refuseUnbounded() };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON object in `bytes`, or undefined (then a limit cannot be written). */
function parseObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
