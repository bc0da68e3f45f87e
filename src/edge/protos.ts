/**
 * Loads Tollgate's own `proto/` files once and exposes the gRPC service definitions plus small,
 * hand-written TypeScript shapes of the messages we use (as proto-loader decodes them with the
 * options below: snake_case names, int64 as number, enums as numbers, oneof case names, unset
 * fields absent). Only `src/edge/` and `src/server/` should import this file.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import type { ServiceDefinition } from '@grpc/grpc-js';

const ENTRY_FILES = [
  'envoy/service/auth/v3/external_auth.proto',
  'envoy/service/ext_proc/v3/external_processor.proto',
  'grpc/health/v1/health.proto',
] as const;

/** Finds `proto/` by walking up from this module: works from `src/edge` and `dist/src/edge`. */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, ENTRY_FILES[0]))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('tollgate: cannot find the proto/ directory');
    dir = parent;
  }
}

/** The loader options every server-side decode uses. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: Number,
  oneofs: true,
  // Unset wrappers and messages stay absent, so "field present" checks mean what they say.
  defaults: false,
};

/**
 * Loads the package definition. The server uses the default options; tests may load a second
 * copy with `defaults: true` to see on the wire whether a wrapper such as `append` was sent.
 */
export function loadProtos(overrides: protoLoader.Options = {}): protoLoader.PackageDefinition {
  return protoLoader.loadSync([...ENTRY_FILES], {
    ...LOADER_OPTIONS,
    ...overrides,
    includeDirs: [protoDir()],
  });
}

let cached: protoLoader.PackageDefinition | undefined;

function service(name: string): ServiceDefinition {
  cached ??= loadProtos();
  const def = cached[name];
  if (def === undefined || !('Check' in def || 'Process' in def)) {
    throw new Error(`tollgate: service ${name} missing from proto/`);
  }
  return def;
}

export const SERVICE_NAMES = {
  authorization: 'envoy.service.auth.v3.Authorization',
  externalProcessor: 'envoy.service.ext_proc.v3.ExternalProcessor',
  health: 'grpc.health.v1.Health',
} as const;

/** Service definitions for `server.addService` / `makeGenericClientConstructor`. */
export function services(): {
  authorization: ServiceDefinition;
  externalProcessor: ServiceDefinition;
  health: ServiceDefinition;
} {
  return {
    authorization: service(SERVICE_NAMES.authorization),
    externalProcessor: service(SERVICE_NAMES.externalProcessor),
    health: service(SERVICE_NAMES.health),
  };
}

// ---------------------------------------------------------------------------------------------
// Message shapes (only the fields we read or write).

/**
 * google.protobuf.Value as proto-loader represents it. protobufjs ships the well-known types as
 * JSON descriptors with camelCase names, so `keepCase` does not apply to them: `stringValue`,
 * not `string_value`. On decode, `kind` names the set case.
 */
export interface ProtoValue {
  kind?: string;
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}
export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}

export interface HeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer;
}
export interface HeaderValueOption {
  header: HeaderValue;
  append?: { value?: boolean };
  append_action?: number;
  keep_empty_value?: boolean;
}
export interface HeaderMap {
  headers?: HeaderValue[];
}
export interface Metadata {
  filter_metadata?: Record<string, ProtoStruct>;
}
export interface HttpStatus {
  code: number;
}

/** AttributeContext.HttpRequest. */
export interface AttributeHttpRequest {
  id?: string;
  method?: string;
  headers?: Record<string, string>;
  path?: string;
  host?: string;
  scheme?: string;
  size?: number;
  protocol?: string;
  body?: string;
  raw_body?: Buffer;
  header_map?: HeaderMap;
}

export interface CheckRequest {
  attributes?: {
    source?: { address?: { socket_address?: { address?: string; port_value?: number } } };
    request?: { http?: AttributeHttpRequest };
    context_extensions?: Record<string, string>;
    metadata_context?: Metadata;
  };
}

export interface CheckResponse {
  status: { code: number; message?: string };
  denied_response?: { status: HttpStatus; headers?: HeaderValueOption[]; body?: string };
  ok_response?: {
    headers?: HeaderValueOption[];
    headers_to_remove?: string[];
    response_headers_to_add?: HeaderValueOption[];
    query_parameters_to_remove?: string[];
  };
  dynamic_metadata?: ProtoStruct;
}

export interface HttpHeaders {
  headers?: HeaderMap;
  end_of_stream?: boolean;
}
export interface HttpBody {
  body?: Buffer;
  end_of_stream?: boolean;
}
export interface HttpTrailers {
  trailers?: HeaderMap;
}

export type ProcessingRequestCase =
  | 'request_headers'
  | 'response_headers'
  | 'request_body'
  | 'response_body'
  | 'request_trailers'
  | 'response_trailers';

export interface ProcessingRequest {
  request?: ProcessingRequestCase;
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: HttpBody;
  response_body?: HttpBody;
  request_trailers?: HttpTrailers;
  response_trailers?: HttpTrailers;
  metadata_context?: Metadata;
  observability_mode?: boolean;
  /** First message only (Envoy 1.34+): the filter's body modes, as configured. */
  protocol_config?: ProtocolConfiguration;
}

export interface ProtocolConfiguration {
  request_body_mode?: number;
  response_body_mode?: number;
  send_body_without_waiting_for_header_response?: boolean;
}

export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}
export interface CommonResponse {
  status?: number; // 0 CONTINUE, 1 CONTINUE_AND_REPLACE
  header_mutation?: HeaderMutation;
  body_mutation?: { body?: Buffer; clear_body?: boolean };
}
export interface ProcessingModeMessage {
  request_header_mode?: number;
  response_header_mode?: number;
  request_body_mode?: number;
  response_body_mode?: number;
  request_trailer_mode?: number;
  response_trailer_mode?: number;
}

export interface ProcessingResponse {
  request_headers?: { response?: CommonResponse };
  response_headers?: { response?: CommonResponse };
  request_body?: { response?: CommonResponse };
  response_body?: { response?: CommonResponse };
  request_trailers?: { header_mutation?: HeaderMutation };
  response_trailers?: { header_mutation?: HeaderMutation };
  immediate_response?: {
    status: HttpStatus;
    headers?: HeaderMutation;
    body?: Buffer;
    details?: string;
  };
  dynamic_metadata?: ProtoStruct;
  mode_override?: ProcessingModeMessage;
}

// ---------------------------------------------------------------------------------------------
// Struct <-> plain JSON. protobufjs treats Struct as an ordinary message, so we convert ourselves.

/** Plain JSON value → google.protobuf.Value. `undefined`, functions and symbols are dropped. */
export function toProtoValue(value: unknown): ProtoValue | undefined {
  if (value === null) return { nullValue: 0 };
  switch (typeof value) {
    case 'string':
      return { stringValue: value };
    case 'number':
      return { numberValue: value };
    case 'boolean':
      return { boolValue: value };
    case 'bigint':
      return { numberValue: Number(value) };
    case 'object': {
      if (Array.isArray(value)) {
        // JSON turns holes and undefined in arrays into null; do the same.
        return { listValue: { values: value.map((v) => toProtoValue(v) ?? { nullValue: 0 }) } };
      }
      if (value instanceof Date) return { stringValue: value.toISOString() };
      return { structValue: toStruct(value as Record<string, unknown>) };
    }
    default:
      return undefined;
  }
}

/** Plain JSON object → google.protobuf.Struct. */
export function toStruct(obj: Readonly<Record<string, unknown>>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [key, value] of Object.entries(obj)) {
    const converted = toProtoValue(value);
    if (converted !== undefined) fields[key] = converted;
  }
  return { fields };
}

/** google.protobuf.Value → plain JSON. */
export function fromProtoValue(value: ProtoValue | undefined): unknown {
  if (value === undefined) return null;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.numberValue !== undefined) return value.numberValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.structValue !== undefined) return fromStruct(value.structValue);
  if (value.listValue !== undefined) return (value.listValue.values ?? []).map(fromProtoValue);
  return null;
}

/** google.protobuf.Struct → plain JSON object (an absent struct gives `{}`). */
export function fromStruct(struct: ProtoStruct | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) out[key] = fromProtoValue(value);
  return out;
}
