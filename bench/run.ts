/**
 * `npm run bench` (full) and `npm run bench:smoke` (seconds, tiny load): measures what Tollgate
 * adds to every model call against Envoy alone (a) and Envoy's own in-process filters (b).
 *
 *   node --import tsx bench/run.ts [--smoke] [--only a,b,c,d,e,f,check] [--check-users 1,1000]
 *                                  [--out FILE] [--json FILE] [--cpu-prof] [--max-concurrent N]
 *
 * Full runs write bench/RESULTS.md and bench/results.json; smoke runs write to a temporary
 * directory unless --out/--json say otherwise.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pinnedEnvoyVersion } from '../src/stack/envoy.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { CASES, PROFILES, type CaseId, type Profile } from './configs.js';
import { measureCase, type Shared } from './lib/cases.js';
import { runCheckBenchmark } from './lib/check-bench.js';
import { startBenchEnvoy } from './lib/envoy.js';
import { upstreamYaml } from './lib/bootstraps.js';
import { BENCH_DIR, ROOT } from './lib/paths.js';
import { renderResults, type MachineFacts, type RunResults } from './lib/report.js';
import { runStreamBenchmark } from './lib/stream-bench.js';
import { mintMany, mixedTokens, startBenchIssuer } from './lib/tokens.js';

type Part = CaseId | 'e' | 'check';
const ALL_PARTS: readonly Part[] = ['a', 'b', 'c', 'd', 'e', 'f', 'check'];

/** First line a tool prints about itself (wrk prints its version with its usage, exiting 1). */
function version(cmd: string, args: string[]): string {
  const run = spawnSync(cmd, args, { encoding: 'utf8' });
  if (run.error !== undefined) return `${cmd} (not found)`;
  return `${run.stdout}${run.stderr}`.split('\n')[0]?.trim() ?? cmd;
}

/** How this run was started, as a user would type it again. */
function commandLine(): string {
  const extra = process.argv.slice(2);
  const event = process.env['npm_lifecycle_event'];
  const script = process.env['npm_lifecycle_script'] ?? '';
  // Only when npm ran this script itself: a test run under `npm test` inherits npm's variables.
  if (event === undefined || !script.includes('bench/run.ts'))
    return `node --import tsx bench/run.ts ${extra.join(' ')}`.trim();
  // npm appends the user's arguments to the script's own.
  const own = script
    .split(/\s+/)
    .slice(script.split(/\s+/).indexOf('bench/run.ts') + 1)
    .filter(Boolean);
  const added = extra.slice(own.length);
  return `npm run ${event}${added.length > 0 ? ` -- ${added.join(' ')}` : ''}`;
}

function machineFacts(): MachineFacts {
  const info = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  let memory = `${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`;
  try {
    const free = execFileSync('free', ['-m'], { encoding: 'utf8' })
      .split('\n')[1]
      ?.trim()
      .split(/\s+/);
    if (free !== undefined) memory = `${free[1]} MiB RAM (${free[6] ?? '?'} MiB available)`;
  } catch {
    // `free` missing: keep os.totalmem()
  }
  return {
    cpuModel: /model name\s*:\s*(.+)/.exec(info)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown CPU',
    cpus: Number(version('nproc', [])) || cpus().length,
    memory,
    kernel: release(),
    node: process.version,
    envoy: pinnedEnvoyVersion(),
    wrk: version('wrk', ['-v']).replace(/ Copyright.*/, ''),
    redis: version('redis-server', ['--version']).replace(/ sha=.*/, ''),
    loadBefore: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

function parts(only: string | undefined): Set<Part> {
  if (only === undefined) return new Set(ALL_PARTS);
  const wanted = only.split(',').map((s) => s.trim());
  for (const w of wanted)
    if (!ALL_PARTS.includes(w as Part))
      throw new Error(`bench: unknown part "${w}" (use ${ALL_PARTS.join(',')})`);
  return new Set(wanted as Part[]);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean' },
      only: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'check-users': { type: 'string' },
      'max-concurrent': { type: 'string' },
    },
    strict: true,
  });
  const base: Profile = values.smoke === true ? PROFILES.smoke : PROFILES.full;
  const checkUsers = values['check-users']?.split(',').map(Number);
  if (checkUsers?.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error('bench: --check-users takes positive integers, e.g. 1,1000');
  const maxConcurrent = values['max-concurrent'] === undefined ? undefined : Number(values['max-concurrent']);
  if (maxConcurrent !== undefined && (!Number.isInteger(maxConcurrent) || maxConcurrent < 1 || maxConcurrent > 100_000))
    throw new Error('bench: --max-concurrent takes a whole number from 1 to 100000');
  const profile: Profile = {
    ...base,
    ...(checkUsers !== undefined ? { checkUsers } : {}),
    ...(maxConcurrent !== undefined ? { maxConcurrent } : {}),
  };
  const selected = parts(values.only);
  const started = Date.now();
  const work = await mkdtemp(join(tmpdir(), 'tollgate-bench-'));
  const out =
    values.out ??
    (profile.name === 'full' ? join(BENCH_DIR, 'RESULTS.md') : join(work, 'RESULTS.md'));
  const jsonOut =
    values.json ??
    (profile.name === 'full' ? join(BENCH_DIR, 'results.json') : join(work, 'results.json'));
  // Profiles stay out of the work tree; every sidecar of the run writes one .cpuprofile there.
  const profileDir = join(tmpdir(), `tollgate-bench-profiles-${Date.now()}`);
  const nodeFlags =
    values['cpu-prof'] === true ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const machine = machineFacts();
  const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);

  const cleanups: (() => Promise<unknown>)[] = [];
  const results: RunResults = {
    profile: profile.name,
    date: new Date().toISOString(),
    command: commandLine(),
    durationSeconds: 0,
    machine,
    settings: {
      users: profile.users,
      'saturation s': profile.saturationSeconds,
      'wrk connections': profile.connections,
      'fixed rate req/s': profile.rate,
      'fixed-rate s': profile.rateSeconds,
      'mixed-traffic s': profile.mixedSeconds,
      'Envoy workers': 2,
      'token alg': 'ES256',
      'Check users': profile.checkUsers,
      'Check calls in flight': profile.checkConcurrency,
      ...(profile.maxConcurrent !== undefined ? { 'per-user maxConcurrent': profile.maxConcurrent } : {}),
    },
    cases: [],
    checks: [],
  };
  try {
    const issuer = await startBenchIssuer(work);
    cleanups.push(() => issuer.close());
    const tokens = mintMany(issuer, profile.users);
    const tokensFile = join(work, 'tokens.txt');
    await writeFile(tokensFile, `${tokens.join('\n')}\n`);
    const mixedTokensFile = join(work, 'mixed-tokens.txt');
    await writeFile(mixedTokensFile, `${mixedTokens(issuer, profile.users).join('\n')}\n`);
    const shared: Shared = {
      issuer,
      tokens,
      tokensFile,
      mixedTokensFile,
      profile,
      work,
      nodeFlags,
      log,
    };

    const envoyCases = CASES.filter((c) => selected.has(c.id));
    if (envoyCases.length > 0) {
      const upstream = await startBenchEnvoy(upstreamYaml(), { concurrency: 1 });
      cleanups.push(() => upstream.stop());
      let redis: RedisServer | undefined;
      if (envoyCases.some((c) => c.sidecar?.redis === true)) {
        const server = await RedisServer.start();
        redis = server;
        cleanups.push(() => server.stop());
        // kill() signals synchronously, so this works from an 'exit' handler too.
        process.once('exit', () => void server.kill());
      }
      for (const c of envoyCases) {
        log(`(${c.id}) ${c.title}`);
        results.cases.push(await measureCase(c, shared, upstream.url, redis?.url()));
      }
    }
    if (selected.has('e')) {
      log('(e) streaming');
      try {
        (results as { stream?: unknown }).stream = await runStreamBenchmark(shared);
      } catch (err) {
        (results as { streamError?: string }).streamError =
          err instanceof Error ? err.message : String(err);
      }
    }
    if (selected.has('check')) {
      for (const cache of [true, false]) {
        log(`Check RPC, token cache ${cache ? 'on' : 'off'}`);
        results.checks.push(await runCheckBenchmark(shared, cache));
      }
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
  const finished: RunResults = {
    ...results,
    durationSeconds: (Date.now() - started) / 1000,
    machine: {
      ...machine,
      loadAfter: loadavg()
        .map((l) => l.toFixed(2))
        .join(' '),
    },
  };
  const optimisationsFile = join(BENCH_DIR, 'OPTIMISATIONS.md');
  const optimisations = existsSync(optimisationsFile)
    ? readFileSync(optimisationsFile, 'utf8')
    : '';
  await writeFile(out, renderResults(finished, optimisations));
  await writeFile(jsonOut, `${JSON.stringify(finished, null, 2)}\n`);
  if (profile.name === 'smoke' && values.out === undefined && values.json === undefined) {
    process.stdout.write(readFileSync(out, 'utf8'));
  }
  await rm(work, { recursive: true, force: true }).catch(() => undefined);
  log(`done in ${Math.round(finished.durationSeconds)} s: ${out}`);
  if (nodeFlags.length > 0) log(`sidecar CPU profiles: ${profileDir}`);
  const failed =
    finished.cases.filter((c) => c.error !== undefined).length +
    (finished.streamError ? 1 : 0) +
    finished.checks.filter((c) => c.error).length;
  if (failed > 0) log(`${failed} part(s) failed; see the report`);
  return failed > 0 ? 1 : 0;
}

process.chdir(ROOT);
// Interrupted: exit, so every child's 'exit' hook (Envoys, sidecars, Redis) kills it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping\n`);
    process.exit(130);
  });
}
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
