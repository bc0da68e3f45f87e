/**
 * Extracts the OpenAPI v3 schemas of the pinned Envoy Gateway's CRDs (its own
 * gateway.envoyproxy.io kinds and the Gateway API bundle it ships) from its Go module, for the
 * offline validation of k8s/overlays/envoy-gateway (test/e2e/envoy-gateway-manifests.test.ts).
 *
 *   node --import tsx scripts/envoy-gateway-crds.ts <version> <out.json>
 *
 * scripts/install-tools.sh runs it with ENVOY_GATEWAY_VERSION into .tools/. The module comes
 * from the Go module proxy (`go mod download`, checked against sum.golang.org like any Go
 * module); the CRDs are the plain YAML of charts/gateway-helm/charts/crds/crds/ (not the
 * Helm-templated copy in charts/gateway-crds-helm). The output maps
 * `<group>/<version>/<Kind>` to the `openAPIV3Schema` of every served version, as shipped:
 * what the test does with them (unknown fields refused, int-or-string) is its own business.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ENVOY_GATEWAY_MODULE = 'github.com/envoyproxy/gateway';
/** Inside the module: the CRDs as plain YAML. */
export const CRD_DIR = 'charts/gateway-helm/charts/crds/crds';

export interface CrdSchemas {
  /** The Envoy Gateway version they came from, e.g. `v1.9.1`. */
  readonly envoyGateway: string;
  /** `<group>/<version>/<Kind>` → the CRD's openAPIV3Schema for that served version. */
  readonly schemas: Record<string, unknown>;
}

interface CrdVersion {
  name: string;
  served?: boolean;
  schema?: { openAPIV3Schema?: unknown };
}

interface Crd {
  kind?: string;
  spec?: { group: string; names: { kind: string }; versions: CrdVersion[] };
}

/** Downloads the module (a no-op when the module cache has it) and returns its directory. */
export function downloadModule(version: string): string {
  const res = spawnSync('go', ['mod', 'download', '-json', `${ENVOY_GATEWAY_MODULE}@${version}`], {
    encoding: 'utf8',
    // Outside any module, with the Go on the machine: never fetch another toolchain.
    env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
    timeout: 600_000,
  });
  if (res.error) throw new Error(`go mod download: ${res.error.message} (is Go installed?)`);
  const info = JSON.parse(res.stdout || '{}') as { Dir?: string; Error?: string };
  if (res.status !== 0 || info.Dir === undefined) {
    throw new Error(
      `go mod download ${ENVOY_GATEWAY_MODULE}@${version} failed: ${info.Error ?? res.stderr}`,
    );
  }
  return info.Dir;
}

/** Every CRD document of the module's CRD directory, by file. */
function crdFiles(moduleDir: string): string[] {
  const root = join(moduleDir, CRD_DIR);
  const generated = readdirSync(join(root, 'generated'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(root, 'generated', f));
  return [join(root, 'gatewayapi-crds.yaml'), ...generated.sort()];
}

/** The served versions' schemas of every CRD under `moduleDir`. Throws on a CRD without one. */
export function extractSchemas(moduleDir: string, version: string): CrdSchemas {
  const schemas: Record<string, unknown> = {};
  for (const file of crdFiles(moduleDir)) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
      const crd = doc.toJS() as Crd | null;
      if (crd?.kind !== 'CustomResourceDefinition' || crd.spec === undefined) continue;
      const { group, names } = crd.spec;
      for (const v of crd.spec.versions) {
        if (v.served === false) continue;
        const schema = v.schema?.openAPIV3Schema;
        if (schema === undefined)
          throw new Error(`${file}: ${names.kind} ${v.name} has no openAPIV3Schema`);
        schemas[`${group}/${v.name}/${names.kind}`] = schema;
      }
    }
  }
  if (Object.keys(schemas).length === 0)
    throw new Error(`no CRDs under ${join(moduleDir, CRD_DIR)}`);
  return { envoyGateway: version, schemas };
}

function main(argv: readonly string[]): void {
  const [version, out] = argv;
  if (version === undefined || out === undefined || !/^v\d+\.\d+\.\d+$/.test(version)) {
    throw new Error('usage: envoy-gateway-crds.ts <vX.Y.Z> <out.json>');
  }
  const extracted = extractSchemas(downloadModule(version), version);
  mkdirSync(dirname(out), { recursive: true });
  // Written whole or not at all: a half file would pass the install's version check.
  writeFileSync(`${out}.tmp`, JSON.stringify(extracted));
  renameSync(`${out}.tmp`, out);
  console.log(
    `envoy-gateway-crds: ${Object.keys(extracted.schemas).length} schemas of Envoy Gateway ${version} → ${out}`,
  );
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`envoy-gateway-crds: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
