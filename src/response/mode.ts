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
