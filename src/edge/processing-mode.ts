/** The processing mode (response/mode.ts) as the ext_proc proto message. */
import type { BodySendMode, HeaderSendMode, ProcessingModeSpec } from '../response/mode.js';
import type { ProcessingModeMessage } from './protos.js';

const HEADER_NUMBERS: Readonly<Record<HeaderSendMode, number>> = { default: 0, send: 1, skip: 2 };
const BODY_NUMBERS: Readonly<Record<BodySendMode, number>> = {
  none: 0,
  streamed: 1,
  buffered: 2,
  buffered_partial: 3,
};

const BODY_MODES: readonly BodySendMode[] = ['none', 'streamed', 'buffered', 'buffered_partial'];

/** An enum number from `protocol_config` → the body mode; undefined for one we do not know. */
export function bodyModeOf(value: number | undefined): BodySendMode | undefined {
  return value === undefined ? 'none' : BODY_MODES[value];
}

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
