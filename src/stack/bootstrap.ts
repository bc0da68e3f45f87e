/**
 * Renders `envoy/local.yaml`. Each {{NAME}} placeholder is replaced by a JSON value: JSON is
 * valid YAML, so no header name, host or path can break out of its place in the document.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BASE_PROCESSING_MODE,
  STREAM_EDIT_PROCESSING_MODE,
  STREAM_OBSERVE_PROCESSING_MODE,
  type ProcessingModeSpec,
} from '../response/mode.js';
import { DEFAULT_MAX_REQUEST_BYTES } from '../config/schema.js';
import { CREDENTIAL_HEADERS } from '../request/credentials.js';
import { deny } from '../domain/denials.js';
import { envelope } from '../edge/envelope.js';

export interface BootstrapOptions {
  /** Tollgate's gRPC port (ext_authz + ext_proc). */
  readonly grpcPort: number;
  /** Host of Tollgate's gRPC server; default 127.0.0.1. Must be an IP literal. */
  readonly grpcHost?: string;
  /** `http://host:port` or `https://host[:port]`: an origin, no path. */
  readonly upstreamUrl: string;
  /** Listener port; 0 (default) = any free port. */
  readonly port?: number;
  /** Listener address; default 127.0.0.1. */
  readonly listenAddress?: string;
  /** Identity header names: any client-sent value is dropped before ext_authz runs. */
  readonly identityHeaders?: readonly string[];
  /** ext_proc mode; default BASE_PROCESSING_MODE (headers only). */
  readonly processingMode?: ProcessingModeSpec;
  /**
   * The largest request body Envoy buffers and hands to ext_authz (so rules can read it); a
   * larger one is answered 413 by Envoy itself. Default DEFAULT_MAX_REQUEST_BYTES.
   */
  readonly maxRequestBytes?: number;
  /** CA bundle for an https upstream; default SSL_CERT_FILE or the system bundle. */
  readonly caFile?: string;
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

/** Common locations of the system CA bundle (Debian/Ubuntu/Alpine, RHEL/Fedora, macOS/BSD). */
const CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/cert.pem',
];

/**
 * Envoy refuses SAN verification without a trusted CA file (`system_root_certs` does not
 * count), so find the system bundle on disk.
 */
export function systemCaFile(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['SSL_CERT_FILE'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const found = CA_BUNDLES.find((file) => existsSync(file));
  if (found === undefined) {
    throw new Error(
      `no system CA bundle found (looked in ${CA_BUNDLES.join(', ')}); set SSL_CERT_FILE`,
    );
  }
  return found;
}

/** The project root: the nearest ancestor of this module holding `envoy/local.yaml`. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'envoy', 'local.yaml'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('tollgate: cannot find envoy/local.yaml');
    dir = parent;
  }
}

export function templatePath(): string {
  return join(projectRoot(), 'envoy', 'local.yaml');
}

interface Upstream {
  /** The `upstream` cluster, as Envoy JSON. */
  readonly cluster: Record<string, unknown>;
  /** The Host header the upstream expects (host, plus the port when not the default). */
  readonly host: string;
}

/** `http(s)://host[:port]` → the Envoy cluster that reaches it. */
export function upstreamCluster(rawUrl: string, caFile?: string): Upstream {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new Error(`upstream URL is not a URL: ${rawUrl}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`upstream URL must be http:// or https://, got ${rawUrl}`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '') {
    // Clients keep their /v1 prefix; a path here would be silently dropped.
    throw new Error(
      `upstream URL must be an origin (scheme://host[:port]) without a path, got ${rawUrl}`,
    );
  }
  const tls = url.protocol === 'https:';
  const address = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port !== '' ? Number(url.port) : tls ? 443 : 80;
  const literal = isIP(address) !== 0;
  const cluster: Record<string, unknown> = {
    name: 'upstream',
    type: literal ? 'STATIC' : 'STRICT_DNS',
    connect_timeout: '5s',
    // localhost resolves to ::1 first on some hosts while dev servers listen on IPv4.
    ...(literal ? {} : { dns_lookup_family: 'V4_PREFERRED' }),
    load_assignment: {
      cluster_name: 'upstream',
      endpoints: [
        {
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address, port_value: port } } } },
          ],
        },
      ],
    },
  };
  if (tls) {
    cluster['transport_socket'] = {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
        // SNI must be a host name; IP literals are verified by SAN only.
        ...(literal ? {} : { sni: address }),
        common_tls_context: {
          validation_context: {
            trusted_ca: { filename: caFile ?? systemCaFile() },
            match_typed_subject_alt_names: [
              { san_type: literal ? 'IP_ADDRESS' : 'DNS', matcher: { exact: address } },
            ],
          },
        },
      },
    };
  }
  return { cluster, host: url.host };
}

function earlyHeaderMutations(headers: readonly string[]): unknown[] {
  const names = [...new Set(headers.map((h) => h.toLowerCase()))];
  if (names.length === 0) return [];
  return [
    {
      name: 'envoy.http.early_header_mutation.header_mutation',
      typed_config: {
        '@type':
          'type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation',
        mutations: names.map((remove) => ({ remove })),
      },
    },
  ];
}


/** An access-log CEL filter: how a local-reply mapper picks out one kind of reply. */
function celFilter(expression: string): Record<string, unknown> {
  return {
    extension_filter: {
      name: 'envoy.access_loggers.extension_filters.cel',
      typed_config: {
        '@type':
          'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter',
        expression,
      },
    },
  };
}

/** Request headers the route strips before the upstream: see REQUEST_HEADERS_TO_REMOVE. */
export const ROUTE_HEADERS_TO_REMOVE: readonly string[] = ['accept-encoding', ...CREDENTIAL_HEADERS];

function envelopeMapper(
  expression: string,
  body: string,
  headers: Readonly<Record<string, string>>,
  status?: number,
): Record<string, unknown> {
  // Envoy reads `%` in a body format as a command; our messages never contain one.
  if (body.includes('%')) throw new Error('local reply body must not contain %');
  return {
    filter: celFilter(expression),
    ...(status !== undefined ? { status_code: status } : {}),
    headers_to_add: Object.entries(headers).map(([key, value]) => ({
      header: { key, value },
      append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
    })),
    body_format_override: {
      content_type: 'application/json',
      text_format_source: { inline_string: body },
    },
  };
}

/**
 * Envoy's `local_reply_config`: the replies Envoy makes on its own, in the OpenAI envelope with
 * `x-tollgate-reason`, so SDKs and operators see them like Tollgate's denies. Each mapper keys
 * on Envoy's response-code details, never on the status alone: Tollgate's denies are local
 * replies too (details `ext_authz_denied`) and already carry the envelope, so they must not be
 * rewritten. Checked against Envoy 1.40:
 * - `request_payload_too_large`: a body over `maxRequestBytes` while ext_authz buffers it → 413;
 * - `ext_authz_error` (Check failed or timed out) and `ext_proc_error_gRPC_error_14…` (the
 *   ext_proc stream could not connect) mean Tollgate is unreachable → 503 instead of Envoy's
 *   bare 503/500. When Tollgate is down both happen: ext_proc fails on the ext_authz reply.
 * - `path_normalization_failed`: a path Envoy will not normalise (an escaped `/` or `\`, a NUL,
 *   a fragment) → 400 `invalid_path`. Envoy refuses it before it assigns a request id, so the
 *   reply makes one (`%UNIQUE_ID%`); the access log records it as the response's x-request-id.
 */
export function localReplyConfig(maxRequestBytes = DEFAULT_MAX_REQUEST_BYTES): Record<string, unknown> {
  const tooLarge = deny(
    'body_too_large',
    `The request body is larger than ${maxRequestBytes} bytes, the most this gateway accepts.`,
  );
  const unavailable = {
    ...deny(
      'internal_error',
      'The gateway could not reach its authorization service. Please retry shortly.',
    ),
    status: 503 as const,
    code: 'service_unavailable',
  };
  const badPath = deny(
    'invalid_path',
    'The request path is not in its plain form (an escaped slash or backslash, a NUL or a fragment); send the plain path.',
  );
  return {
    mappers: [
      envelopeMapper(
        `response.code_details == 'path_normalization_failed'`,
        envelope(badPath),
        { 'x-tollgate-reason': badPath.reason, 'x-request-id': '%UNIQUE_ID%' },
      ),
      envelopeMapper(
        `response.code == 413 && response.code_details == 'request_payload_too_large'`,
        envelope(tooLarge),
        { 'x-tollgate-reason': tooLarge.reason },
      ),
      envelopeMapper(
        `response.code_details == 'ext_authz_error' || response.code_details.startsWith('ext_proc_error_gRPC_error_14')`,
        envelope(unavailable),
        { 'x-tollgate-reason': unavailable.reason, 'retry-after': '1' },
        unavailable.status,
      ),
    ],
  };
}

/** Renders a bootstrap template (default: `envoy/local.yaml`) with the given options. */
export function renderBootstrap(
  options: BootstrapOptions,
  template = readFileSync(templatePath(), 'utf8'),
): string {
  const grpcHost = options.grpcHost ?? '127.0.0.1';
  if (isIP(grpcHost) === 0) throw new Error(`grpcHost must be an IP address, got ${grpcHost}`);
  const upstream = upstreamCluster(options.upstreamUrl, options.caFile);
  const values: Record<string, unknown> = {
    LISTEN_ADDRESS: options.listenAddress ?? '127.0.0.1',
    LISTEN_PORT: options.port ?? 0,
    GRPC_ADDRESS: grpcHost,
    GRPC_PORT: options.grpcPort,
    EARLY_HEADER_MUTATIONS: earlyHeaderMutations(options.identityHeaders ?? []),
    PROCESSING_MODE: toModeConfig(options.processingMode ?? BASE_PROCESSING_MODE),
    STREAM_EDIT_MODE: toModeConfig(STREAM_EDIT_PROCESSING_MODE),
    STREAM_OBSERVE_MODE: toModeConfig(STREAM_OBSERVE_PROCESSING_MODE),
    UPSTREAM_CLUSTER: upstream.cluster,
    UPSTREAM_HOST: upstream.host,
    MAX_REQUEST_BYTES: options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    REQUEST_HEADERS_TO_REMOVE: ROUTE_HEADERS_TO_REMOVE,
    LOCAL_REPLY_CONFIG: localReplyConfig(options.maxRequestBytes),
  };
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_match, name: string) => {
    if (!(name in values)) throw new Error(`unknown placeholder {{${name}}} in the Envoy template`);
    return JSON.stringify(values[name]);
  });
}
