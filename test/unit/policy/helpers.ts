/** Hand-built identities, rules and request contexts for the policy tests. */
import type {
  AuthorizationConfig,
  AuthorizationRule,
  Config,
  RequestMatch,
} from '../../../src/config/schema.js';
import { classify } from '../../../src/request/endpoint.js';
import type { RequestContext } from '../../../src/check/step.js';
import type { InboundRequest } from '../../../src/domain/request.js';
import type { Identity } from '../../../src/domain/identity.js';
import { testConfig } from '../../helpers/unit.js';

export function identity(overrides: Partial<Identity> = {}): Identity {
  return {
    provider: 'oidc-auth',
    issuer: 'https://auth.myorg.com',
    subject: 'user-1',
    user: 'alice@myorg.com',
    groups: [],
    claims: {},
    expiresAt: 2_000_000_000,
    ...overrides,
  };
}

/** A `match:` block; `claims` defaults to none, like the config loader's output. */
export function match(m: Partial<RequestMatch> = {}): RequestMatch {
  return { claims: {}, ...m };
}

export function rule(
  name: string,
  action: 'allow' | 'deny',
  m: Partial<RequestMatch> = {},
  mode: 'enforce' | 'shadow' = 'enforce',
): AuthorizationRule {
  return { name, action, mode, match: match(m) };
}

export function authz(
  rules: AuthorizationRule[],
  options: { default?: 'allow' | 'deny'; mode?: 'enforce' | 'shadow' } = {},
): AuthorizationConfig {
  return { default: options.default ?? 'allow', mode: options.mode ?? 'enforce', rules };
}

export function request(overrides: Partial<InboundRequest> = {}): InboundRequest {
  return { id: 'req-1', method: 'POST', path: '/v1/chat/completions', headers: {}, ...overrides };
}

function config(authorization: AuthorizationConfig): Config {
  return testConfig({
    authorization,
    metering: { defaultMaxOutputTokens: 1024 },
    logging: { level: 'silent' },
  });
}

export function context(
  authorization: AuthorizationConfig,
  options: { who?: Identity; path?: string; method?: string; model?: string } = {},
): RequestContext {
  return {
    request: request({
      path: options.path ?? '/v1/chat/completions',
      method: options.method ?? 'POST',
    }),
    identity: options.who ?? identity(),
    endpoint: classify(options.method ?? 'POST', options.path ?? '/v1/chat/completions'),
    ...(options.model !== undefined ? { model: options.model } : {}),
    now: 0,
    config: config(authorization),
  };
}
