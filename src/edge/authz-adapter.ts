/**
 * Keeps Envoy at the door: CheckRequest → InboundRequest on the way in, Decision →
 * CheckResponse on the way out. No decision logic lives here.
 */
import { randomUUID } from 'node:crypto';
import { deny } from '../domain/denials.js';
import { envelope } from './envelope.js';
import type { Decision, Denial } from '../domain/decision.js';
import type { InboundRequest } from '../domain/request.js';
import { toStruct } from './protos.js';
import type {
  AttributeHttpRequest,
  CheckRequest,
  CheckResponse,
  HeaderValueOption,
} from './protos.js';

/** gRPC status codes carried in `CheckResponse.status`; any non-zero code is a deny. */
const GRPC_OK = 0;
const GRPC_CODE_BY_HTTP: Readonly<Record<Denial['status'], number>> = {
  // An answer (whoami): Envoy sends a denied_response as its local reply, whatever its status,
  // and only a non-zero code makes it one; the status Envoy sends is the HTTP 200 below.
  200: 9, // FAILED_PRECONDITION: "not for the upstream"
  400: 3, // INVALID_ARGUMENT
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  413: 3, // INVALID_ARGUMENT
  429: 8, // RESOURCE_EXHAUSTED
  500: 13, // INTERNAL
  503: 14, // UNAVAILABLE
};

/** CheckRequest (as Envoy sends it) → the plain request the pipeline sees. */
export function toGatewayRequest(check: CheckRequest): InboundRequest {
  const attributes = check.attributes ?? {};
  const http = attributes.request?.http ?? {};
  const headers = lowerCaseHeaders(http);
  const rawPath = http.path ?? headers[':path'] ?? '/';
  const q = rawPath.indexOf('?');
  // Envoy refuses fragments; should one arrive anyway it stays in the path and is refused there.
  const path = (q < 0 ? rawPath : rawPath.slice(0, q)) || '/';
  const query = q < 0 ? undefined : rawPath.slice(q + 1);
  // Envoy 1.40 fills `http.id` with its internal stream id, not x-request-id; the header is
  // what upstream and access logs see, so it names the request.
  const id = nonEmpty(headers['x-request-id']) ?? nonEmpty(http.id) ?? randomUUID();
  const body =
    http.body !== undefined && http.body !== ''
      ? http.body
      : http.raw_body !== undefined && http.raw_body.length > 0
        ? http.raw_body
        : undefined;
  const sourceIp = nonEmpty(attributes.source?.address?.socket_address?.address);
  return {
    id,
    method: (http.method ?? headers[':method'] ?? 'GET').toUpperCase(),
    path,
    ...(query !== undefined ? { query } : {}),
    headers,
    ...(body !== undefined ? { body } : {}),
    ...(sourceIp !== undefined ? { sourceIp } : {}),
  };
}

function lowerCaseHeaders(http: AttributeHttpRequest): Record<string, string> {
  const out: Record<string, string> = {};
  if (http.headers !== undefined) {
    for (const [key, value] of Object.entries(http.headers)) out[key.toLowerCase()] = value;
    return out;
  }
  // With encode_raw_headers Envoy sends header_map instead: one entry per line, not joined.
  for (const h of http.header_map?.headers ?? []) {
    const key = h.key.toLowerCase();
    const value = h.raw_value !== undefined ? h.raw_value.toString('utf8') : (h.value ?? '');
    out[key] = out[key] === undefined ? value : `${out[key]},${value}`;
  }
  return out;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/**
 * Header options for ext_authz. Every header carries `append: {value: false}`: the explicit
 * wrapper means "overwrite" in every Envoy version, whereas an unset `append` with the newer
 * `append_action` default would add a second line and let a client-sent value survive.
 */
function headerOptions(headers: Readonly<Record<string, string>>): HeaderValueOption[] {
  return Object.entries(headers).map(([key, value]) => ({
    header: { key, value },
    append: { value: false },
  }));
}

/** A Decision → the CheckResponse Envoy acts on. A deny is always a response, never an RPC error. */
export function toCheckResponse(decision: Decision): CheckResponse {
  if (decision.allow !== undefined) {
    const allow = decision.allow;
    const response: CheckResponse = {
      status: { code: GRPC_OK },
      ok_response: {
        headers: headerOptions(allow.setHeaders),
        headers_to_remove: [...allow.removeHeaders],
        ...(allow.removeQueryParams !== undefined && allow.removeQueryParams.length > 0
          ? { query_parameters_to_remove: [...allow.removeQueryParams] }
          : {}),
        response_headers_to_add: headerOptions(allow.responseHeaders),
      },
    };
    if (Object.keys(allow.metadata).length > 0)
      response.dynamic_metadata = toStruct(allow.metadata);
    return response;
  }
  return deniedResponse(decision.deny);
}

function deniedResponse(denial: Denial): CheckResponse {
  // Our two headers come last so a stray entry in denial.headers cannot replace them.
  const headers: Record<string, string> = {
    ...denial.headers,
    'content-type': 'application/json',
    'x-tollgate-reason': denial.reason,
  };
  return {
    status: { code: GRPC_CODE_BY_HTTP[denial.status], message: denial.reason },
    denied_response: {
      status: { code: denial.status },
      headers: headerOptions(headers),
      body: denial.body ?? envelope(denial),
    },
  };
}

/** The answer when deciding itself failed: a normal 500 deny, so Envoy shows the envelope. */
export function internalErrorResponse(): CheckResponse {
  return deniedResponse(deny('internal_error', 'The gateway could not process the request.'));
}
