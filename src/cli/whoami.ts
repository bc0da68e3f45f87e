/**
 * `tollgate whoami [--url BASE] [--profile NAME] [--json]`: asks the gateway who it takes the
 * caller for, with the login's token (refreshed like `tollgate token`), through the same front
 * door the SDKs use: `GET <base>/v1/tollgate/whoami` on Envoy, answered by the sidecar
 * (check/whoami.ts). Prints a summary, or the JSON the sidecar sent.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/problems.js';
import type { MeBucket, MeRateLimit, MeRule, MeView } from '../check/me.js';
import { WHOAMI_PATH } from '../check/whoami.js';
import { formatBudgetTable, humanDuration } from './budget.js';
import { demoTokenIfAny } from './token.js';
import { configured } from './login/commands.js';
import { LoginError, profileFlag } from './login/oidc.js';
import { freshToken } from './login/session.js';
import { SettingsError, gatewayUrl, loadClientConfig, profileName } from './login/settings.js';

interface Out {
  write(chunk: string): unknown;
}

export const WHOAMI_HELP = `usage: tollgate whoami [--url BASE] [--profile NAME] [--json]
  asks the gateway (through Envoy, as the SDKs do) who it takes you for: your claims, the models
  you may use, the rules that apply to you, and your rate limits and budgets with what is left
  --url      the gateway's base URL, as the SDKs' baseURL (with or without /v1); default
             TOLLGATE_URL, else \`url:\` of the profile in the client config
  --profile  the login whose token is sent (default: TOLLGATE_PROFILE, the config's profile, default)
  --json     print the sidecar's JSON answer
`;

/** How long to wait for the gateway. */
const TIMEOUT_MS = 15_000;

/** `<base>/v1/tollgate/whoami` for a base URL with or without `/v1` (and trailing slashes). */
export function whoamiUrl(base: string): URL {
  const url = new URL(base);
  url.pathname = url.pathname.replace(/\/+$/, '').replace(/\/v1$/i, '') + WHOAMI_PATH;
  url.search = '';
  url.hash = '';
  return url;
}

/** A failure the user can act on: the message and the exit code. */
class WhoamiError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

export async function whoamiCommand(rest: string[], out: Out, err: Out): Promise<number> {
  let values: { url?: string; profile?: string; json?: boolean; help?: boolean };
  try {
    values = parseArgs({
      args: rest,
      options: { url: { type: 'string' }, profile: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    err.write(`tollgate: ${e instanceof Error ? e.message : String(e)}\n\n${WHOAMI_HELP}`);
    return 2;
  }
  if (values.help === true) {
    out.write(WHOAMI_HELP);
    return 0;
  }
  try {
    const { url, body } = await ask(values.url, values.profile, err);
    if (values.json === true) out.write(`${JSON.stringify(body, null, 2)}\n`);
    else out.write(formatWhoami(body, Date.now(), url));
    return 0;
  } catch (e) {
    if (e instanceof WhoamiError) {
      err.write(`tollgate: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof SettingsError || e instanceof ConfigError) {
      err.write(`tollgate: ${e.message}\n`);
      return 2;
    }
    if (e instanceof LoginError) {
      err.write(`tollgate: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

async function ask(flagUrl: string | undefined, flagProfile: string | undefined, err: Out): Promise<{ url: URL; body: MeView }> {
  const config = await loadClientConfig();
  const profile = profileName({ profile: flagProfile }, config);
  const base = gatewayUrl(flagUrl, config, profile);
  if (base === undefined) {
    throw new WhoamiError('which gateway? give --url BASE (the SDKs\' baseURL), or set TOLLGATE_URL, or `url:` in the client config', 2);
  }
  let url: URL;
  try {
    url = whoamiUrl(base);
  } catch {
    throw new WhoamiError(`the gateway URL must be an http(s) URL, got ${JSON.stringify(base)}`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new WhoamiError(`the gateway URL must be an http(s) URL, got ${JSON.stringify(base)}`, 2);
  }
  let token = await freshToken(profile, (line) => err.write(`${line}\n`));
  // As `tollgate token`: with no login configured at all and no profile named, the demo's token.
  if (token === undefined && flagProfile === undefined && !configured(config)) {
    token = await demoTokenIfAny();
    if (token !== undefined) err.write('tollgate: no login configured: asking with a demo token (`tollgate token --demo`)\n');
  }
  if (token === undefined) throw new WhoamiError(`profile ${profile} is not logged in: run \`tollgate login${profileFlag(profile)}\``);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    const cause = e instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : String(e);
    throw new WhoamiError(`cannot reach the gateway at ${url.origin}: ${cause}`);
  }
  const text = await res.text();
  const reason = res.headers.get('x-tollgate-reason');
  if (res.status === 200 && reason === 'whoami') {
    try {
      return { url, body: JSON.parse(text) as MeView };
    } catch {
      throw new WhoamiError(`the gateway at ${url.origin} sent a whoami answer that is not JSON`);
    }
  }
  const message = envelopeMessage(text);
  if (res.status === 401) {
    throw new WhoamiError(`the gateway refused the token of profile ${profile} (${reason ?? 'unauthorized'}${message !== undefined ? `: ${message}` : ''}); \`tollgate login${profileFlag(profile)}\` signs in again`);
  }
  if (reason !== null) {
    throw new WhoamiError(`the gateway answered ${res.status} ${reason}${message !== undefined ? `: ${message}` : ''}`);
  }
  throw new WhoamiError(`${url.href} answered ${res.status} without Tollgate's whoami answer: is it the gateway's base URL, and is \`server.whoami\` on?`);
}

/** The `error.message` of an OpenAI error envelope, when the text is one. */
function envelopeMessage(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } };
    return typeof body.error?.message === 'string' ? body.error.message : undefined;
  } catch {
    return undefined;
  }
}

function scopeText(s: MeRule['requests']): string {
  if (s === undefined) return 'every request';
  return [
    s.methods !== undefined ? s.methods.join('|') : '',
    s.path ?? '',
    s.models !== undefined ? `models ${s.models.join(', ')}` : '',
  ].filter(Boolean).join(' ');
}

function claimsText(used: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(used ?? {});
  return entries.length > 0 ? ` (${entries.map(([k, v]) => `${k}=${v}`).join(', ')})` : '';
}

function bucketText(b: MeBucket, limit: MeRateLimit, now: number): string {
  if (b.count === undefined) return `${b.key}  (count not readable)`;
  const reset = b.resetsAt !== undefined ? `, resets in ${humanDuration(Date.parse(b.resetsAt) - now)}` : '';
  return `${b.key}  ${b.count} of ${limit.requestsPerUnit} used, ${b.remaining ?? 0} left${reset}`;
}

/** The summary `tollgate whoami` prints. */
export function formatWhoami(view: MeView, now: number, url?: URL): string {
  const { identity: id } = view;
  const lines: string[] = [];
  const email = typeof view.claims['email'] === 'string' ? `${view.claims['email']} ` : '';
  lines.push(`${email}(user ${id.user}) via ${id.provider}${url !== undefined ? ` at ${url.origin}` : ''}`);
  lines.push(`  subject  ${id.subject}`, `  issuer   ${id.issuer}`);
  lines.push(`  groups   ${id.groups.length > 0 ? id.groups.join(', ') : '(none)'}`);
  lines.push(`  tenant   ${id.tenant ?? '(none)'}`);
  lines.push(`  token    expires ${id.expiresAt} (in ${humanDuration(Date.parse(id.expiresAt) - now)})`);
  const claims = Object.entries(view.claims).filter(([k]) => !['iss', 'sub'].includes(k));
  if (claims.length > 0) {
    lines.push('', 'Token claims Tollgate reads (the rules\' and the basics):');
    for (const [k, v] of claims) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  }
  lines.push('', `Models you may use (${view.models.length}): ${view.models.length > 0 ? view.models.join(', ') : '(none)'}`);
  const mode = view.authorization.mode === 'shadow' ? ', shadow mode' : '';
  lines.push('', `Rules (first match decides; otherwise ${view.authorization.default}${mode}):`);
  if (view.rules.length === 0) lines.push('  (none)');
  for (const r of view.rules) {
    const shadow = r.mode === 'shadow' ? ' [shadow]' : '';
    lines.push(
      r.applies
        ? `  ${r.action.padEnd(5)} ${r.name}${shadow}: applies${claimsText(r.claimsUsed)} to ${scopeText(r.requests)}`
        : `  ${r.action.padEnd(5)} ${r.name}${shadow}: does not apply to you`,
    );
  }
  lines.push('', 'Rate limits:');
  if (view.rateLimits.length === 0) lines.push('  (none apply to you)');
  for (const l of view.rateLimits) {
    lines.push(`  ${l.name}: ${l.requestsPerUnit} requests per ${l.unit} by ${l.key}, for ${scopeText(l.requests)}`);
    for (const b of l.buckets) lines.push(`    ${bucketText(b, l, now)}`);
  }
  lines.push('', 'Budgets:');
  if (view.budgets.length === 0) lines.push('  (none charge you)');
  else lines.push(...formatBudgetTable(view.budgets, now).trimEnd().split('\n').map((l) => `  ${l}`));
  return `${lines.join('\n')}\n`;
}
