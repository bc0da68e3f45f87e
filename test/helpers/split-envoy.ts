/**
 * Envoy as a shared-service deployment runs it (Envoy Gateway, several replicas behind a
 * Service): the ext_authz cluster and the ext_proc cluster each reach their own list of
 * sidecars, round-robin. Rendered like `tollgate stack`'s bootstrap and edited, so every
 * other setting is the product's own.
 */
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startEnvoy, type RunningEnvoy } from '../../src/stack/envoy.js';
import { renderBootstrap } from '../../src/stack/bootstrap.js';
import { stackBootstrapOptions } from '../../src/stack/run.js';

type Json = Record<string, unknown>;

function endpoints(ports: readonly number[]): Json[] {
  return ports.map((port) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }));
}

function at(value: unknown, ...path: (string | number)[]): Json {
  let current = value;
  for (const key of path) current = (current as Json)[key as string];
  if (typeof current !== 'object' || current === null) throw new Error(`bootstrap has no ${path.join('.')}`);
  return current as Json;
}

const EXT_PROC_FILTERS: readonly string[] = [
  'envoy.filters.http.ext_proc',
  'tollgate.ext_proc.stream_edit',
  'tollgate.ext_proc.stream_observe',
];

/** The bootstrap with ext_authz on `authz` and ext_proc on `extProc` (gRPC ports on loopback). */
export function splitBootstrap(configYaml: string, authz: readonly number[], extProc: readonly number[], upstreamUrl: string): string {
  const first = authz[0];
  if (first === undefined || extProc.length === 0) throw new Error('need at least one sidecar for each call');
  const doc = parse(renderBootstrap(stackBootstrapOptions(parseConfig(configYaml), first, upstreamUrl, 0))) as Json;
  const clusters = at(doc, 'static_resources', 'clusters') as unknown as Json[];
  const tollgate = clusters.find((c) => c['name'] === 'tollgate');
  if (tollgate === undefined) throw new Error('bootstrap has no tollgate cluster');
  at(tollgate, 'load_assignment')['endpoints'] = [{ lb_endpoints: endpoints(authz) }];
  const extProcCluster = structuredClone(tollgate);
  extProcCluster['name'] = 'tollgate_ext_proc';
  at(extProcCluster, 'load_assignment')['cluster_name'] = 'tollgate_ext_proc';
  at(extProcCluster, 'load_assignment')['endpoints'] = [{ lb_endpoints: endpoints(extProc) }];
  clusters.push(extProcCluster);
  const filters = at(doc, 'static_resources', 'listeners', 0, 'filter_chains', 0, 'filters', 0, 'typed_config', 'http_filters') as unknown as Json[];
  // The headers filter and the two stream filters (handoff/stream-profile.ts) all go there.
  const extProcFilters = filters.filter((f) => EXT_PROC_FILTERS.includes(String(f['name'])));
  if (extProcFilters.length !== EXT_PROC_FILTERS.length) throw new Error('bootstrap lacks an ext_proc filter');
  for (const extProcFilter of extProcFilters) {
    // ext_proc sits inside a matcher (it runs only for what Tollgate admitted): find its config.
    const inner = at(extProcFilter, 'typed_config', 'extension_config', 'typed_config');
    at(inner, 'grpc_service', 'envoy_grpc')['cluster_name'] = 'tollgate_ext_proc';
  }
  return stringify(doc);
}

/** Real Envoy with ext_authz and ext_proc split across sidecars (see splitBootstrap). */
export function startSplitEnvoy(
  configYaml: string,
  authz: readonly number[],
  extProc: readonly number[],
  upstreamUrl: string,
): Promise<RunningEnvoy> {
  const first = authz[0] ?? 0;
  return startEnvoy({
    ...stackBootstrapOptions(parseConfig(configYaml), first, upstreamUrl, 0),
    bootstrap: splitBootstrap(configYaml, authz, extProc, upstreamUrl),
  });
}
