/**
 * ext_proc processing mode in plain TypeScript. The same value configures the Envoy bootstrap
 * (src/stack/bootstrap.ts) and is the base onto which per-request mode overrides are merged,
 * because Envoy takes both body modes from every override: an override must be complete.
 */
export type HeaderSendMode = 'default' | 'send' | 'skip';
export type BodySendMode = 'none' | 'streamed' | 'buffered' | 'buffered_partial';

export interface ProcessingModeSpec {
  readonly requestHeaders: HeaderSendMode;
  readonly responseHeaders: HeaderSendMode;
  readonly requestBody: BodySendMode;
  readonly responseBody: BodySendMode;
  readonly requestTrailers: HeaderSendMode;
  readonly responseTrailers: HeaderSendMode;
}

/**
 * Headers both ways, no bodies, no trailers: the mode configured in Envoy and given to the
 * gRPC server as the base for overrides. Bodies are asked for per request, only when needed.
 */
export const BASE_PROCESSING_MODE: ProcessingModeSpec = Object.freeze({
  requestHeaders: 'send',
  responseHeaders: 'send',
  requestBody: 'none',
  responseBody: 'none',
  requestTrailers: 'skip',
  responseTrailers: 'skip',
});

/**
 * The filter for streams whose request body is edited (handoff/stream-profile.ts `edit`): the
 * body without the request-headers round trip (the hand-off rides on the body message too),
 * and each response chunk held for Tollgate's answer, so the injected usage chunk can be
 * removed. Envoy sends the first chunk without waiting for the response-headers answer
 * (`send_body_without_waiting_for_header_response`), so the two round trips overlap; it then
 * ignores mode overrides, which this filter needs none of.
 */
export const STREAM_EDIT_PROCESSING_MODE: ProcessingModeSpec = Object.freeze({
  requestHeaders: 'skip',
  responseHeaders: 'send',
  requestBody: 'buffered',
  responseBody: 'streamed',
  requestTrailers: 'skip',
  responseTrailers: 'skip',
});

/**
 * The filter for streams nothing needs to edit (`observe`), in observability mode: Envoy sends
 * the request headers, the response headers and every chunk and never waits for an answer. The
 * request headers open the stream when the request starts, so a client that gives up before the
 * first byte ends a stream Tollgate sees (and charges the prompt estimate on) instead of none.
 */
export const STREAM_OBSERVE_PROCESSING_MODE: ProcessingModeSpec = Object.freeze({
  requestHeaders: 'send',
  responseHeaders: 'send',
  requestBody: 'none',
  responseBody: 'streamed',
  requestTrailers: 'skip',
  responseTrailers: 'skip',
});
