/**
 * `tollgate explain --config FILE (--claims JSON | --token JWT [--insecure-decode])
 *  [--provider NAME] [--method M] [--path P] [--model M | --body FILE] [--store redis://… | --url URL] [--json]`:
 * one request through the live Check (cli/explain.ts), told back: the decision, the rule and
 * why each earlier rule did not match, the limits and budgets with their keys and counters,
 * the identity headers the upstream would get and the models `/v1/models` would list.
 * Exit 0 when explained (whatever the decision), 1 when the request cannot be explained,
 * 2 for a usage error.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfigFile, errorText } from '../config/load.js';
import type { RuleTrace } from '../policy/rules.js';
import { readCaFileSync } from '../config/secrets.js';
import { RedisStore } from '../store/redis.js';
import type { CounterReader } from '../store/store.js';
import { SidecarCounters } from './sidecar-counters.js';
import { ExplainError, Explainer, type Caller, type Explanation, type ExplainRequest } from './explain.js';

const HELP = `usage: tollgate explain --config FILE (--claims JSON | --token JWT [--insecure-decode])
         [--provider NAME] [--method M] [--path P] [--model M | --body FILE] [--store redis://... | --url URL] [--json]
  --claims           the caller's token claims as JSON (signature not checked; the provider's mapping applies)
  --token            a token, verified against the configuration's providers
  --insecure-decode  decode --token WITHOUT verifying it (warns)
  --method, --path   default POST /v1/chat/completions
  --model            the body is a one-message chat request for this model
  --body             the request body from FILE
  --store            read current counters from this Redis (nothing is counted)
  --url              read current counters from this running sidecar's metrics listener
                     (GET /counters; e.g. http://127.0.0.1:9464, a .../metrics URL works too;
                     its server.metricsToken, if any, from TOLLGATE_METRICS_TOKEN)
  --json             the explanation as JSON
`;

interface Out {
  write(chunk: string): unknown;
}

/** The body a `--model` stands for: the smallest request of the path's kind. */
export function modelBody(path: string, model: string): string {
  if (path.startsWith('/v1/embeddings')) return JSON.stringify({ model, input: 'explain' });
  if (path.startsWith('/v1/responses')) return JSON.stringify({ model, input: 'explain' });
  if (path.startsWith('/v1/completions')) return JSON.stringify({ model, prompt: 'explain' });
  return JSON.stringify({ model, messages: [{ role: 'user', content: 'explain' }] });
}

/** The caller from `--claims` / `--token`; a usage error when neither or both. */
export function callerFrom(values: { claims?: string; token?: string; 'insecure-decode'?: boolean; provider?: string }): Caller {
  const provider = values.provider !== undefined ? { provider: values.provider } : {};
  if (values.claims !== undefined && values.token !== undefined) throw new ExplainError('give --claims or --token, not both');
  if (values.claims !== undefined) {
    let claims: unknown;
    try {
      claims = JSON.parse(values.claims);
    } catch (err) {
      throw new ExplainError(`--claims is not JSON: ${errorText(err)}`);
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new ExplainError('--claims must be a JSON object');
    return { claims: claims as Record<string, unknown>, ...provider };
  }
  if (values.token !== undefined) return { token: values.token, insecureDecode: values['insecure-decode'] === true, ...provider };
  return { anonymous: true };
}

export async function explainCommand(args: string[], stdout: Out, stderr: Out): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        claims: { type: 'string' },
        token: { type: 'string' },
        'insecure-decode': { type: 'boolean' },
        provider: { type: 'string' },
        method: { type: 'string' },
        path: { type: 'string' },
        model: { type: 'string' },
        body: { type: 'string' },
        store: { type: 'string' },
        url: { type: 'string' },
        json: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    stderr.write(`tollgate explain: ${errorText(err)}\n\n${HELP}`);
    return 2;
  }
  const str = (k: string): string | undefined => (typeof values[k] === 'string' ? values[k] : undefined);
  const config = str('config');
  if (config === undefined) {
    stderr.write(`tollgate explain: --config FILE is required\n\n${HELP}`);
    return 2;
  }
  if (str('store') !== undefined && str('url') !== undefined) {
    stderr.write(`tollgate explain: give --store or --url, not both (--url reads the counters from a running sidecar, whatever its store)\n\n${HELP}`);
    return 2;
  }
  let redis: RedisStore | undefined;
  try {
    const cfg = await loadConfigFile(config);
    const path = str('path') ?? '/v1/chat/completions';
    const model = str('model');
    const bodyFile = str('body');
    if (model !== undefined && bodyFile !== undefined) throw new ExplainError('give --model or --body, not both');
    const body = bodyFile !== undefined ? await readFile(bodyFile) : model !== undefined ? modelBody(path, model) : undefined;
    const store = str('store');
    if (store !== undefined) {
      // A rediss:// store is verified against the configuration's CA, as the sidecar does.
      const tls = cfg.store.redis?.tls;
      const ca = typeof tls === 'object' && store.startsWith('rediss://') ? readCaFileSync(tls.ca.file, 'store.redis.tls.ca') : undefined;
      redis = new RedisStore({ url: store, timeoutMs: 2000, keyPrefix: cfg.store.redis?.keyPrefix ?? 'tollgate:', ...(ca !== undefined ? { ca } : {}) });
      await redis.ready(2000);
    }
    let counters: CounterReader | undefined = redis;
    const url = str('url');
    if (url !== undefined) {
      const sidecar = new SidecarCounters(url);
      await sidecar.ready();
      counters = sidecar;
    }
    const explainer = new Explainer(cfg, counters !== undefined ? { counters } : {});
    const request: ExplainRequest = {
      caller: callerFrom({
        ...(str('claims') !== undefined ? { claims: str('claims') } : {}),
        ...(str('token') !== undefined ? { token: str('token') } : {}),
        ...(str('provider') !== undefined ? { provider: str('provider') } : {}),
        'insecure-decode': values['insecure-decode'] === true,
      }),
      method: str('method') ?? (path.startsWith('/v1/models') ? 'GET' : 'POST'),
      path,
      ...(body !== undefined ? { body } : {}),
    };
    const explanation = await explainer.explain(request);
    for (const w of explanation.warnings) stderr.write(`WARNING: ${w}\n`);
    stdout.write(values['json'] === true ? `${JSON.stringify(explanation, null, 2)}\n` : formatExplanation(explanation));
    return 0;
  } catch (err) {
    stderr.write(`tollgate explain: ${errorText(err)}\n`);
    return 1;
  } finally {
    await redis?.close();
  }
}

/** Why a rule did or did not match, in one line. */
export function traceLine(t: RuleTrace): string {
  if (t.verdict === 'no-match') {
    const m = t.miss;
    const field = m.field === 'claim' ? `claim ${m.key ?? ''}` : m.field;
    const got = m.got.length > 0 ? m.got.map((g) => JSON.stringify(g)).join(', ') : '(none)';
    return `${t.rule}: no match: ${field} is ${got}, rule wants ${m.wanted.map((w) => JSON.stringify(w)).join(' | ')}`;
  }
  const used = Object.entries(t.claimsUsed).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  const how = t.verdict === 'shadow' ? `matched (shadow ${t.action}: records, does not decide)` : `matched: ${t.action}`;
  return `${t.rule}: ${how}${used.length > 0 ? ` [${used.join(', ')}]` : ''}`;
}

/** The explanation for people. */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`decision: ${e.decision.toUpperCase()} ${e.status} ${e.reason}${e.rule !== undefined ? ` (rule: ${e.rule})` : ''}`);
  if (e.message !== undefined) lines.push(`message:  ${e.message}`);
  if (e.identity !== undefined) {
    const i = e.identity;
    lines.push(`caller:   ${i.user} (provider ${i.provider}; groups ${i.groups.join(', ') || '(none)'}${i.tenant !== undefined ? `; tenant ${i.tenant}` : ''})`);
  }
  if (e.rules.length > 0) {
    lines.push('rules:');
    for (const t of e.rules) lines.push(`  ${traceLine(t)}`);
  }
  if (e.shadowDenied !== undefined) lines.push(`shadow:   would be denied by ${e.shadowDenied.rule} (${e.shadowDenied.reason})`);
  if (e.limits.length > 0) {
    lines.push('limits:');
    for (const l of e.limits) {
      const now = l.kind === 'budget'
        ? `used ${l.current ?? 0} + reserved ${l.reserved ?? 0}, would reserve ${l.wouldReserve ?? 0}`
        : l.kind === 'concurrency'
          ? `in flight ${l.current ?? '?'}`
          : `hits ${l.current ?? '?'}`;
      lines.push(`  ${l.kind} ${l.name} [${l.key}]: limit ${l.limit}, ${now}, remaining ${l.remaining}${l.refused ? '  <- REFUSES' : ''}`);
    }
  }
  if (e.response !== undefined) {
    lines.push('response headers:');
    for (const [k, v] of Object.entries(e.response.headers)) lines.push(`  ${k}: ${v}`);
    lines.push(`response body: ${JSON.stringify(e.response.body)}`);
  } else {
    lines.push('upstream headers:');
    for (const [k, v] of Object.entries(e.upstreamHeaders)) lines.push(`  ${k}: ${v}`);
    if (e.removedHeaders.length > 0) lines.push(`removed:  ${e.removedHeaders.join(', ')}`);
    const rh = Object.entries(e.responseHeaders);
    if (rh.length > 0) lines.push(`response headers: ${rh.map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  }
  if (e.models !== undefined) lines.push(`models listed: ${e.models.join(', ') || '(none)'}`);
  return `${lines.join('\n')}\n`;
}
