/**
 * k8s/overlays/envoy-gateway (docs/envoy-gateway.md): rendered with the pinned kustomize; the
 * Kubernetes objects validated with kubernetes-validate as in manifests.test.ts, the Envoy
 * Gateway and Gateway API objects against the CRD schemas of the pinned Envoy Gateway
 * (scripts/envoy-gateway-crds.ts, test/helpers/crd-schema.ts); and the pieces that must agree
 * with each other and with envoy/production.yaml checked against each other.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { AUTHZ_NAMESPACE } from '../../src/edge/extproc-adapter.js';
import { CrdValidator } from '../helpers/crd-schema.js';
import {
  container,
  find,
  KUBERNETES_VERSIONS,
  kustomize,
  pin,
  podSpec,
  portNumber,
  productionEnvoy,
  readRepoFile,
  run,
  tool,
} from '../helpers/deploy.js';
import type { K8sObject } from '../helpers/deploy.js';

const OVERLAY = 'k8s/overlays/envoy-gateway';
const EXAMPLE = `${OVERLAY}/example-gateway.yaml`;

interface BackendRef {
  group?: string;
  kind?: string;
  name: string;
  port?: number;
}
interface TargetRef {
  group: string;
  kind: string;
  name: string;
}
interface BackendSettings {
  circuitBreaker?: Record<string, number>;
  healthCheck?: { active?: { type: string } };
}
interface ExtAuth {
  grpc: { backendRefs: BackendRef[]; backendSettings?: BackendSettings };
  headersToExtAuth?: string[];
  bodyToExtAuth?: { maxRequestBytes: number };
  timeout?: string;
  failOpen?: boolean;
  statusOnError?: number;
}
interface ExtProc {
  backendRefs: BackendRef[];
  backendSettings?: BackendSettings;
  processingMode?: { request?: object; response?: object; allowModeOverride?: boolean };
  metadata?: { accessibleNamespaces?: string[] };
  messageTimeout?: string;
  failOpen?: boolean;
  statusOnError?: number;
}
interface RouteFilter {
  type: string;
  urlRewrite?: { hostname?: string };
  requestHeaderModifier?: { remove?: string[] };
}

/** Envoy's own filter configs in envoy/production.yaml, by filter name (the matcher unwrapped). */
function productionFilter(name: string): Record<string, unknown> {
  const filters = productionEnvoy().hcm('ingress').http_filters as {
    name: string;
    typed_config: { extension_config?: { typed_config: Record<string, unknown> } } & Record<
      string,
      unknown
    >;
  }[];
  const filter = filters.find((f) => f.name === name);
  if (filter === undefined) throw new Error(`envoy/production.yaml has no filter ${name}`);
  return filter.typed_config.extension_config?.typed_config ?? filter.typed_config;
}

function specOf<T>(objects: readonly K8sObject[], kind: string, name: string): T {
  return find(objects, kind, name).spec as T;
}

describe('k8s manifests: the Envoy Gateway overlay', function () {
  this.timeout(120_000);
  let dir: string;
  let overlay: { yaml: string; objects: K8sObject[] };
  let example: K8sObject[];
  let crds: CrdValidator;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-eg-'));
    overlay = kustomize(OVERLAY);
    example = parseAllDocuments(readRepoFile(EXAMPLE)).map((d) => d.toJS() as K8sObject);
    crds = new CrdValidator();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the CRD schemas of the pinned Envoy Gateway', () => {
    expect(crds.envoyGateway).to.equal(pin('ENVOY_GATEWAY_VERSION'));
    expect(readRepoFile('docs/envoy-gateway.md')).to.include(
      `Envoy Gateway ${pin('ENVOY_GATEWAY_VERSION')}`,
    );
    expect(readRepoFile(`${OVERLAY}/kustomization.yaml`)).to.include(
      `Envoy Gateway ${pin('ENVOY_GATEWAY_VERSION')}`,
    );
  });

  it('renders Tollgate without Envoy, and the Envoy Gateway objects', () => {
    const names = overlay.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names).to.deep.equal(
      [
        'Backend/openai',
        'ClientTrafficPolicy/tollgate',
        'ConfigMap/tollgate-policy',
        'Deployment/tollgate',
        'EnvoyExtensionPolicy/tollgate',
        'HTTPRoute/openai',
        'HorizontalPodAutoscaler/tollgate',
        'NetworkPolicy/tollgate',
        'NetworkPolicy/tollgate-redis',
        'PodDisruptionBudget/tollgate',
        'SecurityPolicy/tollgate',
        'Service/tollgate',
        'Service/tollgate-redis',
        'ServiceAccount/tollgate',
        'StatefulSet/tollgate-redis',
      ].sort(),
    );
    expect(example.map((o) => `${o.kind}/${o.metadata.name}`)).to.deep.equal([
      'GatewayClass/tollgate',
      'Gateway/tollgate',
    ]);
  });

  it('validates the Kubernetes objects with kubernetes-validate and the rest against the CRDs', () => {
    const native = overlay.objects.filter((o) => !crds.covers(o));
    const custom = [...overlay.objects, ...example].filter((o) => crds.covers(o));
    expect(custom.map((o) => o.kind)).to.include.members([
      'SecurityPolicy',
      'EnvoyExtensionPolicy',
      'HTTPRoute',
      'Backend',
      'Gateway',
    ]);
    expect(native.length + custom.length).to.equal(overlay.objects.length + example.length);

    // The rendered documents as kustomize wrote them (quoting kept: `"yes"` stays a string).
    const file = join(dir, 'native.yaml');
    const documents = parseAllDocuments(overlay.yaml).filter(
      (d) => !crds.covers(d.toJS() as K8sObject),
    );
    writeFileSync(file, documents.map((d) => d.toString()).join('---\n'));
    const validator = tool('k8s-validate/bin/kubernetes-validate');
    for (const version of KUBERNETES_VERSIONS) {
      const res = run(validator, ['--strict', '-k', version, file]);
      expect(res.status, `against ${version}:\n${res.stdout}${res.stderr}`).to.equal(0);
      const passed = res.stdout.split('\n').filter((l) => l.includes(' passed for resource '));
      expect(passed, version).to.have.length(native.length);
    }
    for (const object of custom)
      expect(crds.problems(object), `${object.kind}/${object.metadata.name}`).to.deep.equal([]);
  });

  it('refuses a custom resource with a wrong field, type or value, or of a kind it does not serve', () => {
    const policy = structuredClone(find(overlay.objects, 'EnvoyExtensionPolicy', 'tollgate'));
    const extProc = (policy.spec as { extProc: (ExtProc & Record<string, unknown>)[] }).extProc[0]!;
    (extProc.processingMode as Record<string, unknown>)['allowModeOveride'] = true;
    extProc.statusOnError = 599;
    extProc.backendSettings!.circuitBreaker!['maxRequestsPerConnection'] =
      '500' as unknown as number;
    expect(crds.problems(policy)).to.deep.equal([
      'EnvoyExtensionPolicy/tollgate /spec/extProc/0/backendSettings/circuitBreaker/maxRequestsPerConnection: should be integer',
      "EnvoyExtensionPolicy/tollgate /spec/extProc/0/processingMode: should NOT have additional properties 'allowModeOveride'",
      'EnvoyExtensionPolicy/tollgate /spec/extProc/0/statusOnError: should be equal to one of the allowed values',
    ]);
    // A field Envoy Gateway does not have (Envoy's own name for it), at the top of the spec.
    const security = structuredClone(find(overlay.objects, 'SecurityPolicy', 'tollgate'));
    (security.spec as { extAuth: Record<string, unknown> }).extAuth['packAsBytes'] = true;
    expect(crds.problems(security)).to.deep.equal([
      "SecurityPolicy/tollgate /spec/extAuth: should NOT have additional properties 'packAsBytes'",
    ]);
    const route = structuredClone(find(overlay.objects, 'HTTPRoute', 'openai'));
    (route.spec as { rules: { filters: RouteFilter[] }[] }).rules[0]!.filters[0]!.type =
      'HostRewrite';
    expect(crds.problems(route)).to.include(
      'HTTPRoute/openai /spec/rules/0/filters/0/type: should be equal to one of the allowed values',
    );
    const unserved = {
      ...find(overlay.objects, 'Backend', 'openai'),
      apiVersion: 'gateway.envoyproxy.io/v1',
    };
    expect(crds.problems(unserved)).to.deep.equal([
      `Backend/openai: no CRD of Envoy Gateway ${crds.envoyGateway} serves gateway.envoyproxy.io/v1/Backend`,
    ]);
  });

  it("applies the API server's structural rules: int-or-string, kept unknown fields, nullable", () => {
    const file = join(dir, 'schemas.json');
    const spec = {
      type: 'object',
      properties: {
        port: { 'x-kubernetes-int-or-string': true },
        config: {
          type: 'object',
          'x-kubernetes-preserve-unknown-fields': true,
          properties: { known: { type: 'string' } },
        },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        items: {
          type: 'array',
          items: { type: 'object', properties: { name: { type: 'string' } } },
        },
        note: { type: 'string', nullable: true },
      },
    };
    const schema = {
      type: 'object',
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string' },
        metadata: { type: 'object' },
        spec,
      },
    };
    writeFileSync(
      file,
      JSON.stringify({ envoyGateway: 'test', schemas: { 'example.io/v1/Thing': schema } }),
    );
    const validator = new CrdValidator(file);
    const thing = (s: Record<string, unknown>): K8sObject => ({
      apiVersion: 'example.io/v1',
      kind: 'Thing',
      metadata: { name: 't' },
      spec: s,
    });
    const valid = {
      port: 'http',
      config: { anything: [1] },
      labels: { a: 'b' },
      items: [{ name: 'x' }],
      note: null,
    };
    expect(validator.problems(thing(valid))).to.deep.equal([]);
    expect(validator.problems(thing({ port: 8080 }))).to.deep.equal([]);
    expect(validator.problems(thing({ port: true }))).to.not.deep.equal([]);
    expect(validator.problems(thing({ labels: { a: 1 } }))).to.deep.equal([
      'Thing/t /spec/labels/a: should be string',
    ]);
    expect(validator.problems(thing({ items: [{ nam: 'x' }] }))).to.deep.equal([
      "Thing/t /spec/items/0: should NOT have additional properties 'nam'",
    ]);
    expect(
      validator.problems({ ...thing({}), metadata: { name: 't' }, status: {} } as K8sObject),
    ).to.deep.equal(["Thing/t /: should NOT have additional properties 'status'"]);
    expect(validator.covers(thing({}))).to.equal(true);
    expect(
      validator.covers({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' } }),
    ).to.equal(false);
  });

  it('runs Tollgate alone in the pod, behind a Service on its gRPC port', () => {
    const pod = podSpec(find(overlay.objects, 'Deployment', 'tollgate'));
    expect(pod.initContainers).to.equal(undefined);
    expect(pod.containers.map((c) => c.name)).to.deep.equal(['tollgate']);
    expect(pod.volumes?.map((v) => v.name)).to.not.include('envoy-config');
    const tollgate = container(pod, 'tollgate');
    expect(tollgate.restartPolicy).to.equal(undefined);
    const policy = parseConfig(
      find(overlay.objects, 'ConfigMap', 'tollgate-policy').data?.['tollgate.yaml'] ?? '',
      'tollgate.yaml',
    );
    expect(policy.server.grpc).to.equal(`0.0.0.0:${portNumber(pod, 'grpc')}`);
    expect(policy.store.redis, 'replicas share their counters').to.not.equal(undefined);
    // Withdrawn from the proxies first, then SIGTERM, then time to settle the open streams.
    const sleep = tollgate.lifecycle?.preStop?.sleep?.seconds ?? 0;
    expect(sleep).to.be.greaterThan(0);
    expect(sleep + policy.server.shutdownGraceSeconds).to.be.below(
      pod.terminationGracePeriodSeconds ?? 30,
    );

    const service = specOf<{
      ports: { name: string; port: number; targetPort: string; appProtocol?: string }[];
    }>(overlay.objects, 'Service', 'tollgate');
    expect(service.ports).to.have.length(1);
    expect(portNumber(pod, service.ports[0]!.targetPort)).to.equal(portNumber(pod, 'grpc'));
    expect(service.ports[0]!.appProtocol).to.equal('kubernetes.io/h2c');

    const netpol = specOf<{
      ingress: {
        from: { podSelector?: { matchLabels: Record<string, string> } }[];
        ports: { port: string }[];
      }[];
    }>(overlay.objects, 'NetworkPolicy', 'tollgate');
    const grpcRules = netpol.ingress.filter((r) => r.ports.some((p) => p.port === 'grpc'));
    expect(grpcRules).to.have.length(1);
    expect(grpcRules[0]!.from.map((f) => f.podSelector?.matchLabels)).to.deep.equal([
      {
        'app.kubernetes.io/name': 'envoy',
        'app.kubernetes.io/component': 'proxy',
        'app.kubernetes.io/managed-by': 'envoy-gateway',
      },
    ]);
    expect(
      netpol.ingress.every((r) => r.from.length > 0),
      'no port open to everyone',
    ).to.equal(true);
  });

  it('points both policies at the Tollgate Service and the route, the route at the Backend and the Gateway', () => {
    const service = specOf<{ ports: { port: number }[] }>(overlay.objects, 'Service', 'tollgate');
    const extAuth = specOf<{ extAuth: ExtAuth; targetRefs: TargetRef[] }>(
      overlay.objects,
      'SecurityPolicy',
      'tollgate',
    );
    const extProc = specOf<{ extProc: ExtProc[]; targetRefs: TargetRef[] }>(
      overlay.objects,
      'EnvoyExtensionPolicy',
      'tollgate',
    );
    const toService = [{ name: 'tollgate', port: service.ports[0]!.port }];
    expect(extAuth.extAuth.grpc.backendRefs).to.deep.equal(toService);
    expect(extProc.extProc).to.have.length(1);
    expect(extProc.extProc[0]!.backendRefs).to.deep.equal(toService);
    const toRoute = [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'openai' }];
    expect(extAuth.targetRefs).to.deep.equal(toRoute);
    expect(extProc.targetRefs).to.deep.equal(toRoute);

    const route = specOf<{
      parentRefs: { name: string }[];
      rules: { backendRefs: BackendRef[] }[];
    }>(overlay.objects, 'HTTPRoute', 'openai');
    expect(route.rules.flatMap((r) => r.backendRefs)).to.deep.equal([
      { group: 'gateway.envoyproxy.io', kind: 'Backend', name: 'openai', port: 443 },
    ]);
    const backend = specOf<{
      endpoints: { fqdn: { hostname: string; port: number } }[];
      tls: Record<string, unknown>;
    }>(overlay.objects, 'Backend', 'openai');
    expect(backend.endpoints).to.deep.equal([{ fqdn: { hostname: 'api.openai.com', port: 443 } }]);
    expect(backend.tls).to.deep.include({
      wellKnownCACertificates: 'System',
      sni: 'api.openai.com',
    });
    expect(backend.tls['insecureSkipVerify']).to.equal(undefined);

    const gateway = find(example, 'Gateway', route.parentRefs[0]!.name);
    const gatewayClass = find(
      example,
      'GatewayClass',
      (gateway.spec as { gatewayClassName: string }).gatewayClassName,
    );
    expect((gatewayClass.spec as { controllerName: string }).controllerName).to.equal(
      'gateway.envoyproxy.io/gatewayclass-controller',
    );
    expect(
      specOf<{ targetRefs: TargetRef[] }>(overlay.objects, 'ClientTrafficPolicy', 'tollgate')
        .targetRefs,
    ).to.deep.equal([
      { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: gateway.metadata.name },
    ]);
  });

  it('says what envoy/production.yaml says, wherever Envoy Gateway can say it', () => {
    const prod = productionEnvoy();
    const authz = productionFilter('envoy.filters.http.ext_authz') as {
      grpc_service: { timeout: string };
      failure_mode_allow: boolean;
      status_on_error: { code: string };
      with_request_body: { max_request_bytes: number };
    };
    const extAuth = specOf<{ extAuth: ExtAuth }>(
      overlay.objects,
      'SecurityPolicy',
      'tollgate',
    ).extAuth;
    expect(extAuth.timeout).to.equal(authz.grpc_service.timeout);
    expect(extAuth.failOpen).to.equal(authz.failure_mode_allow);
    expect(authz.status_on_error.code).to.equal('ServiceUnavailable');
    expect(extAuth.statusOnError).to.equal(503);
    expect(extAuth.bodyToExtAuth?.maxRequestBytes).to.equal(
      authz.with_request_body.max_request_bytes,
    );
    // Every header reaches the Check: Tollgate finds the caller's token wherever it rides.
    expect(extAuth.headersToExtAuth).to.equal(undefined);

    const proc = productionFilter('envoy.filters.http.ext_proc') as {
      failure_mode_allow: boolean;
      message_timeout: string;
      allow_mode_override: boolean;
      processing_mode: Record<string, string>;
      metadata_options: { forwarding_namespaces: { untyped: string[] } };
    };
    const extProc = specOf<{ extProc: ExtProc[] }>(
      overlay.objects,
      'EnvoyExtensionPolicy',
      'tollgate',
    ).extProc[0]!;
    expect(proc.processing_mode).to.deep.include({
      request_header_mode: 'SEND',
      response_header_mode: 'SEND',
      request_body_mode: 'NONE',
      response_body_mode: 'NONE',
    });
    expect(extProc.processingMode).to.deep.equal({
      request: {},
      response: {},
      allowModeOverride: proc.allow_mode_override,
    });
    expect(extProc.messageTimeout).to.equal(proc.message_timeout);
    expect(extProc.failOpen).to.equal(proc.failure_mode_allow);
    expect(extProc.statusOnError).to.equal(503);
    expect(extProc.metadata?.accessibleNamespaces).to.deep.equal(
      proc.metadata_options.forwarding_namespaces.untyped,
    );
    expect(extProc.metadata?.accessibleNamespaces).to.deep.equal([AUTHZ_NAMESPACE]);

    // The cluster that points at Tollgate: same limits, at most 500 streams per connection.
    const cluster = prod.cluster('tollgate') as unknown as {
      circuit_breakers: { thresholds: Record<string, number>[] };
      typed_extension_protocol_options: Record<
        string,
        { common_http_protocol_options: { max_requests_per_connection: number } }
      >;
    };
    const limits = cluster.circuit_breakers.thresholds[0]!;
    const options = Object.values(cluster.typed_extension_protocol_options)[0]!;
    for (const settings of [extAuth.grpc.backendSettings, extProc.backendSettings]) {
      expect(settings?.circuitBreaker).to.deep.equal({
        maxConnections: limits['max_connections'],
        maxPendingRequests: limits['max_pending_requests'],
        maxParallelRequests: limits['max_requests'],
        maxRequestsPerConnection: options.common_http_protocol_options.max_requests_per_connection,
      });
      expect(settings?.healthCheck?.active?.type).to.equal('GRPC');
    }

    // The route: host, the headers removed, and the identity headers dropped on arrival.
    const route = prod.routes('ingress')[0]!;
    const filters = specOf<{ rules: { filters: RouteFilter[] }[] }>(
      overlay.objects,
      'HTTPRoute',
      'openai',
    ).rules[0]!.filters;
    expect(filters.find((f) => f.type === 'URLRewrite')?.urlRewrite?.hostname).to.equal(
      route.route.host_rewrite_literal,
    );
    expect(
      filters.find((f) => f.type === 'RequestHeaderModifier')?.requestHeaderModifier?.remove,
    ).to.deep.equal(route.request_headers_to_remove);
    const early = (
      prod.hcm('ingress').early_header_mutation_extensions as {
        typed_config: { mutations: { remove: string }[] };
      }[]
    )[0]!.typed_config.mutations.map((m) => m.remove);
    const client = specOf<{
      headers: {
        earlyRequestHeaders: { remove: string[] };
        withUnderscoresAction: string;
        requestID: string;
      };
    }>(overlay.objects, 'ClientTrafficPolicy', 'tollgate');
    expect(client.headers.earlyRequestHeaders.remove).to.deep.equal(early);
    const policy = parseConfig(
      find(overlay.objects, 'ConfigMap', 'tollgate-policy').data?.['tollgate.yaml'] ?? '',
      'tollgate.yaml',
    );
    expect(client.headers.earlyRequestHeaders.remove).to.have.members(
      Object.keys(policy.identityHeaders),
    );
    expect(client.headers.withUnderscoresAction).to.equal('DropHeader');
    expect(client.headers.requestID).to.equal('Generate');
    const hcm = prod.hcm('ingress') as unknown as {
      stream_idle_timeout: string;
      request_headers_timeout: string;
      common_http_protocol_options: { idle_timeout: string; max_stream_duration: string };
    };
    const timeouts = specOf<{
      timeout: { http: Record<string, string> };
      connection: { connectionLimit: Record<string, unknown> };
    }>(overlay.objects, 'ClientTrafficPolicy', 'tollgate');
    expect(timeouts.timeout.http).to.deep.equal({
      streamIdleTimeout: hcm.stream_idle_timeout,
      requestHeadersReceivedTimeout: hcm.request_headers_timeout,
      idleTimeout: hcm.common_http_protocol_options.idle_timeout,
    });
    // The ceiling only: a `value` would add a connection limit production.yaml does not have.
    expect(timeouts.connection.connectionLimit).to.deep.equal({
      maxStreamDuration: hcm.common_http_protocol_options.max_stream_duration,
    });
  });
});
