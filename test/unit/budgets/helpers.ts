/** Identities, configs, contexts and a log sink for the budget tests. */
import type { Config, FitToBudget, TokenBudgetConfig } from '../../../src/config/schema.js';
import { classify } from '../../../src/request/endpoint.js';
import type { PlanGrant, PlanInput, PlanVerdict } from '../../../src/limits/admit.js';
import type { Denial } from '../../../src/domain/decision.js';
import type { Identity } from '../../../src/domain/identity.js';
import { testConfig } from '../../helpers/unit.js';

export { logSink } from '../../helpers/unit.js';

/** 2026-11-15T12:00:00Z, a Sunday in the middle of a month. */
export const T0 = Date.UTC(2026, 10, 15, 12);

export function identity(over: Partial<Identity> = {}): Identity {
  return {
    provider: 'oidc',
    issuer: 'https://idp.test',
    subject: 'sub-1',
    user: 'ann@myorg.com',
    groups: ['eng', 'ml-team'],
    tenant: 'acme',
    claims: {},
    expiresAt: 2_000_000_000,
    ...over,
  };
}

export function budget(over: Partial<TokenBudgetConfig> & Pick<TokenBudgetConfig, 'maxTokens'>): TokenBudgetConfig {
  const subject = over.tenant === undefined && over.group === undefined && over.user === undefined;
  return { period: 'month', timeZone: 'UTC', ...(subject ? { tenant: 'acme' } : {}), ...over };
}

export function config(
  tokenBudgets: TokenBudgetConfig[],
  defaultMaxOutputTokens = 100,
  fitToBudget?: FitToBudget,
): Config {
  return testConfig({
    tokenBudgets,
    metering: { defaultMaxOutputTokens, ...(fitToBudget !== undefined ? { fitToBudget } : {}) },
  });
}

/** A chat request whose estimate is prompt (a handful of tokens) + `maxTokens`. */
export function ctx(
  over: {
    path?: string;
    method?: string;
    who?: Identity;
    now?: number;
    maxTokens?: number;
    handoffId?: string;
    cfg?: Config;
    /** Replaces the whole request body (for other endpoints, `n`, `best_of`…). */
    body?: Record<string, unknown>;
  } = {},
): PlanInput {
  const body = over.body ?? {
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
    ...(over.maxTokens !== undefined ? { max_tokens: over.maxTokens } : {}),
  };
  return {
    request: {
      id: 'req-1',
      method: over.method ?? 'POST',
      path: over.path ?? '/v1/chat/completions',
      headers: {},
      body: JSON.stringify(body),
    },
    identity: over.who ?? identity(),
    endpoint: classify(over.method ?? 'POST', over.path ?? '/v1/chat/completions'),
    model: 'gpt-4o-mini',
    body,
    now: over.now ?? T0,
    ...(over.handoffId !== undefined ? { handoffId: over.handoffId } : {}),
  };
}

/** The grant of an admitted verdict; fails the test on a denial. */
export function granted(r: PlanVerdict): PlanGrant {
  if (!('ok' in r)) throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r.ok;
}

/** The denial of a refused verdict; fails the test on a grant. */
export function denied(r: PlanVerdict): Denial {
  if (!('deny' in r)) throw new Error(`expected deny, got ${JSON.stringify(r)}`);
  return r.deny;
}
