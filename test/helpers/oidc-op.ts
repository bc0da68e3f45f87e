/**
 * A real OpenID Provider (the certified `oidc-provider` package) for login tests: device flow,
 * authorization code + PKCE for a native (loopback) client, refresh tokens, revocation, and JWT
 * access tokens for the gateway's audience carrying the user's email, groups and tenant.
 * Knobs a test turns: the access token lifetime, the device code lifetime, the polling interval
 * it announces, and `slow_down` answers for the next polls. Every token request is recorded.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export const GATEWAY_AUDIENCE = 'https://gateway.tollgate.test';
export const CLI_CLIENT_ID = 'tollgate-cli';

/** The people the provider knows: login name → claims in their access tokens. */
export const USERS: Record<string, { email: string; groups: string[]; tenant_id: string }> = {
  ada: { email: 'ada@example.com', groups: ['ml-team'], tenant_id: 'acme' },
  bob: { email: 'bob@example.com', groups: ['sales'], tenant_id: 'acme' },
  cy: { email: 'cy@example.com', groups: ['llm-platform'], tenant_id: 'globex' },
};

export interface TokenRequest {
  readonly at: number;
  readonly status: number;
}

export class TestOP {
  /** Seconds an access token lives. */
  accessTokenTtl = 3600;
  /** Seconds a device code lives. */
  deviceCodeTtl = 600;
  /** The `interval` announced in device authorization responses (RFC 8628 §3.2). */
  interval: number | undefined = 1;
  /** The next this many token requests are answered `slow_down` without reaching the provider. */
  slowDownNext = 0;
  readonly tokenRequests: TokenRequest[] = [];
  /** Every refresh token the provider issued, newest last (for a test to revoke one at the provider). */
  readonly refreshTokens: string[] = [];
  readonly issuer: string;
  private readonly server: Server;

  private constructor(issuer: string, server: Server) {
    this.issuer = issuer;
    this.server = server;
  }

  /**
   * `revocation: false` starts a provider without a revocation endpoint; `web` adds a confidential
   * web client (the portal) with its secret and redirect URI.
   */
  static async start(opts: { revocation?: boolean; web?: { clientId: string; secret: string; redirectUri: string } } = {}): Promise<TestOP> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    // The knobs are read through `op` at request time, so a test can turn them between calls.
    const op = new TestOP(issuer, server);
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: CLI_CLIENT_ID,
          application_type: 'native',
          token_endpoint_auth_method: 'none',
          grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'authorization_code', 'refresh_token'],
          response_types: ['code'],
          redirect_uris: ['http://127.0.0.1/callback'],
        },
        ...(opts.web !== undefined
          ? [
              {
                client_id: opts.web.clientId,
                client_secret: opts.web.secret,
                application_type: 'web' as const,
                token_endpoint_auth_method: 'client_secret_post' as const,
                grant_types: ['authorization_code', 'refresh_token'],
                response_types: ['code'],
                redirect_uris: [opts.web.redirectUri],
              },
            ]
          : []),
      ],
      jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'op-login-1', alg: 'RS256', use: 'sig' }] },
      findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub, email: USERS[sub]?.email }) }),
      claims: { openid: ['sub'], email: ['email'] },
      extraTokenClaims: (_ctx: unknown, token: { accountId?: unknown }) => {
        const user = typeof token.accountId === 'string' ? USERS[token.accountId] : undefined;
        return user === undefined ? undefined : { ...user };
      },
      features: {
        devInteractions: { enabled: true },
        deviceFlow: { enabled: true },
        revocation: { enabled: opts.revocation ?? true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => GATEWAY_AUDIENCE,
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({ scope: '', audience: GATEWAY_AUDIENCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
        },
      },
      ttl: {
        AccessToken: () => op.accessTokenTtl,
        DeviceCode: () => op.deviceCodeTtl,
        RefreshToken: 86400,
        Grant: 86400,
        Session: 86400,
        Interaction: 3600,
        IdToken: 3600,
      },
    });
    provider.on('device_authorization.success', (_ctx, body) => {
      if (op.interval !== undefined) body['interval'] = op.interval;
    });
    provider.use(async (ctx, next) => {
      if (ctx.method === 'POST' && ctx.path === '/token') {
        if (op.slowDownNext > 0) {
          op.slowDownNext -= 1;
          op.tokenRequests.push({ at: Date.now(), status: 400 });
          ctx.status = 400;
          ctx.body = { error: 'slow_down', error_description: 'polling too fast' };
          return;
        }
        await next();
        op.tokenRequests.push({ at: Date.now(), status: ctx.status });
        const issued = (ctx.body as { refresh_token?: unknown } | undefined)?.refresh_token;
        if (typeof issued === 'string') op.refreshTokens.push(issued);
        return;
      }
      await next();
    });
    server.on('request', provider.callback());
    return op;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
