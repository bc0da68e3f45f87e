/**
 * The deployment artefacts as tests see them: the pinned tools of scripts/install-tools.sh,
 * `kustomize build` output parsed into objects, and small typed views of the fields we check.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '..', '..');

/** The documented minimum (native sidecars and the preStop sleep action on by default) and the newest schemas bundled. */
export const KUBERNETES_VERSIONS = ['1.30', '1.37'];

export function readRepoFile(path: string): string {
  return readFileSync(join(ROOT, path), 'utf8');
}

/** A pin of scripts/install-tools.sh, e.g. `pin('NODE24_VERSION')`. */
export function pin(name: string): string {
  const match = new RegExp(`^${name}=(\\S+)$`, 'm').exec(readRepoFile('scripts/install-tools.sh'));
  if (match?.[1] === undefined) throw new Error(`scripts/install-tools.sh has no ${name}=`);
  return match[1];
}

/** A tool under .tools/; fails (never skips) when `npm run setup` has not installed it. */
export function tool(path: string): string {
  const full = join(ROOT, '.tools', path);
  if (!existsSync(full)) {
    throw new Error(`${full} is missing: run \`npm run setup\` (scripts/install-tools.sh)`);
  }
  return full;
}

export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(command: string, args: readonly string[], cwd = ROOT): Run {
  const res = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  if (res.error) throw res.error;
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** Runs and returns stdout; throws with stderr on a non-zero exit. */
export function runOk(command: string, args: readonly string[], cwd = ROOT): string {
  const res = run(command, args, cwd);
  if (res.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${res.status}:\n${res.stderr}${res.stdout}`,
    );
  }
  return res.stdout;
}

export interface Probe {
  grpc?: { port: number; service?: string };
  httpGet?: { path: string; port: number | string };
  tcpSocket?: { port: number | string };
  periodSeconds?: number;
  failureThreshold?: number;
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  restartPolicy?: string;
  env?: { name: string; value?: string }[];
  ports?: { name: string; containerPort: number }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsUser?: number;
    runAsNonRoot?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}

export interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  emptyDir?: Record<string, unknown>;
}

export interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  terminationGracePeriodSeconds?: number;
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  // The rest differs per kind; tests narrow it with the views below.
  spec?: Record<string, unknown>;
}

/** `kustomize build <dir>` with the pinned kustomize: the raw YAML and its objects. */
export function kustomize(dir: string): { yaml: string; objects: K8sObject[] } {
  const yaml = runOk(tool('bin/kustomize'), ['build', join(ROOT, dir)]);
  const objects = parseAllDocuments(yaml).map((doc) => doc.toJS() as K8sObject);
  return { yaml, objects };
}

export function find(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter(
    (o) => o.kind === kind && (name === undefined || o.metadata.name === name),
  );
  if (found.length !== 1)
    throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0]!;
}

export function podSpec(workload: K8sObject): PodSpec {
  return (workload.spec as { template: { spec: PodSpec } }).template.spec;
}

export function container(spec: PodSpec, name: string): Container {
  const found = [...(spec.initContainers ?? []), ...spec.containers].find((c) => c.name === name);
  if (found === undefined) throw new Error(`no container ${name}`);
  return found;
}

/** A named container port → its number (what probes and NetworkPolicies refer to). */
export function portNumber(spec: PodSpec, port: number | string): number {
  if (typeof port === 'number') return port;
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const p = c.ports?.find((x) => x.name === port);
    if (p !== undefined) return p.containerPort;
  }
  throw new Error(`no container port named ${port}`);
}

export interface SocketAddress {
  address: string;
  port_value: number;
}

export interface Route {
  match: { path?: string; prefix?: string };
  route: {
    cluster: string;
    timeout?: string;
    idle_timeout?: string;
    host_rewrite_literal?: string;
  };
  request_headers_to_remove?: string[];
  response_headers_to_add?: unknown[];
}

export interface Hcm {
  http_filters: unknown[];
  early_header_mutation_extensions?: unknown[];
  local_reply_config?: unknown;
  use_remote_address?: boolean;
  normalize_path?: boolean;
  merge_slashes?: boolean;
  path_with_escaped_slashes_action?: string;
  access_log?: { typed_config: { log_format: { json_format: Record<string, string> } } }[];
  route_config: { virtual_hosts: { routes: Route[] }[] };
}

export interface Listener {
  name: string;
  address: { socket_address: SocketAddress };
  filter_chains: { filters: { name: string; typed_config: Hcm }[] }[];
}

export interface Cluster {
  name: string;
  type?: string;
  typed_extension_protocol_options?: unknown;
  transport_socket?: unknown;
  load_assignment: {
    endpoints: { lb_endpoints: { endpoint: { address: { socket_address: SocketAddress } } }[] }[];
  };
}

export interface Bootstrap {
  admin: { address: { socket_address: SocketAddress } };
  overload_manager?: {
    resource_monitors: { name: string; typed_config: { max_heap_size_bytes?: number } }[];
  };
  static_resources: { listeners: Listener[]; clusters: Cluster[] };
}

/** Typed lookups into an Envoy bootstrap (static resources only). */
export class EnvoyConfig {
  readonly doc: Bootstrap;

  constructor(doc: Bootstrap) {
    this.doc = doc;
  }

  static parse(text: string): EnvoyConfig {
    return new EnvoyConfig(parse(text) as Bootstrap);
  }

  listener(name: string): Listener {
    const found = this.doc.static_resources.listeners.find((l) => l.name === name);
    if (found === undefined) throw new Error(`no listener ${name}`);
    return found;
  }

  hcm(listener: string): Hcm {
    const filter = this.listener(listener).filter_chains[0]?.filters[0];
    if (filter === undefined) throw new Error(`listener ${listener} has no filter`);
    return filter.typed_config;
  }

  routes(listener: string): Route[] {
    return this.hcm(listener).route_config.virtual_hosts.flatMap((v) => v.routes);
  }

  cluster(name: string): Cluster {
    const found = this.doc.static_resources.clusters.find((c) => c.name === name);
    if (found === undefined) throw new Error(`no cluster ${name}`);
    return found;
  }

  /** The single endpoint of a static cluster. */
  endpoint(cluster: string): SocketAddress {
    const ep = this.cluster(cluster).load_assignment.endpoints[0]?.lb_endpoints[0];
    if (ep === undefined) throw new Error(`cluster ${cluster} has no endpoint`);
    return ep.endpoint.address.socket_address;
  }
}

/** envoy/production.yaml. */
export function productionEnvoy(): EnvoyConfig {
  return EnvoyConfig.parse(readRepoFile('envoy/production.yaml'));
}
