/**
 * SIGTERM after the reader of the output died. A supervisor or test runner that started
 * `tollgate stack`, `serve` or `demo` with piped stdout and stderr may crash first; from then on
 * every write fails with EPIPE. Those lines are dropped, requests are still served, and SIGTERM
 * still stops the process and its Envoy within the grace period.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { parseConfig } from '../../src/config/load.js';
import { demoConfigYaml } from '../../src/dev/demo-config.js';
import { AUDIENCE, UPSTREAM_ENV, withDevs } from '../helpers/e2e.js';
import { childPidsNamed, isRunning, spawnTracked, type Spawned } from '../helpers/processes.js';
import { metricValue, scrapeMetrics } from '../helpers/prometheus.js';
import { eventually, startServe, type ServeProcess } from '../helpers/serve.js';
import { ROOT, SOURCE_CLI, startStack, type StackProcess } from '../helpers/stack.js';

const GRACE_SECONDS = 2;
/** What a stop may take past its grace period: the process exiting, Envoy exiting. */
const MARGIN_MS = 2000;

function configYaml(issuerUrl: string, extra = ''): string {
  return `
server: { grpc: 127.0.0.1:0, metrics: 127.0.0.1:0, shutdownGraceSeconds: ${GRACE_SECONDS} }
authentication:
  - provider: { name: main-idp, issuer: ${issuerUrl}, clientId: ${AUDIENCE} }
upstream:
  apiKey: { env: TEST_UPSTREAM_KEY }
${extra}`;
}

/** Closes the reading ends of the child's stdout and stderr, as its dead parent would. */
function hangUp(proc: ChildProcess): void {
  proc.stdout?.destroy();
  proc.stderr?.destroy();
}

/** Sends SIGTERM; the milliseconds until the process exited, or undefined if not within `limitMs`. */
async function terminate(proc: ChildProcess, limitMs: number): Promise<number | undefined> {
  if (proc.exitCode !== null || proc.signalCode !== null) throw new Error('already exited');
  const start = Date.now();
  const exited = new Promise<number>((resolve) =>
    proc.once('exit', () => resolve(Date.now() - start)),
  );
  proc.kill('SIGTERM');
  return Promise.race([exited, sleep(limitMs, undefined, { ref: false })]);
}

/** Sequential chat completions through Envoy: each status, 0 when no answer came in 3 s. */
async function chat(envoyUrl: string, token: string, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${envoyUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
      signal: AbortSignal.timeout(3000),
    }).catch(() => undefined);
    await res?.arrayBuffer().catch(() => undefined);
    statuses.push(res?.status ?? 0);
  }
  return statuses;
}

/** Resolves once none of `pids` runs any more; fails after `timeoutMs`. */
function gone(pids: readonly number[], timeoutMs = 2000): Promise<true> {
  return eventually(
    () => (pids.every((pid) => !isRunning(pid)) ? true : undefined),
    `pids ${pids.join(',')} to exit`,
    timeoutMs,
  );
}

describe('e2e: SIGTERM after the output reader died', function () {
  this.timeout(60000);
  const devs = withDevs();
  /** Every pid a test started (the CLI and its Envoy); whatever still runs is SIGKILLed after each test. */
  const pids: number[] = [];
  const dirs: string[] = [];
  let stack: StackProcess | undefined;
  let serve: ServeProcess | undefined;
  let demo: Spawned | undefined;

  afterEach(async () => {
    for (const pid of pids.splice(0)) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    await serve?.stop('SIGKILL');
    await demo?.stop('SIGKILL');
    for (const dir of [...dirs.splice(0), ...(stack ? [stack.dir] : [])])
      await rm(dir, { recursive: true, force: true });
    stack = serve = demo = undefined;
  });

  it('`stack` keeps serving, then stops itself and Envoy within the grace period', async () => {
    stack = await startStack({
      config: configYaml(devs.issuer.url),
      upstream: devs.upstream.url,
      env: UPSTREAM_ENV,
    });
    const pid = stack.proc.pid ?? 0;
    const envoy = await childPidsNamed(pid, 'envoy');
    expect(envoy, 'the Envoy child').to.have.length(1);
    pids.push(pid, ...envoy);

    hangUp(stack.proc);
    // Each request writes audit lines to the dead stderr.
    const statuses = await chat(stack.ready.envoy, await devs.issuer.mint({ sub: 'u-stop' }), 2);
    const took = await terminate(stack.proc, GRACE_SECONDS * 1000 + MARGIN_MS);

    expect(took, 'exited after SIGTERM within the grace period').to.be.a('number');
    await gone(envoy);
    expect(statuses, 'answers after the reader died').to.deep.equal([200, 200]);
  });

  it('`serve` reloads with nobody reading, then stops within the grace period', async () => {
    serve = await startServe({ config: configYaml(devs.issuer.url), env: UPSTREAM_ENV });
    const metricsUrl = serve.metricsUrl;
    pids.push(serve.proc.proc.pid ?? 0);

    hangUp(serve.proc.proc);
    // A reload logs to the dead stdout, once applied and once refused.
    const file = join(serve.dir, 'tollgate.yaml');
    const replace = async (yaml: string): Promise<void> => {
      await writeFile(`${file}.tmp`, yaml);
      await rename(`${file}.tmp`, file);
    };
    const reloads = async (result: string): Promise<number | undefined> => {
      const value = metricValue(await scrapeMetrics(metricsUrl), 'tollgate_config_reloads_total', {
        result,
      });
      return value !== undefined && value >= 1 ? value : undefined;
    };
    await replace(configYaml(devs.issuer.url, 'authorization: { default: deny }'));
    await eventually(() => reloads('success'), 'the reload', 10_000);
    await replace(configYaml(devs.issuer.url, 'authorization: { default: maybe }'));
    await eventually(() => reloads('rejected'), 'the refused reload', 10_000);
    const took = await terminate(serve.proc.proc, GRACE_SECONDS * 1000 + MARGIN_MS);

    expect(took, 'exited after SIGTERM within the grace period').to.be.a('number');
  });

  it('`demo` keeps serving, then stops itself and Envoy within the grace period', async () => {
    const home = await mkdtemp(join(tmpdir(), 'tollgate-home-'));
    dirs.push(home);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TOLLGATE_HOME: home,
      TOLLGATE_LOG_LEVEL: 'info',
    };
    delete env['OPENAI_API_KEY'];
    demo = spawnTracked(process.execPath, [...SOURCE_CLI, 'demo', '--port', '0'], {
      cwd: ROOT,
      env,
    });
    const ready = JSON.parse(await demo.waitForLine('{"event":"ready"', { timeoutMs: 30_000 })) as {
      envoy: string;
    };
    const token = /export TOKEN=(\S+)/.exec(await demo.waitForLine('export TOKEN='))?.[1] ?? '';
    const pid = demo.proc.pid ?? 0;
    const envoy = await childPidsNamed(pid, 'envoy');
    expect(envoy, 'the Envoy child').to.have.length(1);
    pids.push(pid, ...envoy);
    // The demo's own grace period: its embedded configuration's.
    const graceMs =
      parseConfig(demoConfigYaml('http://127.0.0.1:1', 'KEY')).server.shutdownGraceSeconds * 1000;

    hangUp(demo.proc);
    const statuses = await chat(ready.envoy, token, 2);
    const took = await terminate(demo.proc, graceMs + MARGIN_MS);

    expect(took, 'exited after SIGTERM within the grace period').to.be.a('number');
    await gone(envoy);
    expect(statuses, 'answers after the reader died').to.deep.equal([200, 200]);
  });
});
