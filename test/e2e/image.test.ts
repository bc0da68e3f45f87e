/**
 * The container image, without a container engine: the Dockerfile copies files that exist and
 * runs what CI builds, on the Node release CI tests (`npm run test:node24`), and the image's
 * file layout (dist/src, proto, envoy, package.json, production node_modules) really serves the
 * Kubernetes policy under that Node.
 */
import { expect } from 'chai';
import { builtinModules } from 'node:module';
import ts from 'typescript';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DevIssuer } from '../../src/dev/issuer.js';
import { freePort, waitUntil } from '../../src/stack/ports.js';
import { healthClient, unary } from '../integration/grpc/clients.js';
import {
  container,
  find,
  kustomize,
  pin,
  podSpec,
  readRepoFile,
  ROOT,
  run,
  tool,
} from '../helpers/deploy.js';
import { spawnTracked, stopAllAfter } from '../helpers/processes.js';
import { imageEntryFlags, imageNodeOptions } from '../../bench/lib/sidecar.js';

const dockerfile = readRepoFile('Dockerfile');
const pkg = JSON.parse(readRepoFile('package.json')) as {
  bin: Record<string, string>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
};

/** `COPY` sources taken from the build context (not `--from=` another stage). */
function contextCopies(): string[] {
  return [...dockerfile.matchAll(/^COPY (?!--from)(.+) (\S+)$/gm)].flatMap((m) =>
    m[1]!.trim().split(/\s+/),
  );
}

/**
 * Module specifiers a source file loads at run time: static imports and re-exports except
 * `import type` / `export type` (erased under verbatimModuleSyntax), `import('x')`, and
 * `require('x')` through any function named like a require.
 */
function runtimeImports(text: string, file: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isImportDeclaration(node) &&
      node.importClause?.isTypeOnly !== true &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text);
    } else if (
      ts.isExportDeclaration(node) &&
      !node.isTypeOnly &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.arguments[0] !== undefined) {
      const callee = node.expression;
      const dynamicImport = callee.kind === ts.SyntaxKind.ImportKeyword;
      const requireLike = ts.isIdentifier(callee) && /^require/i.test(callee.text);
      const arg = node.arguments[0];
      // A template such as `js-tiktoken/ranks/${name}` names its package in the head.
      const spec = ts.isStringLiteralLike(arg)
        ? arg.text
        : ts.isTemplateExpression(arg)
          ? arg.head.text
          : undefined;
      if ((dynamicImport || requireLike) && spec !== undefined && spec !== '') found.push(spec);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

describe('container image (Dockerfile)', function () {
  this.timeout(60_000);
  stopAllAfter();

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    const allowed = readRepoFile('.dockerignore')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const sources = contextCopies();
    expect(sources).to.include.members([
      'package.json',
      'package-lock.json',
      'src/',
      'proto/',
      'envoy/',
    ]);
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), `${source} exists`).to.equal(true);
      expect(allowed, `${source} is in the build context`).to.include(source.replace(/\/$/, ''));
    }
  });

  it('runs the built entry point, on the Node 24 release that CI tests, as a non-root user', () => {
    expect(/^ARG NODE_VERSION=(\S+)$/m.exec(dockerfile)?.[1]).to.equal(pin('NODE24_VERSION'));
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms).to.deep.equal([
      'node:${NODE_VERSION}-bookworm-slim',
      'node:${NODE_VERSION}-bookworm-slim',
    ]);
    const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    expect(entry).to.deep.equal(['node', '--single-threaded-gc', pkg.bin['tollgate']]);
    // The benchmark runs the sidecar with the same flags (bench/lib/sidecar.ts).
    expect(imageEntryFlags()).to.deep.equal(['--single-threaded-gc']);
    // The young-generation cap (docs/benchmarks.md), also where a pod's NODE_OPTIONS replaces it.
    expect(imageNodeOptions()).to.deep.equal(['--max-semi-space-size=4']);
    const podEnv = container(podSpec(find(kustomize('k8s/base').objects, 'Deployment', 'tollgate')), 'tollgate').env ?? [];
    const podOptions = podEnv.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
    expect(podOptions.split(' ')).to.include.members(imageNodeOptions());
    expect(dockerfile).to.match(/^COPY --from=build \/app\/dist\/src\/ dist\/src\/$/m);
    expect(pkg.bin['tollgate']).to.match(/^dist\/src\//);
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
    expect(Number(user?.[1])).to.be.above(0);
    const pod = podSpec(find(kustomize('k8s/base').objects, 'Deployment', 'tollgate'));
    expect(container(pod, 'tollgate').securityContext?.runAsUser).to.equal(Number(user?.[1]));
    // `npm test` ends with the unit and integration suites on that same Node.
    expect(pkg.scripts['test:node24']).to.include('.tools/node24/bin/node');
    expect(pkg.scripts['test']).to.match(/npm run -s test:node24$/);
    expect(run(tool('node24/bin/node'), ['--version']).stdout.trim()).to.equal(
      `v${pin('NODE24_VERSION')}`,
    );
  });

  it('never runs the Envoy installer: npm ci without scripts, and the installer honours the switch', () => {
    const installs = [...dockerfile.matchAll(/^RUN npm ci (.*)$/gm)].map((m) => m[1]!);
    expect(installs).to.have.length(2);
    for (const flags of installs) expect(flags).to.include('--ignore-scripts');
    expect(installs[1]).to.include('--omit=dev');
    expect(dockerfile).to.match(/^ENV .*TOLLGATE_SKIP_ENVOY_INSTALL=1/m);
    const skipped = run('env', [
      'TOLLGATE_SKIP_ENVOY_INSTALL=1',
      process.execPath,
      'scripts/install-envoy.mjs',
    ]);
    expect(skipped.status).to.equal(0);
    expect(skipped.stdout).to.include('skipping');
  });

  it('needs no install script of a production dependency (the image installs with --ignore-scripts)', () => {
    const lock = JSON.parse(readRepoFile('package-lock.json')) as {
      packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }>;
    };
    // protobufjs's postinstall only prints a version-scheme warning.
    const harmless = new Set(['node_modules/protobufjs']);
    const scripted = Object.entries(lock.packages)
      .filter(([name, p]) => p.hasInstallScript === true && p.dev !== true && !harmless.has(name))
      .map(([name]) => name);
    expect(scripted).to.deep.equal([]);
  });

  it('imports only production dependencies at run time (the image omits devDependencies)', () => {
    const builtins = new Set(builtinModules);
    const imported = new Set<string>();
    for (const file of sourceFiles('src')) {
      for (const spec of runtimeImports(readRepoFile(relative(ROOT, file)), file)) {
        const name = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : spec.split('/')[0]!;
        if (!spec.startsWith('.') && !spec.startsWith('node:') && !builtins.has(name))
          imported.add(name);
      }
    }
    expect(imported.size).to.be.above(3);
    for (const name of imported) expect(Object.keys(pkg.dependencies), name).to.include(name);
  });

  describe("the image's files serve the Kubernetes policy on Node 24", () => {
    let dir: string;
    let issuer: DevIssuer;

    before(async () => {
      const main = join(ROOT, pkg.bin['tollgate']!);
      if (!existsSync(main))
        throw new Error(`${main} is missing: run \`npm run build\` (npm test does)`);
      dir = mkdtempSync(join(tmpdir(), 'tollgate-image-'));
      // What the runtime stage holds under /app (node_modules: the project's, which is a
      // superset; the import check above keeps dev-only packages out of the run-time path).
      cpSync(join(ROOT, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
      for (const path of ['proto', 'envoy', 'package.json'])
        cpSync(join(ROOT, path), join(dir, path), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
      issuer = await DevIssuer.start();
    });

    after(async () => {
      await issuer?.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it('reports SERVING over grpc.health.v1 and exits cleanly on SIGTERM', async () => {
      const port = await freePort();
      const keyFile = join(dir, 'api-key');
      writeFileSync(keyFile, 'sk-test-not-a-real-key\n');
      // The policy of k8s/base, with only the endpoints this machine can reach swapped in.
      const policy = readRepoFile('k8s/base/tollgate.yaml')
        .replace('grpc: 0.0.0.0:9001', `grpc: 127.0.0.1:${port}`)
        .replace('metrics: 0.0.0.0:9464', 'metrics: false')
        .replace('issuer: https://auth.example.com', `issuer: ${issuer.url}`)
        .replace('/var/run/secrets/openai/api-key', keyFile);
      expect(policy).to.include(issuer.url).and.include(keyFile).and.include(`127.0.0.1:${port}`);
      const configFile = join(dir, 'tollgate.yaml');
      writeFileSync(configFile, policy);

      const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
      const proc = spawnTracked(
        tool('node24/bin/node'),
        [...entry.slice(1), 'serve', '--config', configFile],
        {
          cwd: dir,
          env: { ...process.env, NODE_ENV: 'production', NODE_OPTIONS: imageNodeOptions().join(' ') },
        },
      );
      const client = healthClient(`127.0.0.1:${port}`);
      try {
        const status = await waitUntil(
          async () => {
            const res = await unary<{ status: string | number }>(client, 'Check', { service: '' });
            return res.status === 'SERVING' || res.status === 1 ? res.status : undefined;
          },
          {
            timeoutMs: 30_000,
            intervalMs: 100,
            what: `SERVING (stderr: ${proc.stderr.join('\n')})`,
          },
        );
        expect(status).to.be.oneOf(['SERVING', 1]);
      } finally {
        client.close();
      }
      const exit = await proc.stop('SIGTERM', 20_000);
      expect(exit.code, proc.stderr.join('\n')).to.equal(0);
    });
  });
});
