/**
 * The developer's client configuration (`tollgate login` / `token` / `logout`): which IdP to
 * sign in with, as which OAuth client, per profile. It is a separate small file from the
 * sidecar's configuration (`$TOLLGATE_HOME/config.yaml`, else `~/.config/tollgate/config.yaml`),
 * so a company can hand out one file or two environment variables. Validated like the sidecar's
 * file: every problem with its path and line, unknown keys refused.
 */
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from './problems.js';
import type { ConfigProblem } from './problems.js';
import { cursor, describe, isNull, lineOf, readEnum, readHttpUrl, readMap, readString, report, setOwn } from './validate-core.js';
import type { Ctx, Cursor, Fields } from './validate-core.js';

/** Which token of a login `tollgate token` prints: the access token (default) or the ID token. */
export type PrintedToken = 'access' | 'id';

/** One profile's settings; every field may still be missing until flags and env are merged in. */
export interface ClientProfile {
  readonly issuer?: string;
  readonly clientId?: string;
  readonly scope?: string;
  /** RFC 8707 resource indicator: the audience the access token is for (the gateway). */
  readonly resource?: string;
  readonly token?: PrintedToken;
  /** The gateway's base URL, as the SDKs' `baseURL` (`tollgate whoami`); `/v1` optional. */
  readonly url?: string;
}

export interface ClientConfig {
  /**
   * The profile used when none is named (`--profile`, `TOLLGATE_PROFILE`); default `default`, which
   * needs no entry under `profiles` (it is the top-level settings).
   */
  readonly profile?: string;
  /** Settings shared by every profile (the top-level keys). */
  readonly defaults: ClientProfile;
  readonly profiles: Readonly<Record<string, ClientProfile>>;
}

const PROFILE_KEYS = ['issuer', 'clientId', 'scope', 'resource', 'token', 'url'] as const;
const TOP_KEYS = ['profile', 'profiles', ...PROFILE_KEYS] as const;

/** A profile name is used as a file name in `$TOLLGATE_HOME/credentials/`. */
export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const EMPTY_CLIENT_CONFIG: ClientConfig = Object.freeze({ defaults: Object.freeze({}), profiles: Object.freeze({}) });

/** Parses the client configuration; throws only ConfigError, listing every problem. */
export function parseClientConfig(text: string, file?: string): ClientConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const ctx: Ctx = { problems: [], lc, doc };
  for (const e of [...doc.errors, ...doc.warnings]) {
    ctx.problems.push({ path: '', message: `YAML syntax error: ${e.message}`, line: lc.linePos(e.pos[0]).line });
  }
  if (ctx.problems.length > 0) throw new ConfigError(ctx.problems, file);
  const root = cursor(ctx, doc.contents, '', lineOf(ctx, doc.contents));
  if (isNull(root)) return EMPTY_CLIENT_CONFIG;
  const f = readMap(root, TOP_KEYS);
  if (f === undefined) throw new ConfigError(ctx.problems, file);
  const profile = readProfileName(f.get('profile'));
  const defaults = readProfile(f);
  const profiles: Record<string, ClientProfile> = {};
  const list = f.get('profiles');
  if (list !== undefined) {
    const entries = readMap(list, undefined, true);
    for (const [name, cur] of entries ?? []) {
      if (!PROFILE_NAME.test(name)) report(cur, profileNameProblem(name));
      const fields = readMap(cur, PROFILE_KEYS, true);
      if (fields !== undefined) setOwn(profiles, name, readProfile(fields));
    }
  }
  if (profile !== undefined && profile !== 'default' && !Object.hasOwn(profiles, profile) && !ctx.problems.length) {
    report(f.get('profile') ?? root, `names no profile under \`profiles\` (have: ${Object.keys(profiles).join(', ') || 'none'})`);
  }
  if (ctx.problems.length > 0) throw new ConfigError(sortProblems(ctx.problems), file);
  return { ...(profile !== undefined ? { profile } : {}), defaults, profiles };
}

export function profileNameProblem(name: string): string {
  return `profile names are 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${JSON.stringify(name)}`;
}

/** RFC 8707: a resource indicator is an absolute URI without a fragment. */
export function resourceProblem(value: string): string | undefined {
  try {
    if (new URL(value).hash === '' && !value.includes('#')) return undefined;
  } catch {
    // falls through to the problem below
  }
  return `a resource indicator is an absolute URI without a fragment, got ${JSON.stringify(value)}`;
}

function readProfileName(cur: Cursor | undefined): string | undefined {
  const s = readString(cur);
  if (s === undefined || cur === undefined) return undefined;
  if (!PROFILE_NAME.test(s)) {
    report(cur, profileNameProblem(s));
    return undefined;
  }
  return s;
}

function readProfile(f: Fields): ClientProfile {
  const out: Record<string, string> = {};
  const issuer = readHttpUrl(f.get('issuer'));
  if (issuer !== undefined) out['issuer'] = issuer;
  const clientId = readString(f.get('clientId'));
  if (clientId !== undefined) out['clientId'] = clientId;
  const scopeCur = f.get('scope');
  const scope = readString(scopeCur);
  if (scope !== undefined && scopeCur !== undefined) {
    if (/[^\x21\x23-\x5b\x5d-\x7e ]/.test(scope)) report(scopeCur, `a scope is space-separated printable ASCII without '"' or '\\', got ${describe(scopeCur)}`);
    else out['scope'] = scope.trim().split(/ +/).join(' ');
  }
  const resourceCur = f.get('resource');
  const resource = readString(resourceCur);
  if (resource !== undefined && resourceCur !== undefined) {
    if (resourceProblem(resource) !== undefined) report(resourceCur, resourceProblem(resource) ?? '');
    else out['resource'] = resource;
  }
  const token = readEnum(f.get('token'), ['access', 'id'] as const);
  if (token !== undefined) out['token'] = token;
  const url = readHttpUrl(f.get('url'));
  if (url !== undefined) out['url'] = url;
  return out;
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? 0) - (b.p.line ?? 0) || a.i - b.i)
    .map(({ p }) => p);
}
