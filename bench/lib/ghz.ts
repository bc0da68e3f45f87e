/**
 * `ghz` (pinned, built by scripts/install-tools.sh) driving the ext_authz Check RPC: the
 * binary, its version, the arguments for one run and its JSON report. bench/check.ts and
 * bench/workers.ts use it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHAT_BODY } from '../configs.js';
import { checkRequest } from './check.js';
import { ROOT } from './paths.js';

/** The ghz binary; GHZ=/path/to/ghz overrides the pinned build (e.g. a checkout whose .tools is not writable). */
export function ghzBinary(who: string): string {
  const ghz = process.env.GHZ ?? join(ROOT, '.tools', 'bin', 'ghz');
  if (!existsSync(ghz))
    throw new Error(`${who}: ${ghz} is missing; run scripts/install-tools.sh (builds the pinned ghz)`);
  return ghz;
}

export const GHZ_VERSION =
  /^GHZ_VERSION=(\S+)$/m.exec(readFileSync(join(ROOT, 'scripts', 'install-tools.sh'), 'utf8'))?.[1] ??
  'unknown';

export interface GhzReport {
  count: number;
  total: number;
  rps: number;
  latencyDistribution: { percentage: number; latency: number }[] | null;
  statusCodeDistribution?: Record<string, number>;
  errorDistribution?: Record<string, number>;
}

export function ghz(binary: string, args: string[]): Promise<GhzReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0)
        return reject(new Error(`ghz exited ${code}: ${Buffer.concat(err).toString()}`));
      try {
        resolve(JSON.parse(Buffer.concat(out).toString()) as GhzReport);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

/** The latency at percentile `p` in milliseconds. */
export const percentile = (r: GhzReport, p: number): number =>
  (r.latencyDistribution?.find((d) => d.percentage === p)?.latency ?? NaN) / 1e6;

/** A ghz data file: one Check request (the chat body) per token, used in turn. */
export async function writeData(dir: string, name: string, tokens: readonly string[]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(tokens.map((t) => checkRequest(t, CHAT_BODY))));
  return file;
}

/** Arguments for Check calls to `address` over `connections` HTTP/2 connections, then `extra`. */
export function ghzArgs(address: string, dataFile: string, extra: string[], connections = 1): string[] {
  return [
    '--insecure',
    '--proto',
    join(ROOT, 'proto/envoy/service/auth/v3/external_auth.proto'),
    '--import-paths',
    join(ROOT, 'proto'),
    '--call',
    'envoy.service.auth.v3.Authorization.Check',
    '--data-file',
    dataFile,
    '--connections',
    String(connections),
    '--format',
    'json',
    '--duration-stop',
    'wait',
    ...extra,
    address,
  ];
}
