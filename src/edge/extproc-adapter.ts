/**
 * The ext_proc Process stream loop, kept apart from what is done with the messages: receive,
 * dispatch on the message kind to the request's ResponsePhases (response/phases.ts, plain
 * TypeScript, no Envoy types), answer with exactly one response of the matching kind, and
 * tell the phases once how the exchange ended.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { BASE_PROCESSING_MODE, type ProcessingModeSpec } from '../response/mode.js';
import type { BodyAction, HeaderAction, Refusal, ResponsePhases } from '../response/phases.js';
import { envelope } from './envelope.js';
import { bodyModeOf, toModeMessage } from './processing-mode.js';
import { fromStruct } from './protos.js';
import type {
  CommonResponse,
  HeaderMap,
  HeaderMutation,
  ProcessingRequest,
  ProcessingResponse,
} from './protos.js';

/** The ext_authz namespace whose dynamic metadata Envoy forwards to ext_proc. */
export const AUTHZ_NAMESPACE = 'envoy.filters.http.ext_authz';

export interface ProcessStreamOptions {
  /** The mode configured in Envoy; overrides are merged onto it. */
  readonly baseMode?: ProcessingModeSpec;
  /** Told about phase failures (the stream is closed with INTERNAL) and errors thrown by `end`. */
  readonly onError?: (err: unknown) => void;
}

/** HeaderMap → record; repeated names joined with "," as Envoy does for ext_authz. */
export function headerRecord(map: HeaderMap | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of map?.headers ?? []) {
    const key = h.key.toLowerCase();
    // ext_proc sends values in raw_value; `value` only from Envoy versions before raw_value.
    const value = h.raw_value !== undefined ? h.raw_value.toString('utf8') : (h.value ?? '');
    out[key] = out[key] === undefined ? value : `${out[key]},${value}`;
  }
  return out;
}

function headerMutation(
  set: Readonly<Record<string, string>> | undefined,
  remove: readonly string[] | undefined,
): HeaderMutation | undefined {
  const setEntries = Object.entries(set ?? {});
  if (setEntries.length === 0 && (remove?.length ?? 0) === 0) return undefined;
  return {
    // raw_value only: ext_proc ignores `value`, and setting both fails the request.
    set_headers: setEntries.map(([key, value]) => ({
      header: { key, raw_value: Buffer.from(value, 'utf8') },
      append: { value: false },
    })),
    remove_headers: [...(remove ?? [])],
  };
}

function commonResponse(
  action: HeaderAction | BodyAction | void,
  replace: Buffer | undefined,
): CommonResponse {
  const response: CommonResponse = {};
  const mutation = action ? headerMutation(action.setHeaders, action.removeHeaders) : undefined;
  if (mutation !== undefined) response.header_mutation = mutation;
  if (replace !== undefined) response.body_mutation = { body: replace };
  return response;
}

/**
 * A refusal as an ImmediateResponse (allowed in answer to any message, in place of the
 * matching case): the OpenAI envelope, like every other denial.
 */
export function immediateResponse(refusal: Refusal): ProcessingResponse {
  const { denial } = refusal;
  const headers = { ...denial.headers, 'content-type': 'application/json', 'x-tollgate-reason': denial.reason };
  return {
    immediate_response: {
      status: { code: denial.status },
      headers: headerMutation(headers, undefined) ?? {},
      body: Buffer.from(envelope(denial), 'utf8'),
      details: refusal.details,
    },
  };
}

/**
 * Serves one Process stream. Never throws: a phase failure closes the stream with
 * INTERNAL (Envoy then fails the request closed) and never takes the process down.
 */
export function serveProcessStream(
  call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>,
  phases: ResponsePhases,
  options: ProcessStreamOptions = {},
): void {
  const report = options.onError ?? (() => undefined);
  let mode: ProcessingModeSpec = options.baseMode ?? BASE_PROCESSING_MODE;
  // Envoy reads mode overrides only from a filter that waits for the header answers; a
  // stream's filter (handoff/stream-profile.ts) has its modes fixed and says so below.
  let overridable = true;
  let first = true;
  let closed = false; // no more writes: cancelled, failed or ended by us
  let ended = false; // phases.end was called
  let queue: Promise<void> = Promise.resolve();

  const finish = (outcome: 'complete' | 'aborted'): void => {
    if (ended) return;
    ended = true;
    if (phases.end === undefined) return;
    try {
      Promise.resolve(phases.end(outcome)).catch(report);
    } catch (err) {
      report(err);
    }
  };

  const fail = (err: unknown): void => {
    report(err);
    finish('aborted');
    if (closed) return;
    closed = true;
    // grpc-js turns an 'error' event on a server stream into the call's final status.
    call.emit('error', {
      code: GrpcStatus.INTERNAL,
      details: 'tollgate: external processing failed',
    });
  };

  // The answer to the last message Envoy will send is written: close with OK right behind it
  // (grpc-js sends the trailers after the queued answer), so the stream is never left open on
  // our side waiting for Envoy. Envoy 1.40 still ends its side with RST_STREAM (its ext_proc
  // client always half-closes and then resets, envoy/local.yaml explains what bounds that).
  const complete = (): void => {
    finish('complete');
    if (closed) return;
    closed = true;
    call.end();
  };

  const send = (msg: ProcessingRequest, response: ProcessingResponse): void => {
    // In observability mode Envoy does not read answers; sending one would be spurious.
    if (closed || msg.observability_mode === true) return;
    call.write(response);
  };

  // The first message says how this filter is configured: several ext_proc filters (one per
  // stream profile) share this server, each with its own fixed body modes.
  const configure = (msg: ProcessingRequest): void => {
    first = false;
    if (msg.observability_mode === true) overridable = false;
    const config = msg.protocol_config;
    if (config === undefined) {
      // Envoy 1.40 sends no protocol_config in observability mode (the `observe` stream filter),
      // so nothing says whether a body follows: assume it does. The response headers are then
      // never taken for the last message (which settled the stream on the prompt estimate
      // before its first chunk); the body's end_of_stream or the stream's end settles it.
      if (msg.observability_mode === true) mode = { ...mode, responseBody: 'streamed' };
      return;
    }
    const requestBody = bodyModeOf(config.request_body_mode);
    const responseBody = bodyModeOf(config.response_body_mode);
    if (requestBody !== undefined && responseBody !== undefined) mode = { ...mode, requestBody, responseBody };
    if (config.send_body_without_waiting_for_header_response === true) overridable = false;
  };

  const authzMetadata = (msg: ProcessingRequest): Record<string, unknown> =>
    fromStruct(msg.metadata_context?.filter_metadata?.[AUTHZ_NAMESPACE]);

  const step = async (msg: ProcessingRequest): Promise<void> => {
    if (first) configure(msg);
    switch (msg.request) {
      case 'request_headers': {
        const h = msg.request_headers ?? {};
        const action = await phases.requestHeaders?.(
          headerRecord(h.headers),
          authzMetadata(msg),
          h.end_of_stream === true,
        );
        send(
          msg,
          action?.refuse !== undefined
            ? immediateResponse(action.refuse)
            : headersAnswer('request_headers', action),
        );
        return;
      }
      case 'response_headers': {
        const h = msg.response_headers ?? {};
        const action = await phases.responseHeaders?.(
          headerRecord(h.headers),
          h.end_of_stream === true,
          authzMetadata(msg),
        );
        send(msg, headersAnswer('response_headers', action));
        // With no response body or trailers to come our way (or the body replaced by us),
        // this was the last message: Envoy closes the stream next.
        const lastMessage =
          h.end_of_stream === true ||
          action?.replaceBody !== undefined ||
          (mode.responseBody === 'none' && mode.responseTrailers !== 'send');
        if (lastMessage) complete();
        return;
      }
      case 'request_body': {
        const b = msg.request_body ?? {};
        const action = await phases.requestBody?.(
          b.body ?? Buffer.alloc(0),
          b.end_of_stream === true,
          authzMetadata(msg),
        );
        send(
          msg,
          action?.refuse !== undefined
            ? immediateResponse(action.refuse)
            : { request_body: { response: commonResponse(action, action ? action.body : undefined) } },
        );
        return;
      }
      case 'response_body': {
        const b = msg.response_body ?? {};
        const action = await phases.responseBody?.(
          b.body ?? Buffer.alloc(0),
          b.end_of_stream === true,
        );
        send(msg, {
          response_body: { response: commonResponse(action, action ? action.body : undefined) },
        });
        if (b.end_of_stream === true) complete();
        return;
      }
      case 'request_trailers':
        send(msg, { request_trailers: {} });
        return;
      case 'response_trailers':
        send(msg, { response_trailers: {} });
        complete();
        return;
      default:
        // A kind we cannot answer with a matching case; any other answer would be spurious.
        throw new Error(`unsupported ext_proc message: ${String(msg.request)}`);
    }
  };

  const headersAnswer = (
    kind: 'request_headers' | 'response_headers',
    action: HeaderAction | void,
  ): ProcessingResponse => {
    const replace = action ? action.replaceBody : undefined;
    const response = commonResponse(action, replace);
    if (replace !== undefined) response.status = 1; // CONTINUE_AND_REPLACE
    const answer: ProcessingResponse = { [kind]: { response } };
    if (action?.modeOverride !== undefined && overridable) {
      mode = { ...mode, ...action.modeOverride };
      answer.mode_override = toModeMessage(mode);
    }
    return answer;
  };

  call.on('data', (msg: ProcessingRequest) => {
    if (closed) return;
    queue = queue.then(() => (closed ? undefined : step(msg))).catch(fail);
  });
  call.on('end', () => {
    // Envoy half-closed: answer what is queued, then close our side with OK.
    queue = queue
      .then(() => {
        finish('aborted'); // no-op when the response already ended
        if (closed) return;
        closed = true;
        call.end();
      })
      .catch(report);
  });
  call.on('cancelled', () => {
    closed = true;
    finish('aborted');
  });
  call.on('error', () => {
    closed = true;
    finish('aborted');
  });
}
