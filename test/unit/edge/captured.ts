/**
 * Reads test/fixtures/envoy/*.json (written by `npm run fixtures:capture`) and decodes the bytes
 * with the service definitions the gRPC server itself uses, so a test sees each message exactly
 * as the server would have.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MethodDefinition, ServerDuplexStream } from '@grpc/grpc-js';
import type { Decision, Denial } from '../../../src/domain/decision.js';
import type { ReasonCode } from '../../../src/domain/errors.js';
import {
  fromStruct,
  services,
  type CheckRequest,
  type CheckResponse,
  type CommonResponse,
  type HeaderValueOption,
  type ProcessingModeMessage,
  type ProcessingRequest,
  type ProcessingResponse,
} from '../../../src/edge/protos.js';
import type {
  BodySendMode,
  HeaderSendMode,
  ProcessingModeSpec,
} from '../../../src/response/mode.js';
import type { BodyAction, HeaderAction } from '../../../src/response/phases.js';
import { projectRoot } from '../../../src/stack/bootstrap.js';

export const FIXTURE_DIR = join(projectRoot(), 'test', 'fixtures', 'envoy');

/** The file as the capture script writes it: every message as base64. */
interface FixtureFile {
  readonly envoy: string;
  readonly case: string;
  readonly check?: { readonly request: string; readonly response: string };
  readonly process?: ReadonlyArray<{ readonly direction: 'in' | 'out'; readonly bytes: string }>;
}

export interface CapturedCheck {
  readonly request: CheckRequest;
  readonly response: CheckResponse;
  /** The CheckResponse bytes Envoy received and acted on. */
  readonly responseBytes: Buffer;
}

export interface CapturedStream {
  /** What Envoy sent, in order. */
  readonly requests: ProcessingRequest[];
  /** What Envoy was answered, in order (one per request). */
  readonly responses: ProcessingResponse[];
  readonly responseBytes: Buffer[];
  /** Directions in the order the recording proxy saw the messages. */
  readonly order: ReadonlyArray<'in' | 'out'>;
}

export interface Captured {
  readonly name: string;
  readonly envoy: string;
  readonly check?: CapturedCheck;
  readonly stream?: CapturedStream;
}

function method<Req, Res>(
  service: 'authorization' | 'externalProcessor',
  name: string,
): MethodDefinition<Req, Res> {
  const def = services()[service][name];
  if (def === undefined) throw new Error(`no ${name} in ${service}`);
  return def as MethodDefinition<Req, Res>;
}

export const checkMethod = method<CheckRequest, CheckResponse>('authorization', 'Check');
export const processMethod = method<ProcessingRequest, ProcessingResponse>(
  'externalProcessor',
  'Process',
);

const bytes = (base64: string): Buffer => Buffer.from(base64, 'base64');

export function loadCaptured(name: string): Captured {
  const file = JSON.parse(readFileSync(join(FIXTURE_DIR, `${name}.json`), 'utf8')) as FixtureFile;
  const check =
    file.check === undefined
      ? undefined
      : {
          request: checkMethod.requestDeserialize(bytes(file.check.request)),
          response: checkMethod.responseDeserialize(bytes(file.check.response)),
          responseBytes: bytes(file.check.response),
        };
  let stream: CapturedStream | undefined;
  if (file.process !== undefined) {
    const ins = file.process.filter((m) => m.direction === 'in').map((m) => bytes(m.bytes));
    const outs = file.process.filter((m) => m.direction === 'out').map((m) => bytes(m.bytes));
    stream = {
      requests: ins.map((b) => processMethod.requestDeserialize(b)),
      responses: outs.map((b) => processMethod.responseDeserialize(b)),
      responseBytes: outs,
      order: file.process.map((m) => m.direction),
    };
  }
  return {
    name: file.case,
    envoy: file.envoy,
    ...(check !== undefined ? { check } : {}),
    ...(stream !== undefined ? { stream } : {}),
  };
}

/** The fixture's Check, or a failed test naming the case. */
export function checkOf(c: Captured): CapturedCheck {
  if (c.check === undefined) throw new Error(`${c.name}: no Check was captured`);
  return c.check;
}

/** The fixture's Process stream, or a failed test naming the case. */
export function streamOf(c: Captured): CapturedStream {
  if (c.stream === undefined) throw new Error(`${c.name}: no Process stream was captured`);
  return c.stream;
}

// ---------------------------------------------------------------------------------------------
// Captured answers back into the plain values our adapters render, so a test can render them
// again and compare with the bytes Envoy accepted.

const IDENTITY = {
  provider: 'main-idp',
  issuer: 'http://127.0.0.1',
  subject: 'u-fixture',
  user: 'ann@myorg.com',
  groups: ['eng', 'ml-team'],
  claims: {},
  expiresAt: 0,
} as const;

function headerValues(options: readonly HeaderValueOption[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of options ?? []) out[o.header.key] = o.header.value ?? '';
  return out;
}

/** A decoded CheckResponse → the Decision that toCheckResponse renders as it. */
export function decisionOf(response: CheckResponse): Decision {
  const ok = response.ok_response;
  if (ok !== undefined) {
    return {
      allow: {
        identity: IDENTITY,
        setHeaders: headerValues(ok.headers),
        removeHeaders: ok.headers_to_remove ?? [],
        removeQueryParams: ok.query_parameters_to_remove ?? [],
        responseHeaders: headerValues(ok.response_headers_to_add),
        metadata: fromStruct(response.dynamic_metadata),
      },
    };
  }
  const denied = response.denied_response;
  if (denied === undefined) throw new Error('neither ok_response nor denied_response');
  // deniedResponse() adds these two last; the rest are the denial's own headers.
  const all = headerValues(denied.headers);
  const reason = all['x-tollgate-reason'];
  const headers = Object.fromEntries(
    Object.entries(all).filter(([key]) => key !== 'content-type' && key !== 'x-tollgate-reason'),
  );
  const envelope = (
    JSON.parse(denied.body ?? '{}') as { error: { message: string; type: string; code: string } }
  ).error;
  const denial: Denial = {
    status: denied.status.code as Denial['status'],
    reason: reason as ReasonCode,
    type: envelope.type,
    code: envelope.code,
    message: envelope.message,
    headers,
  };
  return { deny: denial };
}

const HEADER_MODES: readonly HeaderSendMode[] = ['default', 'send', 'skip'];
const BODY_MODES: readonly BodySendMode[] = ['none', 'streamed', 'buffered', 'buffered_partial'];

function pick<T>(list: readonly T[], n: number | undefined): T {
  const value = list[n ?? 0];
  if (value === undefined) throw new Error(`unknown mode number ${String(n)}`);
  return value;
}

function modeSpec(m: ProcessingModeMessage): ProcessingModeSpec {
  return {
    requestHeaders: pick(HEADER_MODES, m.request_header_mode),
    responseHeaders: pick(HEADER_MODES, m.response_header_mode),
    requestBody: pick(BODY_MODES, m.request_body_mode),
    responseBody: pick(BODY_MODES, m.response_body_mode),
    requestTrailers: pick(HEADER_MODES, m.request_trailer_mode),
    responseTrailers: pick(HEADER_MODES, m.response_trailer_mode),
  };
}

/** A decoded ProcessingResponse → the phase action the stream loop renders as it. */
export function actionOf(answer: ProcessingResponse): HeaderAction & BodyAction {
  const common: CommonResponse =
    (
      answer.request_headers ??
      answer.response_headers ??
      answer.request_body ??
      answer.response_body
    )?.response ?? {};
  const mutation = common.header_mutation;
  const setHeaders = Object.fromEntries(
    (mutation?.set_headers ?? []).map((o) => [
      o.header.key,
      o.header.raw_value?.toString('utf8') ?? '',
    ]),
  );
  const body = common.body_mutation?.body;
  const isHeaders = answer.request_headers !== undefined || answer.response_headers !== undefined;
  return {
    ...(Object.keys(setHeaders).length > 0 ? { setHeaders } : {}),
    ...(mutation?.remove_headers !== undefined ? { removeHeaders: mutation.remove_headers } : {}),
    ...(body !== undefined ? (isHeaders ? { replaceBody: body } : { body }) : {}),
    ...(answer.mode_override !== undefined ? { modeOverride: modeSpec(answer.mode_override) } : {}),
  };
}

/**
 * Stands in for grpc-js's server stream: serveProcessStream only listens for events, writes
 * answers and ends the call.
 */
export class FakeProcessCall extends EventEmitter {
  readonly written: ProcessingResponse[] = [];
  ended = false;

  write(message: ProcessingResponse): boolean {
    this.written.push(message);
    return true;
  }

  end(): void {
    this.ended = true;
  }

  asStream(): ServerDuplexStream<ProcessingRequest, ProcessingResponse> {
    return this as unknown as ServerDuplexStream<ProcessingRequest, ProcessingResponse>;
  }

  /** Lets the stream loop's promise chain run until the call is ended (or give up). */
  async settle(): Promise<void> {
    for (let i = 0; i < 200 && !this.ended; i++)
      await new Promise((resolve) => setImmediate(resolve));
  }
}
