/**
 * ext_proc processing mode in plain TypeScript. The same value configures the Envoy bootstrap
 * (`src/stack/envoy.ts`) and is the base onto which per-request mode overrides are merged,
 * because Envoy takes both body modes from every override: an override must be complete.
 */
import type { ProcessingModeMessage } from './protos.js';

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

/** Headers both ways, no bodies, no trailers: what the local bootstrap uses by default. */
export const DEFAULT_PROCESSING_MODE: ProcessingModeSpec = Object.freeze({
  requestHeaders: 'send',
  responseHeaders: 'send',
  requestBody: 'none',
  responseBody: 'none',
  requestTrailers: 'skip',
  responseTrailers: 'skip',
});

const HEADER_NUMBERS: Readonly<Record<HeaderSendMode, number>> = { default: 0, send: 1, skip: 2 };
const BODY_NUMBERS: Readonly<Record<BodySendMode, number>> = {
  none: 0,
  streamed: 1,
  buffered: 2,
  buffered_partial: 3,
};

/** Spec → the proto message (enum numbers). */
export function toModeMessage(mode: ProcessingModeSpec): ProcessingModeMessage {
  return {
    request_header_mode: HEADER_NUMBERS[mode.requestHeaders],
    response_header_mode: HEADER_NUMBERS[mode.responseHeaders],
    request_body_mode: BODY_NUMBERS[mode.requestBody],
    response_body_mode: BODY_NUMBERS[mode.responseBody],
    request_trailer_mode: HEADER_NUMBERS[mode.requestTrailers],
    response_trailer_mode: HEADER_NUMBERS[mode.responseTrailers],
  };
}

/** Spec → the Envoy bootstrap's JSON/YAML form (enum names). */
export function toModeConfig(mode: ProcessingModeSpec): Record<string, string> {
  return {
    request_header_mode: mode.requestHeaders.toUpperCase(),
    response_header_mode: mode.responseHeaders.toUpperCase(),
    request_body_mode: mode.requestBody.toUpperCase(),
    response_body_mode: mode.responseBody.toUpperCase(),
    request_trailer_mode: mode.requestTrailers.toUpperCase(),
    response_trailer_mode: mode.responseTrailers.toUpperCase(),
  };
}
