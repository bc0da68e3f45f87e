/**
 * The portal's side of the IdP, through openid-client (the library `tollgate login` uses):
 * discovery, the authorization URL with PKCE (S256), state and nonce, and the code exchange,
 * which checks the state, the nonce and the ID token. No protocol or crypto code of our own.
 */
import * as client from 'openid-client';
import type { PortalConfig } from '../config/schema.js';

/** Seconds one HTTP request to the IdP may take. */
const REQUEST_TIMEOUT_S = 15;

/** What the portal keeps between sending the browser to the IdP and its return. */
export interface PendingSignIn {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

export interface SignedIn {
  /** The token that signs the developer in (`portal.token`): verified next by the Check's authenticator. */
  readonly token: string;
  /** The refresh token, when the IdP issued one: kept server-side in the session only. */
  readonly refreshToken?: string;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127\./.test(hostname);
}

export class PortalClient {
  private readonly portal: PortalConfig;
  private readonly issuer: string;
  private readonly secret: string | undefined;
  private discovered: Promise<client.Configuration> | undefined;

  constructor(portal: PortalConfig, issuer: string, secret: string | undefined) {
    this.portal = portal;
    this.issuer = issuer;
    this.secret = secret;
  }

  get redirectUri(): string {
    return `${this.portal.publicUrl}/callback`;
  }

  /** Discovery once; a failure is retried on the next sign-in. */
  private configuration(): Promise<client.Configuration> {
    if (this.discovered === undefined) {
      const url = new URL(this.issuer);
      // Plain http only to a loopback IdP (tests, a local demo), as `tollgate login` allows.
      const insecure = url.protocol === 'http:' && isLoopback(url.hostname);
      const auth = this.secret !== undefined ? client.ClientSecretPost(this.secret) : client.None();
      this.discovered = client
        .discovery(url, this.portal.clientId, this.secret, auth, {
          timeout: REQUEST_TIMEOUT_S,
          ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
        })
        .catch((err: unknown) => {
          this.discovered = undefined;
          throw err;
        });
    }
    return this.discovered;
  }

  /** The IdP URL to send the browser to, and what to keep for its return. */
  async start(): Promise<{ url: string; pending: PendingSignIn }> {
    const config = await this.configuration();
    const codeVerifier = client.randomPKCECodeVerifier();
    const pending = { state: client.randomState(), nonce: client.randomNonce(), codeVerifier };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri,
      scope: this.portal.scope,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
      // A refresh token only when the config asks for one; most IdPs grant offline_access only
      // when consent is asked for explicitly (as `tollgate login` does).
      ...(this.portal.scope.split(' ').includes('offline_access') ? { prompt: 'consent' } : {}),
      ...(this.portal.resource !== undefined ? { resource: this.portal.resource } : {}),
    });
    return { url: url.href, pending };
  }

  /** Exchanges the code of `callbackQuery` (the raw query string the browser brought back). */
  async finish(callbackQuery: string, pending: PendingSignIn): Promise<SignedIn> {
    const config = await this.configuration();
    const current = new URL(`${this.redirectUri}${callbackQuery}`);
    const tokens = await client.authorizationCodeGrant(
      config,
      current,
      { pkceCodeVerifier: pending.codeVerifier, expectedState: pending.state, expectedNonce: pending.nonce, idTokenExpected: true },
      this.resourceParameter(),
    );
    return this.signedIn(tokens);
  }

  /** Uses the refresh token (with `resource` when configured); the IdP may rotate it. */
  async refresh(refreshToken: string): Promise<SignedIn> {
    const config = await this.configuration();
    const tokens = await client.refreshTokenGrant(config, refreshToken, this.resourceParameter());
    const signedIn = this.signedIn(tokens);
    return signedIn.refreshToken !== undefined ? signedIn : { ...signedIn, refreshToken };
  }

  /** Revokes the refresh token; false when the IdP offers no revocation. */
  async revoke(refreshToken: string): Promise<boolean> {
    const config = await this.configuration();
    if (config.serverMetadata().revocation_endpoint === undefined) return false;
    await client.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
    return true;
  }

  private resourceParameter(): Record<string, string> | undefined {
    return this.portal.resource !== undefined ? { resource: this.portal.resource } : undefined;
  }

  private signedIn(tokens: client.TokenEndpointResponse): SignedIn {
    const token = this.portal.token === 'id' ? tokens.id_token : tokens.access_token;
    if (token === undefined || token === '') throw new Error(`the IdP returned no ${this.portal.token} token`);
    const refreshToken = tokens.refresh_token;
    return { token, ...(refreshToken !== undefined && refreshToken !== '' ? { refreshToken } : {}) };
  }
}
