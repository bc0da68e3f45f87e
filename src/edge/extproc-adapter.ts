/**
 * The ext_proc Process stream loop, kept apart from what is done with the messages: receive,
 * dispatch on the message kind to an ExchangeProcessor (plain TypeScript, no Envoy types),
 * answer with exactly one response of the matching kind, and tell the processor once how the
 * exchange ended.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { DEFAULT_PROCESSING_MODE, toModeMessage } from './processing-mode.js';
import type { ProcessingModeSpec } from './processing-mode.js';
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

/**
 * A local reply Envoy sends instead of going on (ImmediateResponse): the request goes no
 * further and the client gets this.
 */
export interface ImmediateReply {
  readonly status: number;
  /** Reply headers; Envoy's default content-type for it is text/plain. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  /** Shown as %RESPONSE_CODE_DETAILS% in Envoy's access log. */
  readonly details?: string;
}

/** What to do with a headers message. Every field is optional; `{}` or `void` = continue. */
export interface HeaderAction {
  /**
   * Request side only: answer the client with this instead of forwarding the request; every
   * other field is then ignored.
   */
  readonly immediate?: ImmediateReply;
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
  /**
   * Request side only: answer the client with this instead of forwarding the request; every
   * other field is then ignored.
   */
  readonly immediate?: ImmediateReply;
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

/** One per HTTP request. Methods are awaited in message order; a missing method passes through. */
export interface ExchangeProcessor {
  /** `metadata` is the ext_authz dynamic metadata of this request, as plain JSON (or `{}`). */
  requestHeaders?(
    headers: Record<string, string>,
    metadata: Record<string, unknown>,
    endOfStream: boolean,
  ): MaybePromise<HeaderAction | void>;
  requestBody?(chunk: Buffer, endOfStream: boolean): MaybePromise<BodyAction | void>;
  responseHeaders?(
    headers: Record<string, string>,
    endOfStream: boolean,
  ): MaybePromise<HeaderAction | void>;
  responseBody?(chunk: Buffer, endOfStream: boolean): MaybePromise<BodyAction | void>;
  /**
   * Called exactly once. `complete`: after the answer to the last response message Envoy will
   * send us (body or headers with end_of_stream, trailers, or the response headers when the
   * mode sends no response body or trailers); the stream is then closed with OK at once.
   * `aborted`: the stream was cancelled, half-closed or failed before that. Envoy 1.40 resets
   * the stream after a complete exchange and half-closes it when the downstream client goes
   * away, so neither event alone tells which.
   */
  end?(outcome: 'complete' | 'aborted'): MaybePromise<void>;
}

export interface ProcessStreamOptions {
  /** The mode configured in Envoy; overrides are merged onto it. */
  readonly baseMode?: ProcessingModeSpec;
  /** Told about processor failures (the stream is closed with INTERNAL) and errors thrown by `end`. */
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

/** An ImmediateResponse: allowed in answer to any message, in place of the matching case. */
export function immediateResponse(reply: ImmediateReply): ProcessingResponse {
  return {
    immediate_response: {
      status: { code: reply.status },
      ...(reply.headers !== undefined
        ? { headers: headerMutation(reply.headers, undefined) ?? {} }
        : {}),
      ...(reply.body !== undefined ? { body: reply.body } : {}),
      ...(reply.details !== undefined ? { details: reply.details } : {}),
    },
  };
}

/**
 * Serves one Process stream. Never throws: a processor failure closes the stream with
 * INTERNAL (Envoy then fails the request closed) and never takes the process down.
 */
export function serveProcessStream(
  call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>,
  processor: ExchangeProcessor,
  options: ProcessStreamOptions = {},
): void {
  const report = options.onError ?? (() => undefined);
  let mode: ProcessingModeSpec = options.baseMode ?? DEFAULT_PROCESSING_MODE;
  let closed = false; // no more writes: cancelled, failed or ended by us
  let ended = false; // processor.end was called
  let queue: Promise<void> = Promise.resolve();

  const finish = (outcome: 'complete' | 'aborted'): void => {
    if (ended) return;
    ended = true;
    if (processor.end === undefined) return;
    try {
      Promise.resolve(processor.end(outcome)).catch(report);
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

  const step = async (msg: ProcessingRequest): Promise<void> => {
    switch (msg.request) {
      case 'request_headers': {
        const h = msg.request_headers ?? {};
        const ns = msg.metadata_context?.filter_metadata?.[AUTHZ_NAMESPACE];
        const action = await processor.requestHeaders?.(
          headerRecord(h.headers),
          fromStruct(ns),
          h.end_of_stream === true,
        );
        send(
          msg,
          action?.immediate !== undefined
            ? immediateResponse(action.immediate)
            : headersAnswer('request_headers', action),
        );
        return;
      }
      case 'response_headers': {
        const h = msg.response_headers ?? {};
        const action = await processor.responseHeaders?.(
          headerRecord(h.headers),
          h.end_of_stream === true,
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
        const action = await processor.requestBody?.(
          b.body ?? Buffer.alloc(0),
          b.end_of_stream === true,
        );
        send(
          msg,
          action?.immediate !== undefined
            ? immediateResponse(action.immediate)
            : { request_body: { response: commonResponse(action, action ? action.body : undefined) } },
        );
        return;
      }
      case 'response_body': {
        const b = msg.response_body ?? {};
        const action = await processor.responseBody?.(
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
    if (action?.modeOverride !== undefined) {
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
