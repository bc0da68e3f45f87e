/**
 * The token cache: one JSON file per profile in `$TOLLGATE_HOME/credentials/`, readable only by
 * the user (the directory 0700, the file 0600, written to a temporary file and renamed so a
 * reader never sees half a file), and a lock file so that concurrent `tollgate token` calls
 * refresh once: with refresh-token rotation, a second use of the same refresh token would make
 * the IdP revoke the whole grant.
 */
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tollgateHome } from '../home.js';

/** What a login leaves behind; times are epoch seconds. */
export interface CachedLogin {
  readonly version: 1;
  readonly issuer: string;
  readonly clientId: string;
  readonly scope: string;
  readonly resource?: string;
  readonly token: 'access' | 'id';
  readonly accessToken: string;
  readonly idToken?: string;
  readonly refreshToken?: string;
  /** When the access token expires (from `expires_in`), if the IdP said. */
  readonly expiresAt?: number;
  readonly obtainedAt: number;
}

export function credentialsDir(): string {
  return join(tollgateHome(), 'credentials');
}

export function credentialsPath(profile: string): string {
  return join(credentialsDir(), `${profile}.json`);
}

export async function readLogin(profile: string): Promise<CachedLogin | undefined> {
  let text: string;
  try {
    text = await readFile(credentialsPath(profile), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`the token cache ${credentialsPath(profile)} is not JSON: run \`tollgate login\` again`);
  }
  if (!isCachedLogin(parsed)) {
    throw new Error(`the token cache ${credentialsPath(profile)} is not one Tollgate wrote: run \`tollgate login\` again`);
  }
  return parsed;
}

export async function writeLogin(profile: string, login: CachedLogin): Promise<void> {
  const dir = credentialsDir();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const tmp = join(dir, `.${profile}.${process.pid}.${Date.now()}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(login, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, credentialsPath(profile));
}

export async function deleteLogin(profile: string): Promise<boolean> {
  try {
    await rm(credentialsPath(profile));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 30_000;

/**
 * Runs `fn` holding the profile's lock file (created exclusively). A lock older than a minute is
 * left over from a killed process and is taken over.
 */
export async function withProfileLock<T>(profile: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(credentialsDir(), { recursive: true, mode: 0o700 });
  const lock = join(credentialsDir(), `.${profile}.lock`);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > LOCK_STALE_MS) await rm(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`another tollgate process holds ${lock}; remove it if none is running`, { cause: err });
      else await new Promise((r) => setTimeout(r, delay));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

function isCachedLogin(v: unknown): v is CachedLogin {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  const optional = (k: string, t: string) => o[k] === undefined || typeof o[k] === t;
  return (
    o['version'] === 1 &&
    typeof o['issuer'] === 'string' &&
    typeof o['clientId'] === 'string' &&
    typeof o['scope'] === 'string' &&
    (o['token'] === 'access' || o['token'] === 'id') &&
    typeof o['accessToken'] === 'string' &&
    typeof o['obtainedAt'] === 'number' &&
    optional('resource', 'string') &&
    optional('idToken', 'string') &&
    optional('refreshToken', 'string') &&
    optional('expiresAt', 'number')
  );
}
