/**
 * k8s/: rendered with the pinned kustomize, every object validated offline against the
 * Kubernetes JSON schemas (kubernetes-validate, strict), and the pieces that must agree with
 * each other (ports, paths, images, the policy, the Envoy bootstrap) checked against each other.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
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
import type { K8sObject, PodSpec } from '../helpers/deploy.js';

function policyOf(objects: readonly K8sObject[]): Config {
  const text = find(objects, 'ConfigMap', 'tollgate-policy').data?.['tollgate.yaml'];
  expect(text, 'tollgate-policy has tollgate.yaml').to.be.a('string');
  return parseConfig(text!, 'tollgate.yaml');
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

describe('k8s manifests', function () {
  this.timeout(120_000);
  let dir: string;
  let base: { yaml: string; objects: K8sObject[] };
  let redis: { yaml: string; objects: K8sObject[] };
  let pod: PodSpec;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-k8s-'));
    base = kustomize('k8s/base');
    redis = kustomize('k8s/overlays/redis');
    pod = podSpec(find(base.objects, 'Deployment', 'tollgate'));
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the pinned kustomize', () => {
    expect(run(tool('bin/kustomize'), ['version']).stdout.trim()).to.equal(
      pin('KUSTOMIZE_VERSION'),
    );
  });

  it('validates every rendered object strictly against the Kubernetes schemas', () => {
    const validator = tool('k8s-validate/bin/kubernetes-validate');
    const files = [base, redis].map((rendered, i) => {
      const file = join(dir, `rendered-${i}.yaml`);
      writeFileSync(file, rendered.yaml);
      return file;
    });
    for (const version of KUBERNETES_VERSIONS) {
      const res = run(validator, ['--strict', '-k', version, ...files]);
      expect(res.status, `against ${version}:\n${res.stdout}${res.stderr}`).to.equal(0);
      const passed = res.stdout.split('\n').filter((l) => l.includes(' passed for resource '));
      expect(passed, version).to.have.length(base.objects.length + redis.objects.length);
    }
    // The validator really rejects what Kubernetes would: an unknown field in the pod spec.
    const broken = join(dir, 'broken.yaml');
    writeFileSync(
      broken,
      base.yaml.replace(
        'enableServiceLinks: false',
        'enableServiceLinks: false\n      hostNetwrk: true',
      ),
    );
    const res = run(validator, ['--strict', '-k', KUBERNETES_VERSIONS[0]!, broken]);
    expect(res.status).to.not.equal(0);
    expect(res.stdout + res.stderr).to.include("'hostNetwrk' was unexpected");
  });

  it('renders the expected objects', () => {
    const names = (objects: readonly K8sObject[]) =>
      objects
        .map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, '-<hash>')}`)
        .sort();
    const baseNames = [
      'ConfigMap/tollgate-envoy-<hash>',
      'ConfigMap/tollgate-policy',
      'Deployment/tollgate',
      'HorizontalPodAutoscaler/tollgate',
      'NetworkPolicy/tollgate',
      'PodDisruptionBudget/tollgate',
      'Service/tollgate',
      'ServiceAccount/tollgate',
    ];
    expect(names(base.objects)).to.deep.equal(baseNames);
    expect(names(redis.objects)).to.deep.equal(
      [
        ...baseNames,
        'NetworkPolicy/tollgate-redis',
        'Service/tollgate-redis',
        'StatefulSet/tollgate-redis',
      ].sort(),
    );
  });

  it('runs Tollgate as a native sidecar of Envoy, both locked down', () => {
    expect(pod.initContainers?.map((c) => c.name)).to.deep.equal(['tollgate']);
    expect(pod.containers.map((c) => c.name)).to.deep.equal(['envoy']);
    const tollgate = container(pod, 'tollgate');
    expect(tollgate.restartPolicy).to.equal('Always');
    expect(pod.securityContext?.runAsNonRoot).to.equal(true);
    expect(pod.securityContext?.seccompProfile?.type).to.equal('RuntimeDefault');
    expect(pod.automountServiceAccountToken).to.equal(false);
    for (const c of [tollgate, container(pod, 'envoy')]) {
      expect(c.securityContext, c.name).to.deep.include({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(c.securityContext?.runAsUser, c.name).to.be.a('number').and.not.equal(0);
      expect(c.resources?.requests?.['cpu'], c.name).to.be.a('string');
      expect(c.resources?.requests?.['memory'], c.name).to.be.a('string');
      expect(c.resources?.limits?.['memory'], c.name).to.be.a('string');
      expect(c.livenessProbe, c.name).to.be.an('object');
      expect(c.readinessProbe, c.name).to.be.an('object');
    }
  });

  it('probes Tollgate over grpc.health.v1 on the gRPC port of the policy', () => {
    const policy = policyOf(base.objects);
    const grpc = hostPort(policy.server.grpc);
    // The kubelet probes the pod IP: a loopback-only listener would never become ready.
    expect(grpc.host).to.equal('0.0.0.0');
    const tollgate = container(pod, 'tollgate');
    expect(portNumber(pod, 'grpc')).to.equal(grpc.port);
    for (const probe of [tollgate.startupProbe, tollgate.readinessProbe, tollgate.livenessProbe]) {
      expect(probe?.grpc?.port).to.equal(grpc.port);
    }
    // Envoy's gRPC cluster reaches the sidecar over loopback, on the same port.
    expect(productionEnvoy().endpoint('tollgate')).to.deep.equal({
      address: '127.0.0.1',
      port_value: grpc.port,
    });
    const metrics = hostPort(policy.server.metrics ?? '');
    expect(portNumber(pod, 'metrics')).to.equal(metrics.port);
    const annotations = find(base.objects, 'Deployment', 'tollgate').spec as {
      template: { metadata: { annotations: Record<string, string> } };
    };
    expect(annotations.template.metadata.annotations['prometheus.io/port']).to.equal(
      String(metrics.port),
    );
  });

  it("probes Envoy's readiness without exec while admin stays on loopback", () => {
    const envoy = productionEnvoy();
    const envoyContainer = container(pod, 'envoy');
    expect(envoy.doc.admin.address.socket_address.address).to.equal('127.0.0.1');
    const probe = envoyContainer.readinessProbe?.httpGet;
    expect(probe?.path).to.equal('/ready');
    expect(envoy.listener('admin-probe').address.socket_address.port_value).to.equal(
      portNumber(pod, probe!.port),
    );
    const route = envoy.routes('admin-probe').find((r) => r.match.path === '/ready');
    expect(route?.route.cluster).to.equal('envoy_admin');
    expect(envoy.endpoint('envoy_admin')).to.deep.equal(envoy.doc.admin.address.socket_address);
    expect(envoy.routes('admin-probe').map((r) => r.match.path)).to.deep.equal([
      '/ready',
      '/stats/prometheus',
    ]);
    expect(envoy.listener('ingress').address.socket_address.port_value).to.equal(
      portNumber(pod, 'http'),
    );
    expect(portNumber(pod, envoyContainer.livenessProbe?.tcpSocket?.port ?? '')).to.equal(
      portNumber(pod, 'http'),
    );
    expect(envoyContainer.lifecycle?.preStop?.sleep?.seconds).to.be.greaterThan(0);
  });

  it('mounts the Envoy bootstrap, the policy and the OpenAI key where the configs expect them', () => {
    const envoyMap = base.objects.find(
      (o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('tollgate-envoy-'),
    );
    expect(envoyMap?.data?.['envoy.yaml']).to.equal(readRepoFile('envoy/production.yaml'));
    const volume = (name: string) => pod.volumes?.find((v) => v.name === name);
    const mount = (c: string, name: string) =>
      container(pod, c).volumeMounts?.find((m) => m.name === name);

    // Envoy: a hashed ConfigMap name (a change rolls the pods), read from the path in its args.
    expect(volume('envoy-config')?.configMap?.name).to.equal(envoyMap?.metadata.name);
    const args = container(pod, 'envoy').args ?? [];
    expect(args[args.indexOf('--config-path') + 1]).to.equal(
      `${mount('envoy', 'envoy-config')?.mountPath}/envoy.yaml`,
    );

    // Tollgate: a fixed name and a directory mount (no subPath), so updates reach the running
    // pod and its watcher reloads; the path is the image's CMD.
    expect(volume('policy')?.configMap?.name).to.equal('tollgate-policy');
    const policyMount = mount('tollgate', 'policy');
    expect(policyMount?.subPath).to.equal(undefined);
    const cmd = /^CMD (\[.*\])$/m.exec(readRepoFile('Dockerfile'))?.[1];
    const configPath = `${policyMount?.mountPath}/tollgate.yaml`;
    expect(JSON.parse(cmd ?? '[]')).to.deep.equal(['serve', '--config', configPath]);
    expect(container(pod, 'tollgate').args).to.deep.equal(['serve', '--config', configPath]);

    const apiKey = policyOf(base.objects).upstream.apiKey;
    expect(apiKey).to.deep.equal({ file: '/var/run/secrets/openai/api-key' });
    const secret = volume('openai-key')?.secret;
    expect(secret?.secretName).to.equal('tollgate-openai');
    const item = secret?.items?.[0];
    expect(`${mount('tollgate', 'openai-key')?.mountPath}/${item?.path}`).to.equal(
      '/var/run/secrets/openai/api-key',
    );
    expect(mount('envoy', 'openai-key'), 'Envoy never sees the key').to.equal(undefined);
  });

  it('runs the images this repository pins and tests', () => {
    const version = (JSON.parse(readRepoFile('package.json')) as { version: string }).version;
    expect(container(pod, 'tollgate').image).to.equal(`tollgate:${version}`);
    expect(container(pod, 'envoy').image).to.equal(
      `envoyproxy/envoy:v${readRepoFile('envoy/VERSION').trim()}`,
    );
    // Envoy sheds load (overload manager) before the kernel kills it.
    const heap = productionEnvoy().doc.overload_manager?.resource_monitors.find((m) =>
      m.name.endsWith('fixed_heap'),
    );
    const limit = container(pod, 'envoy').resources?.limits?.['memory'] ?? '';
    expect(heap?.typed_config.max_heap_size_bytes).to.be.below(
      Number(/^(\d+)Mi$/.exec(limit)?.[1]) * 2 ** 20,
    );
  });

  it('admits nobody but Envoy to the Tollgate gRPC port, and only monitoring to metrics', () => {
    const policy = find(base.objects, 'NetworkPolicy', 'tollgate').spec as {
      policyTypes: string[];
      ingress: {
        from?: { namespaceSelector?: { matchLabels: Record<string, string> } }[];
        ports: { port: number | string }[];
      }[];
    };
    expect(policy.policyTypes).to.deep.equal(['Ingress']);
    const open = policy.ingress
      .filter((r) => r.from === undefined)
      .flatMap((r) => r.ports.map((p) => portNumber(pod, p.port)));
    expect(open).to.deep.equal([portNumber(pod, 'http')]);
    const monitoring = policy.ingress.filter((r) => r.from !== undefined);
    expect(monitoring).to.have.length(1);
    expect(monitoring[0]?.from?.[0]?.namespaceSelector?.matchLabels).to.deep.equal({
      'kubernetes.io/metadata.name': 'monitoring',
    });
    expect(monitoring[0]?.ports.map((p) => portNumber(pod, p.port))).to.deep.equal([9464, 9902]);
    const allowed = policy.ingress.flatMap((r) => r.ports.map((p) => portNumber(pod, p.port)));
    expect(allowed).to.not.include(portNumber(pod, 'grpc'));
  });

  it('keeps a single replica on in-memory counters and scales only with Redis', () => {
    const hpa = (objects: readonly K8sObject[]) =>
      find(objects, 'HorizontalPodAutoscaler', 'tollgate').spec as {
        minReplicas: number;
        maxReplicas: number;
      };
    expect(policyOf(base.objects).store.redis).to.equal(undefined);
    expect(hpa(base.objects)).to.include({ minReplicas: 1, maxReplicas: 1 });
    expect(hpa(redis.objects).minReplicas).to.be.at.least(2);
    expect(hpa(redis.objects).maxReplicas).to.be.above(hpa(redis.objects).minReplicas);
    // The autoscaler owns the count: an applied `replicas` would fight it.
    expect(find(base.objects, 'Deployment', 'tollgate').spec?.['replicas']).to.equal(undefined);
    expect(find(redis.objects, 'PodDisruptionBudget', 'tollgate').spec).to.include({
      maxUnavailable: 1,
    });
  });

  it('points the overlay policy at the overlay Redis, and changes nothing else', () => {
    const basePolicy = policyOf(base.objects);
    const overlayPolicy = policyOf(redis.objects);
    const redisConfig = overlayPolicy.store.redis;
    expect(redisConfig).to.not.equal(undefined);
    expect({ ...overlayPolicy, store: {} }).to.deep.equal({ ...basePolicy, store: {} });
    expect(redisConfig!.url).to.be.a('string');
    const url = new URL(redisConfig!.url as string);
    const service = find(redis.objects, 'Service', url.hostname).spec as {
      ports: { port: number }[];
    };
    expect(service.ports.map((p) => p.port)).to.include(Number(url.port || 6379));
    const netpol = find(redis.objects, 'NetworkPolicy', 'tollgate-redis').spec as {
      ingress: { from: { podSelector: { matchLabels: Record<string, string> } }[] }[];
    };
    const gateway = find(redis.objects, 'Deployment', 'tollgate').spec as {
      selector: { matchLabels: Record<string, string> };
    };
    expect(netpol.ingress.map((r) => r.from[0]?.podSelector.matchLabels)).to.deep.equal([
      gateway.selector.matchLabels,
    ]);
  });
});
