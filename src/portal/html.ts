/**
 * The portal's pages: plain server-rendered HTML. Every value that comes from a token, the
 * configuration or the store goes through `esc`; no inline script or style (the CSP forbids
 * them), the page's behaviour is /portal.js.
 */
import type { MeBudget, MeRateLimit, MeView } from '../check/me.js';

import { esc } from './escape.js';

export { esc };

export const n = (v: number | undefined): string => (v === undefined ? '–' : v.toLocaleString('en-US'));

export function layout(title: string, body: string, opts: { csrf?: string } = {}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${opts.csrf !== undefined ? `<meta name="csrf-token" content="${esc(opts.csrf)}">\n` : ''}<title>${esc(title)} · Tollgate</title>
<link rel="stylesheet" href="/portal.css">
<script src="/portal.js" defer></script>
</head>
<body>
<header><a href="/" class="brand">Tollgate</a></header>
<main id="main">
${body}
</main>
</body>
</html>
`;
}

export function signInPage(message?: string): string {
  return layout(
    'Sign in',
    `<h1>Tollgate portal</h1>
${message !== undefined ? `<p role="alert" class="notice">${esc(message)}</p>` : ''}
<p>Sign in with your company account to see your models, limits and budgets.</p>
<p><a class="button" href="/login" id="sign-in">Sign in</a></p>`,
  );
}

export function errorPage(title: string, message: string): string {
  return layout(title, `<h1>${esc(title)}</h1>\n<p role="alert">${esc(message)}</p>\n<p><a href="/">Back to the portal</a></p>`);
}

function row(cells: readonly string[], header = false): string {
  const tag = header ? 'th scope="col"' : 'td';
  const close = header ? 'th' : 'td';
  return `<tr>${cells.map((c) => `<${tag}>${c}</${close}>`).join('')}</tr>`;
}

export function table(id: string, caption: string, head: readonly string[], rows: readonly (readonly string[])[], empty: string): string {
  if (rows.length === 0) return `<p id="${id}">${esc(empty)}</p>`;
  return `<table id="${id}">
<caption>${esc(caption)}</caption>
<thead>${row(head.map(esc), true)}</thead>
<tbody>
${rows.map((r) => row(r)).join('\n')}
</tbody>
</table>`;
}

function rateLimitRows(limits: readonly MeRateLimit[]): string[][] {
  return limits.flatMap((l) =>
    l.buckets.map((b) => [
      esc(l.name),
      esc(b.key),
      esc(`${l.requestsPerUnit} / ${l.unit}`),
      `<data value="${esc(b.count ?? '')}">${esc(n(b.count))}</data>`,
      `<data value="${esc(b.remaining ?? '')}">${esc(n(b.remaining))}</data>`,
      esc(b.resetsAt ?? '–'),
    ]),
  );
}

function budgetRows(budgets: readonly MeBudget[]): string[][] {
  return budgets.map((b) => [
    esc(b.name),
    esc(`${b.period} (${b.periodId})`),
    `<data value="${esc(b.used ?? '')}" class="used">${esc(n(b.used))}</data>`,
    `<data value="${esc(b.reserved ?? '')}" class="reserved">${esc(n(b.reserved))}</data>`,
    `<data value="${esc(b.remaining ?? '')}" class="remaining">${esc(n(b.remaining))}</data>`,
    esc(n(b.limit)),
    esc(b.cost !== undefined ? `$${b.cost.used} of $${b.cost.limit}` : '–'),
    esc(b.resetsAt),
  ]);
}

/** The SDK snippets: the token is never in the page, only a variable the developer fills. */
function snippets(gatewayUrl: string | undefined): string {
  const base = gatewayUrl ?? 'https://YOUR-GATEWAY/v1';
  const curl = `curl ${base}/chat/completions \\
  -H "Authorization: Bearer $TOLLGATE_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'`;
  const node = `import OpenAI from 'openai';

const client = new OpenAI({ baseURL: '${base}', apiKey: process.env.TOLLGATE_TOKEN });
const answer = await client.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Hello' }],
});
console.log(answer.choices[0].message.content);`;
  const python = `import os
from openai import OpenAI

client = OpenAI(base_url="${base}", api_key=os.environ["TOLLGATE_TOKEN"])
answer = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Hello"}],
)
print(answer.choices[0].message.content)`;
  const block = (id: string, label: string, code: string): string =>
    `<h3 id="${id}-label">${esc(label)}</h3>
<pre id="${id}" aria-labelledby="${id}-label"><code>${esc(code)}</code></pre>
<button type="button" data-copy="${id}">Copy ${esc(label)} snippet</button>`;
  return `<section aria-labelledby="snippets-h">
<h2 id="snippets-h">Use it</h2>
<p>Put your token in <code>TOLLGATE_TOKEN</code> (or run <code>tollgate login</code> and <code>export TOLLGATE_TOKEN=$(tollgate token)</code>).</p>
<p><button type="button" id="copy-token">Copy my current token</button> <span id="copy-status" role="status" aria-live="polite"></span></p>
${block('snippet-curl', 'curl', curl)}
${block('snippet-node', 'Node', node)}
${block('snippet-python', 'Python', python)}
</section>`;
}

/** The "Me" page: exactly the MeView `describeCaller` returned, rendered, nothing recomputed. */
export function mePage(view: MeView, opts: { csrf: string; gatewayUrl?: string; usage?: string; owners?: boolean }): string {
  const id = view.identity;
  const claims = Object.entries(view.claims).map(([k, v]) => [esc(k), esc(typeof v === 'string' ? v : JSON.stringify(v))]);
  const rules = view.rules.map((r) => [esc(r.name), esc(r.action), esc(r.mode), esc(r.applies ? 'yes' : 'no')]);
  const body = `<h1>Signed in as <span id="user">${esc(id.user)}</span></h1>
${opts.owners === true ? '<nav aria-label="Portal"><a href="/owners" id="owners-link">Owners view</a></nav>\n' : ''}<form method="post" action="/logout" id="logout">
<input type="hidden" name="csrf" value="${esc(opts.csrf)}">
<button type="submit">Sign out</button>
</form>
<section aria-labelledby="identity-h">
<h2 id="identity-h">Identity</h2>
<dl id="identity">
<dt>Provider</dt><dd>${esc(id.provider)}</dd>
<dt>Issuer</dt><dd>${esc(id.issuer)}</dd>
<dt>Subject</dt><dd>${esc(id.subject)}</dd>
<dt>Groups</dt><dd>${esc(id.groups.join(', ') || '–')}</dd>
<dt>Tenant</dt><dd id="tenant">${esc(id.tenant ?? '–')}</dd>
<dt>Token expires</dt><dd>${esc(id.expiresAt)}</dd>
</dl>
${table('claims', 'Claims Tollgate reads', ['Claim', 'Value'], claims, 'No further claims.')}
</section>
<section aria-labelledby="models-h">
<h2 id="models-h">Models you may use</h2>
${view.models.length > 0 ? `<ul id="models">${view.models.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>` : '<p id="models">None.</p>'}
<p>Requests no rule decides: ${esc(view.authorization.default)} (${esc(view.authorization.mode)}).</p>
${table('rules', 'Rules', ['Rule', 'Action', 'Mode', 'Applies to you'], rules, 'No rules.')}
</section>
<section aria-labelledby="limits-h">
<h2 id="limits-h">Rate limits</h2>
${table('rate-limits', 'Your rate limits now', ['Limit', 'Counter', 'Allowed', 'Used', 'Left', 'Resets'], rateLimitRows(view.rateLimits), 'No rate limit applies to you.')}
</section>
<section aria-labelledby="budgets-h">
<h2 id="budgets-h">Token budgets</h2>
${table('budgets', 'Your budgets this period (tokens)', ['Budget', 'Period', 'Used', 'Reserved', 'Remaining', 'Limit', 'Cost', 'Resets'], budgetRows(view.budgets), 'No budget applies to you.')}
</section>
${opts.usage ?? ''}
${snippets(opts.gatewayUrl)}
<p class="at">Read at ${esc(view.at)}. <a href="/">Refresh</a></p>`;
  return layout('Me', body, { csrf: opts.csrf });
}
