/** Hand-built identities, rules and request contexts for the policy tests. */
import type {
  AuthorizationConfig,
  AuthorizationRule,
  RequestMatch,
} from '../../../src/config/schema.js';
import { classify } from '../../../src/request/endpoint.js';
import type { AuthorizeStep } from '../../../src/check/authorize.js';
import { CheckState } from '../../../src/check/step.js';
import type { Denial } from '../../../src/domain/decision.js';
import type { InboundRequest } from '../../../src/domain/request.js';
import type { Identity } from '../../../src/domain/identity.js';

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

export function context(
  options: { who?: Identity; path?: string; method?: string; model?: string } = {},
): CheckState {
  const method = options.method ?? 'POST';
  const path = options.path ?? '/v1/chat/completions';
  const state = new CheckState(request({ path, method }), 0, 'handoff-1');
  state.identity = options.who ?? identity();
  state.endpoint = classify(method, path);
  if (options.model !== undefined) state.model = options.model;
  return state;
}

/** The authorize step's outcome: its denial, or what it recorded on an allowed request. */
export type AuthorizeResult =
  | { readonly deny: Denial }
  | { readonly ok: { readonly metadata: Readonly<Record<string, unknown>> } };

/** Runs the authorize step on `state` as the Check would. */
export function authorizeWith(step: AuthorizeStep, state: CheckState): AuthorizeResult {
  const denial = step.run(state);
  if (denial !== undefined) return { deny: denial };
  return {
    ok: {
      metadata: {
        authz: state.authz,
        ...(state.shadowDenied !== undefined ? { shadowDenied: state.shadowDenied } : {}),
      },
    },
  };
}
