/**
 * Tokens for the benchmark: the development issuer publishes the keys (discovery + JWKS for
 * the sidecar, the inline JWKS for Envoy's jwt_authn), and tokens are signed here with its
 * private key through node:crypto, synchronously: about 60 µs per ES256 token, so 100,000
 * distinct users take seconds rather than the minutes RS256 would (≈0.6 ms each).
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { DevIssuer } from '../../src/dev/issuer.js';

export const BENCH_AUDIENCE = 'tollgate-bench';
export const BENCH_GROUP = 'bench';
export const BENCH_TENANT = 'bench';

export interface BenchIssuer {
  readonly url: string;
  readonly audience: string;
  jwks(): { keys: JWK[] };
  /** A token for user number `n` (sub `user-n`, in `groups` (default [bench]), tenant `bench`). */
  mint(n: number, groups?: readonly string[]): string;
  close(): Promise<void>;
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

export async function startBenchIssuer(
  stateDir: string,
  lifetimeSeconds = 4 * 3600,
): Promise<BenchIssuer> {
  const statePath = join(stateDir, 'issuer.json');
  const issuer = await DevIssuer.start({ alg: 'ES256', audience: BENCH_AUDIENCE, statePath });
  const state = JSON.parse(await readFile(statePath, 'utf8')) as {
    keys: { kid: string; privateJwk: JWK }[];
  };
  const stored = state.keys.find((k) => k.kid === issuer.currentKid);
  if (stored === undefined) throw new Error('bench: the development issuer saved no signing key');
  const key: KeyObject = createPrivateKey({
    key: stored.privateJwk as Record<string, unknown> & { kty: string },
    format: 'jwk',
  });
  const header = b64({ alg: 'ES256', typ: 'JWT', kid: issuer.currentKid });
  const iat = Math.floor(Date.now() / 1000);
  return {
    url: issuer.url,
    audience: BENCH_AUDIENCE,
    jwks: () => issuer.jwks(),
    mint(n, groups = [BENCH_GROUP]) {
      const payload = b64({
        iss: issuer.url,
        aud: BENCH_AUDIENCE,
        sub: `user-${n}`,
        email: `user-${n}@bench.example`,
        groups,
        tenant_id: BENCH_TENANT,
        iat,
        exp: iat + lifetimeSeconds,
      });
      const input = `${header}.${payload}`;
      const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
      return `${input}.${signature.toString('base64url')}`;
    },
    close: () => issuer.close(),
  };
}

/** `count` tokens for users 0..count-1. */
export function mintMany(issuer: BenchIssuer, count: number): string[] {
  return Array.from({ length: count }, (_, i) => issuer.mint(i));
}

/**
 * The mixed-traffic token file: per ten requests, five valid users, one valid token of a group
 * the policy refuses (403), one with a broken signature, two garbage tokens and one request
 * without a token (401 each). A line "-" is a request without Authorization (bench/wrk/post.lua).
 */
export function mixedTokens(issuer: BenchIssuer, users: number): string[] {
  const lines: string[] = [];
  for (let n = 0; n < users; n++) {
    const valid = issuer.mint(n);
    const signature = valid.slice(valid.lastIndexOf('.') + 1);
    // Another valid base64url signature of the right length: it just does not verify.
    const forged = `${valid.slice(0, valid.lastIndexOf('.') + 1)}${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
    lines.push(
      valid,
      issuer.mint(n + 1),
      issuer.mint(n + 2),
      issuer.mint(n + 3),
      issuer.mint(n + 4),
      issuer.mint(n, ['outsiders']),
      forged,
      `garbage-token-${n}`,
      `eyJhbGciOiJub25lIn0.${Buffer.from(`{"n":${n}}`).toString('base64url')}.`,
      '-',
    );
  }
  return lines;
}
