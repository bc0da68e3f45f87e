/**
 * envoy/production.yaml run for real on this machine: the caller points its clusters at local
 * servers, this moves the listeners and the admin interface to free loopback ports and starts
 * the pinned Envoy with the Deployment's own args (k8s/base), reading the edited copy.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findEnvoyBinary } from '../../src/stack/envoy.js';
import { freePort, waitUntil } from '../../src/stack/ports.js';
import { container, find, kustomize, podSpec, type EnvoyConfig } from './deploy.js';
import { spawnTracked, type Spawned } from './processes.js';

/** The Envoy args of k8s/base, reading `config` instead of the ConfigMap mount. */
export function deploymentArgs(config: string): string[] {
  const args = [
    ...(container(podSpec(find(kustomize('k8s/base').objects, 'Deployment', 'tollgate')), 'envoy')
      .args ?? []),
  ];
  args[args.indexOf('--config-path') + 1] = config;
  return args;
}

export interface ProductionEnvoy {
  readonly envoy: Spawned;
  /** The `ingress` listener (where clients call). */
  readonly ingressUrl: string;
  /** The `admin-probe` listener (kubelet and Prometheus). */
  readonly probeUrl: string;
  /** The admin interface itself, for stats. */
  readonly adminUrl: string;
}

/**
 * Starts `cfg` (edited in place: listeners on 127.0.0.1 port 0, admin on a free port) from a
 * file written to `dir`; resolves once both listeners are bound. Stopped by `stopAll()`.
 */
export async function startProductionEnvoy(
  cfg: EnvoyConfig,
  dir: string,
  opts: { logLevel?: string } = {},
): Promise<ProductionEnvoy> {
  const adminPort = await freePort();
  cfg.doc.admin.address.socket_address.port_value = adminPort;
  for (const l of cfg.doc.static_resources.listeners)
    l.address.socket_address = { address: '127.0.0.1', port_value: 0 };
  cfg.endpoint('envoy_admin').port_value = adminPort;
  const file = join(dir, 'production-local.yaml');
  writeFileSync(file, JSON.stringify(cfg.doc));
  const args = deploymentArgs(file);
  if (opts.logLevel !== undefined) args[args.indexOf('--log-level') + 1] = opts.logLevel;
  const envoy = spawnTracked(findEnvoyBinary(), args);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const ports = await waitUntil(
    async () => {
      const res = await fetch(`${adminUrl}/listeners?format=json`);
      const body = (await res.json()) as {
        listener_statuses?: {
          name: string;
          local_address: { socket_address: { port_value: number } };
        }[];
      };
      const port = (name: string) =>
        body.listener_statuses?.find((l) => l.name === name)?.local_address.socket_address
          .port_value;
      const [ingress, probe] = [port('ingress'), port('admin-probe')];
      return ingress && probe ? { ingress, probe } : undefined;
    },
    { timeoutMs: 20_000, what: `Envoy listeners (${envoy.stderr.slice(-5).join('\n')})` },
  );
  return {
    envoy,
    adminUrl,
    ingressUrl: `http://127.0.0.1:${ports.ingress}`,
    probeUrl: `http://127.0.0.1:${ports.probe}`,
  };
}
