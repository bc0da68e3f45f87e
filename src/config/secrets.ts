/**
 * Resolves `{ env: NAME }` and `{ file: PATH }` secret references. Secrets are resolved when the
 * app starts (and on reload), not while parsing, so `check-config` can validate a file on a
 * machine that does not hold the keys. Messages name the variable or file, never the value.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ConfigError } from './problems.js';
import type { Config, SecretRef } from './schema.js';
import { keyPath, setOwn } from './validate-core.js';

function fail(message: string, path: string | undefined): never {
  throw new ConfigError([{ path: path ?? '', message }]);
}

function fromEnv(name: string, path: string | undefined): string {
  const value = process.env[name];
  if (value === undefined) fail(`environment variable ${name} is not set`, path);
  return check(value.replace(/[\r\n]+$/, ''), `environment variable ${name}`, path);
}

// Kubernetes secrets and `echo > file` leave a trailing newline that must not reach a header.
function check(value: string, what: string, path: string | undefined): string {
  if (value.trim() === '') fail(`${what} is empty`, path);
  if (/[\r\n]/.test(value))
    fail(`${what} contains a line break; a secret must be a single line`, path);
  return value;
}

function readError(file: string, err: unknown, path: string | undefined): never {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  fail(`cannot read secret file ${file}${code !== undefined ? ` (${code})` : ''}`, path);
}

/**
 * Returns the secret's value. Throws ConfigError when the variable is unset or empty, or the
 * file is unreadable or empty; `path` (e.g. `upstream.apiKey`) is used as the problem's path.
 */
export async function resolveSecret(ref: SecretRef, path?: string): Promise<string> {
  if ('env' in ref) return fromEnv(ref.env, path);
  let text: string;
  try {
    text = await readFile(ref.file, 'utf8');
  } catch (err) {
    readError(ref.file, err, path);
  }
  return check(text.replace(/[\r\n]+$/, ''), `secret file ${ref.file}`, path);
}

/** Synchronous variant of {@link resolveSecret}. */
export function resolveSecretSync(ref: SecretRef, path?: string): string {
  if ('env' in ref) return fromEnv(ref.env, path);
  let text: string;
  try {
    text = readFileSync(ref.file, 'utf8');
  } catch (err) {
    readError(ref.file, err, path);
  }
  return check(text.replace(/[\r\n]+$/, ''), `secret file ${ref.file}`, path);
}

/**
 * A PEM file of CA certificates (e.g. `store.redis.tls.ca`), read at start-up like a secret:
 * ConfigError at `path` when it is unreadable or holds no certificate.
 */
export function readCaFileSync(file: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    fail(`cannot read CA file ${file}${code !== undefined ? ` (${code})` : ''}`, path);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) fail(`CA file ${file} holds no PEM certificate`, path);
  return text;
}

export interface UpstreamSecrets {
  readonly apiKey?: string;
  readonly tenants: Readonly<Record<string, string>>;
}

/**
 * Resolves every upstream key of a config, reporting all unresolvable ones in a single
 * ConfigError (with paths such as `upstream.tenants.marketing.apiKey`).
 */
export async function resolveUpstreamSecrets(config: Config): Promise<UpstreamSecrets> {
  const problems: ConfigError['problems'][number][] = [];
  const attempt = async (ref: SecretRef, path: string): Promise<string | undefined> => {
    try {
      return await resolveSecret(ref, path);
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
      return undefined;
    }
  };
  const apiKey =
    config.upstream.apiKey !== undefined
      ? await attempt(config.upstream.apiKey, 'upstream.apiKey')
      : undefined;
  const tenants: Record<string, string> = {};
  for (const [name, t] of Object.entries(config.upstream.tenants)) {
    const key = await attempt(t.apiKey, keyPath(keyPath('upstream.tenants', name), 'apiKey'));
    if (key !== undefined) setOwn(tenants, name, key);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { ...(apiKey !== undefined ? { apiKey } : {}), tenants };
}

/** The shortest `server.metricsToken` accepted: 16 characters (`openssl rand -hex 32` gives 64). */
export const MIN_METRICS_TOKEN_LENGTH = 16;

/**
 * `server.metricsToken`, read now (start-up and each reload), or undefined when not configured.
 * ConfigError when it cannot be read, is shorter than MIN_METRICS_TOKEN_LENGTH, or holds a
 * character a bearer token may not (RFC 6750 `b64token`: it travels in an HTTP header).
 */
export async function resolveMetricsToken(config: Pick<Config, 'server'>): Promise<string | undefined> {
  const ref = config.server.metricsToken;
  if (ref === undefined) return undefined;
  const path = 'server.metricsToken';
  const token = await resolveSecret(ref, path);
  if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) fail('the token may hold only A-Z a-z 0-9 - . _ ~ + / (and = at its end)', path);
  if (token.length < MIN_METRICS_TOKEN_LENGTH) fail(`the token is shorter than ${MIN_METRICS_TOKEN_LENGTH} characters (e.g. \`openssl rand -hex 32\`)`, path);
  return token;
}
