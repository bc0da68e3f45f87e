/**
 * The Check RPC against the sidecar alone, with the verified-token cache on (default size)
 * or off, for each user count of the profile. One sidecar per cache mode; user counts run in
 * increasing order on it, so the memory read after the largest holds every user's state.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AUTHZ_ONLY,
  CHAT_BODY,
  tollgateConfig,
  UPSTREAM_KEY,
  UPSTREAM_KEY_ENV,
} from '../configs.js';
import type { Shared } from './cases.js';
import { checkClient, checkRequest, runChecks } from './check.js';
import type { CheckModeResult } from './report.js';
import { startSidecar } from './sidecar.js';
import { mintMany } from './tokens.js';

/** Verified-token cache size in src/identity/verify.ts: past it, every user is a miss. */
const DEFAULT_CACHE_SIZE = 10_000;

/** Both cache modes use the same users; sign them once. */
let minted: string[] = [];
function tokensFor(shared: Shared, count: number): string[] {
  if (minted.length < count) {
    const started = performance.now();
    minted = mintMany(shared.issuer, count);
    shared.log(`minted ${count} ES256 tokens in ${Math.round(performance.now() - started)} ms`);
  }
  return minted;
}

export async function runCheckBenchmark(shared: Shared, cache: boolean): Promise<CheckModeResult> {
  const { profile } = shared;
  const dir = await mkdtemp(join(shared.work, `check-${cache ? 'cache' : 'nocache'}-`));
  const runs: CheckModeResult['runs'] = [];
  const sidecar = await startSidecar({
    config: tollgateConfig(shared.issuer, AUTHZ_ONLY),
    dir,
    env: { [UPSTREAM_KEY_ENV]: UPSTREAM_KEY },
    noTokenCache: !cache,
    nodeFlags: shared.nodeFlags,
  }).catch((err: unknown) => err as Error);
  if (sidecar instanceof Error) return { cache, runs, error: sidecar.message };
  const client = checkClient(sidecar.grpc);
  try {
    const allTokens = tokensFor(shared, Math.max(...profile.checkUsers));
    const first = await client.check(checkRequest(allTokens[0] ?? '', CHAT_BODY));
    if (first.status.code !== 0) {
      const logged = sidecar.firstError();
      throw new Error(
        `a test Check was denied (${first.status.message ?? first.status.code})${logged !== undefined ? `; sidecar log: ${logged}` : ''}`,
      );
    }
    for (const users of profile.checkUsers) {
      const result = await runChecks({
        client,
        pid: sidecar.pid,
        tokens: allTokens.slice(0, users),
        body: CHAT_BODY,
        concurrency: profile.checkConcurrency,
        seconds: profile.checkSeconds,
        // Warm only what a cache can hold; past that, the measured pass is the realistic miss
        // (and the JIT is warm from the smaller runs before it).
        ...(users <= DEFAULT_CACHE_SIZE ? { warmSeconds: profile.warmupSeconds } : {}),
      });
      shared.log(
        `  ${users} users: ${Math.round(result.checksPerSecond)} checks/s, p50 ${result.p50.toFixed(2)} ms`,
      );
      runs.push({ ...result, afterGc: await sidecar.memoryAfterGc() });
    }
    return { cache, startMiB: sidecar.startMiB, runs };
  } catch (err) {
    return { cache, runs, error: err instanceof Error ? err.message : String(err) };
  } finally {
    client.close();
    await sidecar.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
