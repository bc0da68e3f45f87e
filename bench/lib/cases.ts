/**
 * One Envoy configuration, measured: start its sidecar (if any) and its Envoy, prove one
 * request goes through, warm up, saturate with wrk, then hold a fixed moderate rate; read the
 * sidecar's and Envoy's CPU time and the sidecar's memory around each phase.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  caseConfig,
  CHAT_BODY,
  UPSTREAM_KEY,
  UPSTREAM_KEY_ENV,
  type EnvoyCase,
  type Profile,
} from '../configs.js';
import {
  counterDelta,
  envoyErrorCounters,
  phaseCounters,
  sidecarLogSummary,
} from './diagnostics.js';
import { startBenchEnvoy, type BenchEnvoy } from './envoy.js';
import { fixedRate, runWrk } from './load.js';
import { cpuSeconds, memoryMiB } from './measure.js';
import type { CaseResult, MixedResult } from './report.js';
import { startSidecar, type Sidecar } from './sidecar.js';
import type { BenchIssuer } from './tokens.js';

/** What every part of a run shares. */
export interface Shared {
  readonly issuer: BenchIssuer;
  /** The users' tokens for the Envoy configurations. */
  readonly tokens: readonly string[];
  readonly tokensFile: string;
  /** Valid, denied and junk tokens mixed, for the mixed-traffic phase (tokens.ts mixedTokens). */
  readonly mixedTokensFile: string;
  readonly profile: Profile;
  /** Scratch directory of this run. */
  readonly work: string;
  readonly nodeFlags: readonly string[];
  log(message: string): void;
}

/** Any gRPC port will do for bootstraps whose tollgate cluster is never used. */
export const UNUSED_GRPC_PORT = 9;

/** Starts the sidecar for a configuration that has one, on the configuration's YAML. */
export async function sidecarFor(
  c: EnvoyCase,
  shared: Shared,
  dir: string,
  yaml: string,
): Promise<Sidecar | undefined> {
  if (c.sidecar === undefined) return undefined;
  return startSidecar({
    config: yaml,
    dir,
    env: { [UPSTREAM_KEY_ENV]: UPSTREAM_KEY },
    nodeFlags: shared.nodeFlags,
  });
}

/** One request must come back 200 with the upstream's body, or the numbers would be of errors. */
export async function provePath(url: string, token: string | undefined): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: CHAT_BODY,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200 || !text.includes('chat.completion')) {
    throw new Error(`a test request was answered ${res.status}: ${text.slice(0, 300)}`);
  }
}

export async function measureCase(
  c: EnvoyCase,
  shared: Shared,
  upstreamUrl: string,
  redisUrl?: string,
): Promise<CaseResult> {
  const { profile, tokens } = shared;
  const dir = await mkdtemp(join(shared.work, `case-${c.id}-`));
  let sidecar: Sidecar | undefined;
  let envoy: BenchEnvoy | undefined;
  try {
    const { yaml, config } = caseConfig(shared.issuer, c, redisUrl, profile.maxConcurrent);
    sidecar = await sidecarFor(c, shared, dir, yaml);
    envoy = await startBenchEnvoy(
      c.bootstrap({
        issuer: shared.issuer,
        config,
        upstreamUrl,
        grpcPort: sidecar?.grpcPort ?? UNUSED_GRPC_PORT,
      }),
      { concurrency: 2 },
    );
    await provePath(envoy.url, tokens[0]);
    const url = `${envoy.url}/v1/chat/completions`;
    const wrk = {
      url,
      tokensFile: shared.tokensFile,
      body: CHAT_BODY,
      connections: profile.connections,
      threads: profile.wrkThreads,
    };
    if (profile.warmupSeconds > 0) await runWrk({ ...wrk, seconds: profile.warmupSeconds });

    const sidecarPid = sidecar?.pid;
    const cpu = (pid: number | undefined): number => (pid === undefined ? NaN : cpuSeconds(pid));
    const validBefore = await phaseCounters(envoy.adminUrl);
    const satBefore = { sidecar: cpu(sidecarPid), envoy: cpu(envoy.pid) };
    const saturation = await runWrk({ ...wrk, seconds: profile.saturationSeconds });
    const satCpu = {
      sidecar: cpu(sidecarPid) - satBefore.sidecar,
      envoy: cpu(envoy.pid) - satBefore.envoy,
    };

    const fixedBefore = cpu(sidecarPid);
    const fixed = await fixedRate({
      url,
      tokens,
      body: CHAT_BODY,
      rate: profile.rate,
      seconds: profile.rateSeconds,
    });
    const fixedCpu = cpu(sidecarPid) - fixedBefore;
    const valid5xx = counterDelta(validBefore, await phaseCounters(envoy.adminUrl))[
      'http.ingress.downstream_rq_5xx'
    ];
    const perRequest = (seconds: number, requests: number): number =>
      (seconds / Math.max(1, requests)) * 1e6;
    // Memory as the valid traffic left it, before the mixed phase.
    const sidecarMemory =
      sidecar === undefined
        ? undefined
        : {
            ...memoryMiB(sidecar.pid),
            start: sidecar.startMiB,
            afterGc: await sidecar.memoryAfterGc(),
          };
    const mixed = await mixedPhase(envoy.adminUrl, {
      ...wrk,
      tokensFile: shared.mixedTokensFile,
      seconds: profile.mixedSeconds,
    });
    const diagnostics = {
      envoy: await envoyErrorCounters(envoy.adminUrl),
      sidecar: sidecar === undefined ? {} : sidecarLogSummary(sidecar.logFile),
    };
    return {
      diagnostics,
      id: c.id,
      title: c.title,
      saturation,
      fixed,
      valid5xx,
      mixed,
      envoyCpuUs: perRequest(satCpu.envoy, saturation.requests),
      ...(sidecar !== undefined && sidecarMemory !== undefined
        ? {
            sidecarCpuUs: {
              saturation: perRequest(satCpu.sidecar, saturation.requests),
              fixed: perRequest(fixedCpu, fixed.count),
            },
            sidecarMemory,
          }
        : {}),
    };
  } catch (err) {
    const logged = sidecar?.firstError();
    const error = `${err instanceof Error ? err.message : String(err)}${logged !== undefined ? ` (sidecar log: ${logged})` : ''}`;
    shared.log(`(${c.id}) failed: ${error}`);
    return { id: c.id, title: c.title, error };
  } finally {
    await envoy?.stop();
    await sidecar?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Statuses that the mixed token file asks for on purpose: the junk and the refused group. */
const EXPECTED_DENIALS = new Set(['401', '403']);

/**
 * Saturation with valid, denied and junk tokens mixed: every response counted by status, and
 * what Envoy saw meanwhile (5xx, GOAWAY from the sidecar, ext_proc streams per admission).
 */
async function mixedPhase(
  adminUrl: string,
  wrk: Parameters<typeof runWrk>[0],
): Promise<MixedResult> {
  const before = await phaseCounters(adminUrl);
  const run = await runWrk({ ...wrk, statuses: true });
  const envoy = counterDelta(before, await phaseCounters(adminUrl));
  const statuses = run.statuses ?? {};
  let ok = 0;
  let denied = 0;
  let unexpected = 0;
  let fiveXx = 0;
  for (const [status, count] of Object.entries(statuses)) {
    if (status.startsWith('2')) ok += count;
    else if (EXPECTED_DENIALS.has(status)) denied += count;
    else unexpected += count;
    if (status.startsWith('5')) fiveXx += count;
  }
  return {
    seconds: run.seconds,
    rps: run.rps,
    requests: run.requests,
    statuses,
    ok,
    denied,
    unexpected,
    fiveXx,
    socketErrors: run.socketErrors,
    envoy5xx: envoy['http.ingress.downstream_rq_5xx'],
    sidecarGoaways: envoy['cluster.tollgate.upstream_cx_close_notify'],
    admitted: envoy['http.ingress.ext_authz.ok'],
    extProcStreams: envoy['http.ingress.ext_proc.streams_started'],
    resetsToSidecar: envoy['cluster.tollgate.upstream_rq_tx_reset'],
  };
}
