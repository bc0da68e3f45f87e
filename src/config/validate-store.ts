/** `store:` — in-memory counters (absent), or Redis: one URL, Sentinel or Cluster. */
import { isMap, isScalar } from 'yaml';
import type { OnUnavailable, RedisStoreConfig, RedisTlsConfig, StoreConfig } from './schema.js';
import { readSecretRef } from './validate-sections.js';
import { readBoolean, readEnum, readInt, readList, readMap, readString, report, required } from './validate-core.js';
import type { Cursor } from './validate-core.js';

const ON_UNAVAILABLE: readonly OnUnavailable[] = ['closed', 'open', 'local'];
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

export function readStore(cur: Cursor | undefined): StoreConfig {
  if (cur === undefined) return {};
  const f = readMap(cur, ['redis'], true);
  const rcur = f?.get('redis');
  if (rcur === undefined) return {};
  const r = readMap(rcur, ['url', 'sentinels', 'name', 'cluster', 'password', 'tls', 'waitForReplicas', 'timeoutMs', 'onUnavailable', 'keyPrefix']);
  if (r === undefined) return {};
  const url = readUrlOrSecret(r.get('url'));
  const sentinels = readNodes(r.get('sentinels'));
  const cluster = readNodes(r.get('cluster'));
  const name = readString(r.get('name'));
  const targets = [r.has('url'), r.has('sentinels'), r.has('cluster')].filter(Boolean).length;
  if (targets !== 1) report(rcur, 'needs exactly one of `url`, `sentinels` (with `name`) or `cluster`');
  if (r.has('sentinels') && !r.has('name')) report(rcur, '`sentinels` needs `name`: the primary the sentinels monitor');
  if (r.has('name') && !r.has('sentinels')) report(r.get('name') ?? rcur, '`name` goes with `sentinels`');
  const passwordCur = r.get('password');
  const password = passwordCur === undefined ? undefined : readSecretRef(passwordCur);
  if (passwordCur !== undefined && r.has('url')) report(passwordCur, 'a `url` carries its own password (`redis://:secret@host`)');
  const tlsCur = r.get('tls');
  const tls = readTls(tlsCur, r.get('url'));
  const wait = readInt(r.get('waitForReplicas'), 0, 16);
  const redis: RedisStoreConfig = {
    ...(wait !== undefined ? { waitForReplicas: wait } : {}),
    ...(url !== undefined ? { url } : {}),
    ...(sentinels !== undefined ? { sentinels } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(cluster !== undefined ? { cluster } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(tls !== undefined ? { tls } : {}),
    timeoutMs: readInt(r.get('timeoutMs'), 1, 60000) ?? 50,
    onUnavailable: readEnum(r.get('onUnavailable'), ON_UNAVAILABLE) ?? 'closed',
    keyPrefix: readString(r.get('keyPrefix'), { allowEmpty: true }) ?? 'tollgate:',
  };
  return { redis };
}

/**
 * `tls`: `true`/`false` (Sentinel and Cluster; a URL says TLS by its scheme), or `{ ca: { file } }`
 * to trust a private CA, which a URL may carry too as long as it is `rediss://` (checked here for
 * a literal URL, at start-up for one read from `{env}` / `{file}`).
 */
function readTls(cur: Cursor | undefined, urlCur: Cursor | undefined): boolean | RedisTlsConfig | undefined {
  if (cur === undefined) return undefined;
  if (!isMap(cur.node)) {
    const on = readBoolean(cur);
    if (urlCur !== undefined) report(cur, 'a `url` says TLS by its scheme (`rediss://`); `tls: { ca: { file: PATH } }` adds a CA');
    return on;
  }
  const f = readMap(cur, ['ca']);
  const caCur = f === undefined ? undefined : required(cur, f, 'ca');
  const ca = caCur === undefined ? undefined : readMap(caCur, ['file']);
  const fileCur = ca === undefined || caCur === undefined ? undefined : required(caCur, ca, 'file');
  const file = readString(fileCur);
  if (file === undefined) return undefined;
  const url = urlCur !== undefined && isScalar(urlCur.node) ? urlCur.node.value : undefined;
  if (typeof url === 'string' && url.startsWith('redis://')) report(cur, 'a CA needs a TLS connection: write the URL as `rediss://`');
  return { ca: { file } };
}

/** A `redis://` or `rediss://` URL, or `{env}` / `{file}` to read it from when the app starts. */
function readUrlOrSecret(cur: Cursor | undefined): RedisStoreConfig['url'] {
  if (cur === undefined) return undefined;
  if (typeof cur.node === 'object' && cur.node !== null && 'items' in cur.node) return readSecretRef(cur);
  const s = readString(cur);
  if (s === undefined) return undefined;
  let ok: boolean;
  try {
    const url = new URL(s);
    ok = (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
  } catch {
    ok = false;
  }
  if (!ok) {
    // Never echo it: a URL may carry a password.
    report(cur, 'expected a redis:// or rediss:// URL with a host, or { env: NAME } / { file: PATH }');
    return undefined;
  }
  return s;
}

/** A non-empty list of `host:port`. */
function readNodes(cur: Cursor | undefined): string[] | undefined {
  if (cur === undefined) return undefined;
  const items = readList(cur);
  if (items === undefined) return undefined;
  if (items.length === 0) {
    report(cur, 'needs at least one host:port');
    return undefined;
  }
  const out: string[] = [];
  for (const item of items) {
    const s = readString(item);
    if (s === undefined) continue;
    const m = HOST_PORT.exec(s);
    if (m === null || Number(m[2]) === 0 || Number(m[2]) > 65535) report(item, `expected host:port, got ${JSON.stringify(s)}`);
    else out.push(s);
  }
  return out.length === items.length ? out : undefined;
}
