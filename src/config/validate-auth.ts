/** The `authentication` section: one entry per OIDC identity provider. */
import { ALGORITHMS, DEFAULT_ALGORITHMS } from './schema.js';
import type { Algorithm, ClaimMapping, ProviderConfig } from './schema.js';
import {
  checkUnique,
  readHttpUrl,
  readInt,
  readList,
  readMap,
  readString,
  readStrings,
  report,
  required,
} from './validate-core.js';
import type { Cursor } from './validate-core.js';

const PROVIDER_KEYS = [
  'name',
  'issuer',
  'clientId',
  'audiences',
  'jwksUri',
  'algorithms',
  'clockSkewSeconds',
  'maxTokenBytes',
  'claims',
  'jwksCooldownSeconds',
  'jwksCacheMaxAgeSeconds',
  'jwksTimeoutMs',
] as const;

const DEFAULT_CLAIMS: ClaimMapping = { user: 'email', groups: 'groups', tenant: 'tenant_id' };

export function readAuthentication(cur: Cursor | undefined, root: Cursor): ProviderConfig[] {
  if (cur === undefined) {
    report({ ...root, path: 'authentication' }, 'is required: list at least one identity provider');
    return [];
  }
  const items = readList(cur);
  if (items === undefined) return [];
  if (items.length === 0) {
    report(cur, 'must list at least one identity provider');
    return [];
  }
  const providers: {
    cfg: ProviderConfig;
    nameCur: Cursor | undefined;
    issuerCur: Cursor | undefined;
  }[] = [];
  for (const item of items) {
    const entry = readMap(item, ['provider']);
    if (entry === undefined) continue;
    const p = required(item, entry, 'provider');
    if (p === undefined) continue;
    const read = readProvider(p);
    if (read !== undefined) providers.push(read);
  }
  checkUnique(
    providers.map((p) => ({ value: p.nameCur && p.cfg.name, cur: p.nameCur ?? cur })),
    'provider name',
  );
  checkUnique(
    providers.map((p) => ({ value: p.issuerCur && p.cfg.issuer, cur: p.issuerCur ?? cur })),
    'issuer',
  );
  return providers.map((p) => p.cfg);
}

function readProvider(
  cur: Cursor,
): { cfg: ProviderConfig; nameCur: Cursor | undefined; issuerCur: Cursor | undefined } | undefined {
  const f = readMap(cur, PROVIDER_KEYS);
  if (f === undefined) return undefined;
  const nameCur = required(cur, f, 'name');
  const issuerCur = required(cur, f, 'issuer');
  const name = readString(nameCur);
  const issuer = readHttpUrl(issuerCur);

  const audiences: string[] = [];
  const clientId = readString(f.get('clientId'));
  if (clientId !== undefined) audiences.push(clientId);
  const listed = readStrings(f.get('audiences'));
  for (const a of listed ?? []) if (!audiences.includes(a)) audiences.push(a);
  if (!f.has('clientId') && !f.has('audiences')) {
    report(
      cur,
      'needs `clientId` or `audiences`: a token is only accepted for an audience listed here',
    );
  }

  const jwksUri = readHttpUrl(f.get('jwksUri'));
  const cfg: ProviderConfig = {
    name: name ?? '',
    issuer: issuer ?? '',
    audiences,
    ...(jwksUri !== undefined ? { jwksUri } : {}),
    algorithms: readAlgorithms(f.get('algorithms')) ?? [...DEFAULT_ALGORITHMS],
    clockSkewSeconds: readInt(f.get('clockSkewSeconds'), 0, 300) ?? 30,
    // Envoy's default header limit is 60 KiB; a bearer token bigger than 1 MiB is never legitimate.
    maxTokenBytes: readInt(f.get('maxTokenBytes'), 256, 1024 * 1024) ?? 8192,
    claims: readClaimMapping(f.get('claims')),
    jwksCooldownSeconds: readInt(f.get('jwksCooldownSeconds'), 0, 86400) ?? 30,
    jwksCacheMaxAgeSeconds: readInt(f.get('jwksCacheMaxAgeSeconds'), 1, 7 * 86400) ?? 600,
    jwksTimeoutMs: readInt(f.get('jwksTimeoutMs'), 1, 60000) ?? 2000,
  };
  return {
    cfg,
    nameCur: name !== undefined ? nameCur : undefined,
    issuerCur: issuer !== undefined ? issuerCur : undefined,
  };
}

function readAlgorithms(cur: Cursor | undefined): Algorithm[] | undefined {
  if (cur === undefined) return undefined;
  const items = readList(cur);
  if (items === undefined) return undefined;
  if (items.length === 0) {
    report(cur, 'must list at least one algorithm (or be left out for the default)');
    return undefined;
  }
  const out: Algorithm[] = [];
  for (const item of items) {
    const alg = readString(item);
    if (alg === undefined) continue;
    if (alg.toLowerCase() === 'none') {
      report(item, '`none` is never accepted: tokens must be signed');
    } else if (/^HS\d+$/i.test(alg)) {
      // A shared-secret HMAC "verified" with a public key is the classic algorithm-confusion attack.
      report(
        item,
        `${alg} is refused: shared-secret (HS*) algorithms cannot be verified against the issuer's public keys`,
      );
    } else if (!(ALGORITHMS as readonly string[]).includes(alg)) {
      report(
        item,
        `unsupported algorithm ${JSON.stringify(alg)} (supported: ${ALGORITHMS.join(', ')})`,
      );
    } else if (!out.includes(alg as Algorithm)) {
      out.push(alg as Algorithm);
    }
  }
  return out;
}

function readClaimMapping(cur: Cursor | undefined): ClaimMapping {
  if (cur === undefined) return { ...DEFAULT_CLAIMS };
  const f = readMap(cur, ['user', 'groups', 'tenant'], true);
  if (f === undefined) return DEFAULT_CLAIMS;
  return {
    user: readString(f.get('user')) ?? DEFAULT_CLAIMS.user,
    groups: readString(f.get('groups')) ?? DEFAULT_CLAIMS.groups,
    tenant: readString(f.get('tenant')) ?? DEFAULT_CLAIMS.tenant,
  };
}
