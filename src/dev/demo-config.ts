/**
 * The embedded configuration of `tollgate demo`: one dev issuer, identity headers, a model
 * rule, a request rate limit and a daily tenant budget. It goes through the same validator as
 * any file.
 */
export const DEMO_AUDIENCE = 'tollgate-demo';

export function demoConfigYaml(issuerUrl: string, apiKeyEnv: string): string {
  return `# tollgate demo: embedded defaults
server:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0

authentication:
  - provider:
      name: dev-issuer
      issuer: ${issuerUrl}
      clientId: ${DEMO_AUDIENCE}
      claims: { user: email, groups: groups, tenant: tenant_id }

upstream:
  apiKey: { env: ${apiKeyEnv} }

identityHeaders:
  x-user-id: sub
  x-user-email: email
  x-tenant-id: tenant_id
  x-user-groups: groups

authorization:
  default: allow
  rules:
    - name: ml-team-may-use-gpt4
      match:
        models: ["gpt-4o", "gpt-4o-2*", "gpt-4.1*"]
        claims: { groups: ml-team }
      action: allow
    - name: nobody-else-gpt4
      match: { models: ["gpt-4o", "gpt-4o-2*", "gpt-4.1*"] }
      action: deny

rateLimits:
  - name: user-limit
    match:
      path: /v1/*
      claims:
        email: "*@example.com"
    requestsPerUnit: 60
    unit: minute

tokenBudgets:
  - tenant: demo
    maxTokens: 100000
    period: day
`;
}
