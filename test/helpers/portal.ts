/**
 * The portal's end-to-end scaffolding: a real OpenID Provider (`oidc-provider`) with a web client
 * for the portal, the dev upstream, and `tollgate stack` (real Envoy) with `portal:` on, a
 * per-user rate limit and two budgets (tenant acme, user ada@example.com). Registers its hooks in
 * the enclosing describe.
 */
import type { BudgetView } from '../../src/budgets/view.js';
import { DevUpstream } from '../../src/dev/upstream.js';
import { freePort } from '../../src/stack/ports.js';
import { GATEWAY_AUDIENCE, TestOP } from './oidc-op.js';
import { startStack, type StackProcess } from './stack.js';

export const PORTAL_CLIENT = 'tollgate-portal';
export const PORTAL_SECRET = 'portal-secret-0123456789abcdef';

export interface PortalStack {
  readonly url: string;
  readonly stack: StackProcess;
  readonly op: TestOP;
  /** `GET /budget?<query>` on the metrics listener: what the ledger holds. */
  ledger(query: string): Promise<BudgetView>;
  /** Waits until `query`'s budget has usage and nothing reserved (every call settled). */
  settled(query: string): Promise<BudgetView>;
}

export function withPortalStack(): PortalStack {
  const state: { op?: TestOP; upstream?: DevUpstream; stack?: StackProcess; url?: string } = {};
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`the ${what} is not started`);
    return v;
  };
  before(async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    state.url = url;
    state.op = await TestOP.start({ web: { clientId: PORTAL_CLIENT, secret: PORTAL_SECRET, redirectUri: `${url}/callback` } });
    state.upstream = await DevUpstream.start();
    state.stack = await startStack({
      upstream: state.upstream.url,
      config: `
server: { grpc: 127.0.0.1:0, metrics: 127.0.0.1:0 }
authentication:
  - provider: { name: company-idp, issuer: ${state.op.issuer}, clientId: ${GATEWAY_AUDIENCE} }
upstream:
  apiKey: { env: TEST_UPSTREAM_KEY }
rateLimits:
  - { name: per-user, match: { path: "/v1/*" }, requestsPerUnit: 50, unit: minute }
tokenBudgets:
  - { tenant: acme, maxTokens: 100000, period: month }
  - { user: ada@example.com, maxTokens: 50000, period: day }
portal:
  listen: 127.0.0.1:${port}
  provider: company-idp
  clientId: ${PORTAL_CLIENT}
  clientSecret: { env: PORTAL_SECRET }
  publicUrl: ${url}
  scope: openid email offline_access
  owners: { groups: [llm-platform], tenantGroups: [ml-team] }
  resource: ${GATEWAY_AUDIENCE}
`,
      env: { TEST_UPSTREAM_KEY: 'sk-upstream', PORTAL_SECRET },
    });
  });
  after(async () => {
    await state.stack?.stop();
    await state.upstream?.close();
    await state.op?.close();
  });
  const ctx: PortalStack = {
    get url() {
      return need(state.url, 'portal');
    },
    get stack() {
      return need(state.stack, 'stack');
    },
    get op() {
      return need(state.op, 'provider');
    },
    async ledger(query) {
      const base = (ctx.stack.ready.metrics ?? '').replace(/\/metrics$/, '');
      const body = (await (await fetch(`${base}/budget?${query}`)).json()) as { budgets: BudgetView[] };
      const view = body.budgets[0];
      if (view === undefined) throw new Error(`no budget for ${query}`);
      return view;
    },
    async settled(query) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const b = await ctx.ledger(query);
        if (b.reserved === 0 && (b.used ?? 0) > 0) return b;
        if (Date.now() > deadline) throw new Error(`the calls charged to ${query} did not settle`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
  return ctx;
}
