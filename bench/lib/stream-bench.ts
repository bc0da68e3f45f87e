/**
 * (e): one SSE upstream, two Envoys in front of it: the baseline bootstrap (a) and the stack
 * bootstrap with Tollgate as in (d). Streams alternate between them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CASES, caseConfig, type CaseId, type EnvoyCase } from '../configs.js';
import { provePath, sidecarFor, UNUSED_GRPC_PORT, type Shared } from './cases.js';
import { startBenchEnvoy, type BenchEnvoy } from './envoy.js';
import type { Sidecar } from './sidecar.js';
import { runStreams, startSseUpstream, type SseUpstream, type StreamResult } from './stream.js';

function findCase(id: CaseId): EnvoyCase {
  const found = CASES.find((c) => c.id === id);
  if (found === undefined) throw new Error(`bench: no configuration (${id})`);
  return found;
}

export async function runStreamBenchmark(shared: Shared): Promise<StreamResult> {
  const { profile } = shared;
  const dir = await mkdtemp(join(shared.work, 'stream-'));
  const direct = findCase('a');
  const metered = findCase('d');
  let upstream: SseUpstream | undefined;
  let sidecar: Sidecar | undefined;
  const envoys: BenchEnvoy[] = [];
  try {
    upstream = await startSseUpstream(profile.chunks, profile.chunkDelayMs);
    const { yaml, config } = caseConfig(shared.issuer, metered);
    sidecar = await sidecarFor(metered, shared, dir, yaml);
    if (sidecar === undefined) throw new Error('bench: configuration (d) has no sidecar');
    const ctx = { issuer: shared.issuer, config, upstreamUrl: upstream.url };
    const directEnvoy = await startBenchEnvoy(
      direct.bootstrap({ ...ctx, grpcPort: UNUSED_GRPC_PORT }),
      { concurrency: 2 },
    );
    envoys.push(directEnvoy);
    const tollgateEnvoy = await startBenchEnvoy(
      metered.bootstrap({ ...ctx, grpcPort: sidecar.grpcPort }),
      { concurrency: 2 },
    );
    envoys.push(tollgateEnvoy);
    await provePath(directEnvoy.url, shared.tokens[0]);
    try {
      await provePath(tollgateEnvoy.url, shared.tokens[0]);
    } catch (err) {
      const logged = sidecar.firstError();
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}${logged !== undefined ? ` (sidecar log: ${logged})` : ''}`,
        { cause: err },
      );
    }
    return await runStreams({
      directUrl: directEnvoy.url,
      tollgateUrl: tollgateEnvoy.url,
      tokens: shared.tokens,
      streams: profile.streams,
      concurrency: profile.streamConcurrency,
      chunks: profile.chunks,
      delayMs: profile.chunkDelayMs,
    });
  } finally {
    for (const e of envoys) await e.stop();
    await sidecar?.stop();
    await upstream?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
