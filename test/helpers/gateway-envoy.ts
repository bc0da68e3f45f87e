/**
 * Envoy as Envoy Gateway configures it for Tollgate as an extension service: the ext_authz and
 * ext_proc clusters each reach the same R replicas (one Kubernetes Service), round-robin, with
 * what a SecurityPolicy's / EnvoyExtensionPolicy's `backendSettings` adds to those clusters:
 * an active gRPC health check (`healthCheck.active`, type GRPC), outlier detection
 * (`healthCheck.passive`) and a retry policy on the gRPC service (`retry`), and the ext_authz
 * filter named as EG names it. Built on the split bootstrap (split-envoy.ts), so every other
 * setting is the product's own (the ext_proc filters keep the product's matcher, which EG
 * cannot express); docs/scaling.md says which values were chosen and why.
 */
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startEnvoy, type EnvoyOptions, type RunningEnvoy } from '../../src/stack/envoy.js';
import { stackBootstrapOptions } from '../../src/stack/run.js';
import { splitBootstrap } from './split-envoy.js';

type Json = Record<string, unknown>;

/**
 * `backendSettings.healthCheck.active` as EG renders it (type GRPC, no service name: the
 * server's overall status, which Tollgate turns NOT_SERVING at the first moment of a SIGTERM).
 */
export const HEALTH_CHECK: Json = {
  timeout: '0.5s',
  interval: '0.5s',
  unhealthy_threshold: 1,
  healthy_threshold: 1,
  grpc_health_check: {},
  // Envoy checks a cluster that has had no traffic yet only every 60 s; a gateway in service
  // is long past that, this one gets its first request a moment after it starts.
  no_traffic_interval: '0.5s',
};

/**
 * `backendSettings.healthCheck.passive`: a replica that refuses connections (it exited) is
 * ejected at the first local-origin failure, without waiting for the next health check.
 */
export const OUTLIER_DETECTION: Json = {
  split_external_local_origin_errors: true,
  consecutive_local_origin_failure: 1,
  consecutive_gateway_failure: 3,
  interval: '1s',
  base_ejection_time: '10s',
  max_ejection_percent: 100,
};

/**
 * `backendSettings.retry` (→ `grpc_service.retry_policy`, `perRetry.backOff`) with explicit triggers: only failures
 * that prove the call never reached a replica's code (`connect-failure`, `refused-stream` after
 * a GOAWAY, `reset-before-request` when a connection closes under queued calls), so a retried
 * Check is never counted twice. EG's default triggers add `unavailable`, `cancelled` and
 * `retriable-status-codes`, which could retry a Check that was already admitted.
 */
export const RETRY_POLICY: Json = {
  retry_on: 'connect-failure,refused-stream,reset-before-request',
  num_retries: 3,
  // Envoy also makes `max_interval` each attempt's timeout (x-envoy-expected-rq-timeout-ms):
  // a shorter one than the Check's own timeout fails slow Checks (a JWKS fetch, a cold start)
  // with ext_authz_error, after they may have been admitted.
  retry_back_off: { base_interval: '0.05s', max_interval: '2s' },
};

const TOLLGATE_CLUSTERS = ['tollgate', 'tollgate_ext_proc'];

/**
 * EG names each policy's filter `<type>/<policy kind>/<namespace>/<name>`. Envoy still files
 * ext_authz's dynamic metadata under `envoy.filters.http.ext_authz`, whatever the filter's
 * name: the ext_proc side reads the hand-off there (the rolling e2e proves it).
 */
export const EG_EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz/securitypolicy/default/tollgate';

function grpcServices(value: unknown, out: Json[] = []): Json[] {
  if (Array.isArray(value)) for (const v of value) grpcServices(v, out);
  else if (typeof value === 'object' && value !== null) {
    for (const [key, v] of Object.entries(value as Json)) {
      if (key === 'grpc_service' && typeof v === 'object' && v !== null) out.push(v as Json);
      else grpcServices(v, out);
    }
  }
  return out;
}

/** The split bootstrap with both Tollgate clusters on `ports`, set up as EG sets them up. */
export function gatewayBootstrap(configYaml: string, ports: readonly number[], upstreamUrl: string): string {
  const doc = parse(splitBootstrap(configYaml, ports, ports, upstreamUrl)) as Json;
  const statics = doc['static_resources'] as Json;
  for (const cluster of statics['clusters'] as Json[]) {
    if (!TOLLGATE_CLUSTERS.includes(String(cluster['name']))) continue;
    cluster['lb_policy'] = 'ROUND_ROBIN';
    cluster['health_checks'] = [HEALTH_CHECK];
    cluster['outlier_detection'] = OUTLIER_DETECTION;
  }
  const listener = (statics['listeners'] as Json[])[0] as Json;
  const hcm = ((listener['filter_chains'] as Json[])[0]?.['filters'] as Json[])[0]?.['typed_config'] as Json;
  const extAuthz = (hcm['http_filters'] as Json[]).find((f) => f['name'] === 'envoy.filters.http.ext_authz');
  if (extAuthz === undefined) throw new Error('bootstrap has no ext_authz filter');
  extAuthz['name'] = EG_EXT_AUTHZ_FILTER;
  // One line per request on stdout: what a failed request met, for the test to show.
  hcm['access_log'] = [
    {
      name: 'envoy.access_loggers.stdout',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
        log_format: { text_format_source: { inline_string: 'ACCESS %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS% %DURATION%ms\n' } },
      },
    },
  ];
  const services = grpcServices(statics['listeners']);
  if (services.length !== 4) throw new Error(`expected ext_authz and three ext_proc filters, found ${services.length}`);
  for (const service of services) service['retry_policy'] = RETRY_POLICY;
  return stringify(doc);
}

/** Real Envoy with {@link gatewayBootstrap}. */
export function startGatewayEnvoy(
  configYaml: string,
  ports: readonly number[],
  upstreamUrl: string,
  opts: Pick<EnvoyOptions, 'logLevel' | 'onLog'> = {},
): Promise<RunningEnvoy> {
  return startEnvoy({
    ...stackBootstrapOptions(parseConfig(configYaml), ports[0] ?? 0, upstreamUrl, 0),
    ...opts,
    bootstrap: gatewayBootstrap(configYaml, ports, upstreamUrl),
  });
}
