/**
 * Which ext_proc filter meters a request (DESIGN 1.9, docs/metering.md "Processing modes"):
 * the Check decides it from the body it already read and publishes it in its metadata, where
 * Envoy's matchers pick one of the filters. Every ext_proc message is a round trip Envoy waits
 * for, so a stream goes to a filter whose mode is fixed in Envoy and needs no round trip to be
 * chosen:
 *
 *   `edit`     a stream whose request body must be edited (`include_usage` injected, so the
 *              usage chunk must be removed again, or an output limit written): request body
 *              BUFFERED without the request-headers round trip, response body STREAMED and
 *              sent without waiting for the response-headers answer.
 *   `observe`  a stream nothing needs to edit (the client asked for usage itself, no limit to
 *              write): observability mode, Envoy never waits for Tollgate.
 *   undefined  anything else: the headers filter, which asks for bodies per request.
 */
import { endpointForPath } from '../request/endpoint.js';
import { hasOutputLimit } from '../metering/request-rewrite.js';

export type StreamProfile = 'edit' | 'observe';

/** The ext_authz metadata key Envoy's matchers read; absent for a request that does not stream. */
export const STREAM_PROFILE_KEY = 'stream';

/**
 * `body` is the parsed request body (or undefined), `injectUsage` and `outputLimit` what the
 * hand-off carries for it.
 */
export function streamProfile(
  path: string,
  body: unknown,
  injectUsage: boolean,
  outputLimit: number | undefined,
): StreamProfile | undefined {
  if (typeof body !== 'object' || body === null || (body as Record<string, unknown>)['stream'] !== true) return undefined;
  const endpoint = endpointForPath(path);
  if (endpoint !== 'chat' && endpoint !== 'completions' && endpoint !== 'responses') return undefined;
  if (injectUsage) return 'edit';
  return outputLimit !== undefined && hasOutputLimit(path) ? 'edit' : 'observe';
}
