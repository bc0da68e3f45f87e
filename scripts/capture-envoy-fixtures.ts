/**
 * Captures the ext_authz and ext_proc messages the pinned real Envoy exchanges with Tollgate,
 * for the adapter tests (test/unit/edge/envoy-fixtures.test.ts). `npm run fixtures:capture`.
 *
 * Everything runs on loopback, on free ports: a DevIssuer and a DevUpstream, the sidecar
 * (App.start), a recording gRPC proxy in front of it, and real Envoy rendered from
 * envoy/local.yaml exactly as `tollgate stack` renders it, but pointed at the proxy. Each case
 * of envoy-fixtures/cases.ts is sent through Envoy on its own; the Check and Process calls it
 * caused are written to test/fixtures/envoy/<case>.json. Files are written only when every
 * case behaved as expected. Every wait is bounded, and everything started is stopped.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { App } from '../src/app.js';
import { parseConfig } from '../src/config/load.js';
import { DevIssuer } from '../src/dev/issuer.js';
import { DevUpstream } from '../src/dev/upstream.js';
import { projectRoot } from '../src/stack/bootstrap.js';
import {
  findEnvoyBinary,
  pinnedEnvoyVersion,
  startEnvoy,
  type RunningEnvoy,
} from '../src/stack/envoy.js';
import { stackBootstrapOptions } from '../src/stack/run.js';
import { createLogger } from '../src/telemetry/logger.js';
import { CASES, DENIED_MODEL, type FixtureCase } from './envoy-fixtures/cases.js';
import {
  startRecordingProxy,
  type RecordedCheck,
  type RecordedStream,
  type RecordingProxy,
} from './envoy-fixtures/recording-proxy.js';

const AUDIENCE = 'tollgate-fixtures';
/** Always set here, so a real key in the environment can never end up in a fixture. */
const UPSTREAM_KEY_ENV = 'TOLLGATE_FIXTURE_UPSTREAM_KEY';
const REQUEST_TIMEOUT_MS = 10_000;
const STREAM_END_TIMEOUT_MS = 5_000;
/** The whole capture; past it the script stops what it started and fails. */
const OVERALL_TIMEOUT_MS = 120_000;

/** Identity headers, a model rule, a rate limit and a token budget: realistic metadata. */
function configText(issuer: DevIssuer): string {
  return `
server: { grpc: 127.0.0.1:0, metrics: false, shutdownGraceSeconds: 2 }
authentication:
  - provider: { name: main-idp, issuer: ${issuer.url}, clientId: ${AUDIENCE} }
upstream:
  apiKey: { env: ${UPSTREAM_KEY_ENV} }
identityHeaders:
  x-user-id: sub
  x-user-email: email
  x-tenant-id: tenant_id
  x-user-groups: groups
authorization:
  default: allow
  rules:
    - name: no-reasoning-models
      match: { models: ["${DENIED_MODEL}"] }
      action: deny
rateLimits:
  - { name: per-user, match: { path: "/v1/*" }, requestsPerUnit: 1000, unit: minute, key: user }
tokenBudgets:
  - { tenant: acme, maxTokens: 1000000, period: month }
logging: { level: warn }
`;
}

interface CaseRecord {
  readonly checks: RecordedCheck[];
  readonly streams: RecordedStream[];
}

interface Response {
  readonly status: number;
  readonly body: Buffer;
}

function send(base: string, c: FixtureCase, token: string): Promise<Response> {
  const url = new URL(c.path, base);
  const headers: Record<string, string> = {
    'user-agent': 'tollgate-fixture-capture',
    ...c.headers,
    ...(c.token ? { authorization: `Bearer ${token}` } : {}),
    ...(c.body !== undefined ? { 'content-length': String(c.body.length) } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: c.method,
        path: `${url.pathname}${url.search}`,
        headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`${c.name}: no answer in ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', reject);
    req.end(c.body);
  });
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The version the binary reports; the fixtures claim the pinned one, so they must agree. */
function binaryVersion(binary: string): string | undefined {
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  return /\/(\d+\.\d+\.\d+)\//.exec(`${run.stdout}${run.stderr}`)?.[1];
}

/** What went wrong with one case, or undefined when it behaved as its `expect` says. */
function problem(c: FixtureCase, res: Response, rec: CaseRecord): string | undefined {
  if (res.status !== c.expect.status)
    return `HTTP ${res.status}, expected ${c.expect.status}: ${res.body.toString('utf8').slice(0, 300)}`;
  if (rec.checks.length !== (c.expect.check ? 1 : 0)) return `${rec.checks.length} Check calls`;
  if (rec.streams.length !== (c.expect.process ? 1 : 0))
    return `${rec.streams.length} Process streams`;
  const failed = rec.checks.find((k) => k.response === undefined);
  if (failed !== undefined) return `Check failed: ${failed.error ?? 'no response'}`;
  const bad = rec.streams.find((s) => s.status?.code !== 0);
  if (bad !== undefined) return `Process stream ended with ${JSON.stringify(bad.status)}`;
  for (const s of rec.streams) {
    const ins = s.messages.filter((m) => m.direction === 'in').length;
    if (ins !== s.messages.length - ins)
      return `${ins} ext_proc messages, ${s.messages.length - ins} answers`;
  }
  return undefined;
}

function fixture(envoy: string, c: FixtureCase, rec: CaseRecord): Record<string, unknown> {
  const check = rec.checks[0];
  const stream = rec.streams[0];
  return {
    envoy,
    case: c.name,
    ...(check?.response !== undefined
      ? {
          check: {
            request: check.request.toString('base64'),
            response: check.response.toString('base64'),
          },
        }
      : {}),
    ...(stream !== undefined
      ? {
          process: stream.messages.map((m) => ({
            direction: m.direction,
            bytes: m.bytes.toString('base64'),
          })),
        }
      : {}),
  };
}

async function main(): Promise<void> {
  const version = pinnedEnvoyVersion();
  const binary = findEnvoyBinary();
  const actual = binaryVersion(binary);
  if (actual !== version)
    throw new Error(`${binary} reports Envoy ${actual ?? '?'}, envoy/VERSION pins ${version}`);
  process.env[UPSTREAM_KEY_ENV] = 'sk-fixture-upstream-key';

  const stops: Array<() => Promise<unknown>> = [];
  let current: CaseRecord | undefined;
  const stray: string[] = [];
  try {
    const issuer = await DevIssuer.start({ audience: AUDIENCE });
    stops.push(() => issuer.close());
    const upstream = await DevUpstream.start();
    stops.push(() => upstream.close());
    const config = parseConfig(configText(issuer));
    const logger = createLogger({ level: 'warn', destination: process.stderr });
    const app = await App.start({ config, logger, metricsAddress: null });
    stops.push(() => app.stop(2000));
    const proxy: RecordingProxy = await startRecordingProxy(app.grpcAddress, {
      check: (record) => (current ? current.checks.push(record) : stray.push('Check')),
      stream: (record) => (current ? current.streams.push(record) : stray.push('Process')),
    });
    stops.push(() => proxy.close());
    const envoy: RunningEnvoy = await startEnvoy({
      ...stackBootstrapOptions(config, proxy.port, upstream.url, 0),
      listenAddress: '127.0.0.1',
    });
    stops.push(() => envoy.stop(2000));

    const token = await issuer.mint({
      sub: 'u-fixture',
      email: 'ann@myorg.com',
      groups: ['eng', 'ml-team'],
      tenant_id: 'acme',
    });
    const files: Array<[string, Record<string, unknown>]> = [];
    for (const c of CASES) {
      const rec: CaseRecord = { checks: [], streams: [] };
      current = rec;
      const res = await send(envoy.url, c, token);
      await within(
        Promise.all(rec.streams.map((s) => s.done)),
        STREAM_END_TIMEOUT_MS,
        `the Process stream of ${c.name}`,
      );
      current = undefined;
      const why = problem(c, res, rec);
      if (why !== undefined) throw new Error(`case ${c.name}: ${why}`);
      files.push([c.name, fixture(version, c, rec)]);
      const stream = rec.streams[0];
      const reset = stream?.envoyReset === true ? ', stream reset by Envoy' : '';
      process.stderr.write(
        `captured ${c.name}: HTTP ${res.status}, ${stream?.messages.length ?? 0} ext_proc messages${reset}\n`,
      );
    }
    if (stray.length > 0) throw new Error(`calls outside any case: ${stray.join(', ')}`);

    const dir = join(projectRoot(), 'test', 'fixtures', 'envoy');
    await mkdir(dir, { recursive: true });
    // The directory is this script's alone: a file of a case that no longer exists goes.
    const keep = new Set(files.map(([name]) => `${name}.json`));
    for (const file of await readdir(dir))
      if (file.endsWith('.json') && !keep.has(file)) await rm(join(dir, file));
    for (const [name, content] of files)
      await writeFile(join(dir, `${name}.json`), `${JSON.stringify(content, null, 2)}\n`);
    process.stderr.write(`wrote ${files.length} fixtures to ${dir}\n`);
  } finally {
    for (const stop of stops.reverse())
      await stop().catch((err: unknown) => process.stderr.write(`stop failed: ${String(err)}\n`));
  }
}

// Exiting is enough to stop everything: startEnvoy kills Envoy on process exit, and the
// servers and dev services live in this process.
const watchdog = setTimeout(() => {
  process.stderr.write(`capture did not finish in ${OVERALL_TIMEOUT_MS} ms\n`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().then(
  () => clearTimeout(watchdog),
  (err: unknown) => {
    clearTimeout(watchdog);
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
