/** `portal`: the self-service portal's listener and its OAuth client (docs/portal.md). */
import type { PortalConfig, PortalOwners, ProviderConfig } from './schema.js';
import { readEnum, readHttpUrl, readInt, readMap, readString, readStrings, report, required } from './validate-core.js';
import type { Cursor } from './validate-core.js';
import { readHostPort, readSecretRef } from './validate-sections.js';

const KEYS = [
  'listen',
  'provider',
  'clientId',
  'clientSecret',
  'publicUrl',
  'scope',
  'resource',
  'token',
  'gatewayUrl',
  'sessionTtlSeconds',
  'maxSessions',
  'owners',
] as const;

/** `owners`: `groups` see every tenant's usage, `tenantGroups` their own tenant's (`*`: every member). */
function readOwners(cur: Cursor | undefined): PortalOwners | undefined {
  if (cur === undefined) return undefined;
  const f = readMap(cur, ['groups', 'tenantGroups']);
  if (f === undefined) return undefined;
  const groups = readStrings(f.get('groups')) ?? [];
  const tenantGroups = readStrings(f.get('tenantGroups')) ?? [];
  if (groups.length === 0 && tenantGroups.length === 0) {
    report(cur, 'names nobody: list `groups` (every tenant) and/or `tenantGroups` (their own tenant)');
    return undefined;
  }
  return { groups, tenantGroups };
}

export const PORTAL_DEFAULTS = {
  scope: 'openid email profile',
  token: 'access',
  sessionTtlSeconds: 8 * 3600,
  maxSessions: 10_000,
} as const;

/** Where the IdP sends the browser back, under `publicUrl`. */
export const PORTAL_CALLBACK = '/callback';

/** The public URL: http(s), no query or fragment; a trailing slash is dropped. */
function readPublicUrl(cur: Cursor | undefined): string | undefined {
  const s = readHttpUrl(cur);
  if (s === undefined || cur === undefined) return undefined;
  const url = new URL(s);
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    report(cur, 'must be a plain http(s) URL without query, fragment or credentials');
    return undefined;
  }
  return s.replace(/\/+$/, '');
}

/**
 * Absent = the portal is off. `providers`: the validated `authentication` list it must name one
 * of; `workers`: `server.workers` (the portal needs one process).
 */
export function readPortal(
  cur: Cursor | undefined,
  providers: readonly ProviderConfig[],
  workers: number | 'auto' = 1,
): PortalConfig | undefined {
  if (cur === undefined) return undefined;
  if (workers !== 1) {
    // Sessions live in one process's memory: workers sharing the port would lose them.
    report(cur, 'needs `server.workers: 1`: portal sessions are kept in one process (run the portal on a separate single-process sidecar)');
  }
  const f = readMap(cur, KEYS);
  if (f === undefined) return undefined;
  const listen = readHostPort(required(cur, f, 'listen'));
  const providerCur = required(cur, f, 'provider');
  const provider = readString(providerCur);
  if (provider !== undefined && providerCur !== undefined && providers.length > 0 && !providers.some((p) => p.name === provider)) {
    report(providerCur, `names no provider of \`authentication\` (have: ${providers.map((p) => p.name).join(', ')})`);
  }
  const clientId = readString(required(cur, f, 'clientId'));
  const secretCur = f.get('clientSecret');
  const clientSecret = secretCur === undefined ? undefined : readSecretRef(secretCur);
  const publicUrl = readPublicUrl(required(cur, f, 'publicUrl'));
  const scopeCur = f.get('scope');
  const scope = readString(scopeCur);
  const resource = readHttpUrl(f.get('resource'));
  const token = readEnum(f.get('token'), ['access', 'id'] as const);
  const gatewayUrl = readHttpUrl(f.get('gatewayUrl'));
  const sessionTtlSeconds = readInt(f.get('sessionTtlSeconds'), 60, 7 * 86400);
  const maxSessions = readInt(f.get('maxSessions'), 1, 1_000_000);
  const owners = readOwners(f.get('owners'));
  if (listen === undefined || provider === undefined || clientId === undefined || publicUrl === undefined) return undefined;
  if (secretCur !== undefined && clientSecret === undefined) return undefined;
  const scopes = (scope ?? PORTAL_DEFAULTS.scope).split(/\s+/).filter((s) => s !== '');
  return {
    listen,
    provider,
    clientId,
    ...(clientSecret !== undefined ? { clientSecret } : {}),
    publicUrl,
    scope: (scopes.includes('openid') ? scopes : ['openid', ...scopes]).join(' '),
    ...(resource !== undefined ? { resource } : {}),
    token: token ?? PORTAL_DEFAULTS.token,
    ...(gatewayUrl !== undefined ? { gatewayUrl: gatewayUrl.replace(/\/+$/, '') } : {}),
    sessionTtlSeconds: sessionTtlSeconds ?? PORTAL_DEFAULTS.sessionTtlSeconds,
    maxSessions: maxSessions ?? PORTAL_DEFAULTS.maxSessions,
    ...(owners !== undefined ? { owners } : {}),
  };
}
