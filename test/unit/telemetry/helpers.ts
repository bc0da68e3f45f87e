/**
 * A Gateway with real stages (authorize, admit with rate limits and budgets, memory store), a
 * pino sink with the production redaction, and an in-memory span exporter: the pieces the
 * telemetry tests observe.
 */
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { Config } from '../../../src/config/schema.js';
import { AuthorizeStep } from '../../../src/check/authorize.js';
import { BudgetPlanner } from '../../../src/budgets/planner.js';
import { CheckFlow, checkSteps, type CheckDeps } from '../../../src/check/flow.js';
import { RateLimitPlanner } from '../../../src/limits/rate-limit.js';
import { Responder } from '../../../src/check/respond.js';
import type { InboundRequest } from '../../../src/domain/request.js';
import type { Identity } from '../../../src/domain/identity.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { Tracing } from '../../../src/telemetry/tracing.js';
import { AuthenticationError } from '../../../src/domain/errors.js';
import { logSink, testConfig } from '../../helpers/unit.js';

export { logSink };

export const T0 = Date.UTC(2026, 10, 15, 12);

export function identity(over: Partial<Identity> = {}): Identity {
  return {
    provider: 'main-idp',
    issuer: 'https://idp.test',
    subject: 'sub-1',
    user: 'ann@myorg.com',
    groups: ['eng', 'ml-team'],
    tenant: 'acme',
    claims: { email: 'ann@myorg.com', groups: ['eng', 'ml-team'] },
    expiresAt: 2_000_000_000,
    ...over,
  };
}

/** gpt-4o* only for ml-team (a rule that names a claim), a rate limit, a tenant budget. */
export function config(over: Partial<Config> = {}): Config {
  return testConfig({
    authorization: {
      default: 'allow',
      mode: 'enforce',
      rules: [
        {
          name: 'ml-team-gpt4o',
          match: { models: ['gpt-4o*'], claims: { groups: ['ml-team'] } },
          action: 'allow',
          mode: 'enforce',
        },
        {
          name: 'nobody-else-gpt4o',
          match: { models: ['gpt-4o*'], claims: {} },
          action: 'deny',
          mode: 'enforce',
        },
      ],
    },
    rateLimits: [
      {
        name: 'per-user',
        match: { claims: {} },
        requestsPerUnit: 100,
        unit: 'minute',
        key: 'user',
      },
    ],
    tokenBudgets: [{ tenant: 'acme', maxTokens: 100_000, period: 'month', timeZone: 'UTC' }],
    ...over,
  });
}

/** Tracing into memory, exported span by span (no batching delay). */
export function memoryTracing(): { tracing: Tracing; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { tracing: new Tracing(provider), exporter };
}

/** Callers known by their bearer value: `Bearer ann` is ml-team, `Bearer bob` is not. */
const CALLERS: Record<string, Identity> = {
  ann: identity(),
  bob: identity({
    subject: 'sub-2',
    user: 'bob@myorg.com',
    groups: ['sales'],
    claims: { email: 'bob@myorg.com' },
  }),
};

export function gateway(
  over: Partial<CheckDeps> = {},
  cfg = config(),
): { gateway: CheckFlow; lines: Record<string, unknown>[]; raw: string[] } {
  const { logger, lines, raw } = logSink();
  const store = new MemoryStore();
  const gw = new CheckFlow({
    config: cfg,
    steps: checkSteps({
      verifier: {
        authenticate: (header) => {
          const who = CALLERS[(header ?? '').replace(/^Bearer /, '')];
          return who
            ? Promise.resolve(who)
            : Promise.reject(new AuthenticationError('bad_signature', 'token signature does not verify'));
        },
      },
      authorize: new AuthorizeStep(cfg.authorization),
      planners: [new RateLimitPlanner(cfg), new BudgetPlanner(cfg)],
      store,
      responder: new Responder(cfg, { tenants: {} }),
    }),
    logger,
    now: () => T0,
    ...over,
  });
  return { gateway: gw, lines, raw };
}

export function chat(
  caller: string,
  model = 'gpt-4o-mini',
  headers: Record<string, string> = {},
): InboundRequest {
  return {
    id: `req-${caller}-${model}`,
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { authorization: `Bearer ${caller}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      model,
      messages: [{ role: 'user', content: 'the secret prompt' }],
      max_tokens: 50,
    }),
  };
}
