/**
 * Authorization code + PKCE with a loopback redirect (RFC 8252 §7.3): a one-shot HTTP listener on
 * 127.0.0.1 and a free port receives the redirect; the IdP must accept any port for a loopback
 * redirect URI registered as `http://127.0.0.1/callback` (a native client). The verifier, the
 * challenge and the state come from openid-client.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { LoginError, oauthCode, reason, requestParameters } from './oidc.js';
import type { LoginSettings } from './settings.js';

type TokenResponse = Awaited<ReturnType<typeof client.authorizationCodeGrant>>;

/** How long the listener waits for the browser to come back. */
const WAIT_MS = 5 * 60_000;

export async function browserLogin(
  config: client.Configuration,
  settings: LoginSettings,
  say: (line: string) => void,
): Promise<TokenResponse> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const { server, redirectUri, callback } = await listen();
  try {
    const params: Record<string, string> = {
      ...requestParameters(settings),
      redirect_uri: redirectUri,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    };
    // Most IdPs grant offline_access (a refresh token) only when consent is asked for explicitly.
    if (settings.scope.split(' ').includes('offline_access')) params['prompt'] = 'consent';
    const url = client.buildAuthorizationUrl(config, params);
    say(`Opening the browser to sign in; if it does not open, visit:\n${url.href}`);
    openBrowser(url.href, say);
    const returned = await callback;
    try {
      const tokens = await client.authorizationCodeGrant(config, returned.url, { pkceCodeVerifier: verifier, expectedState: state });
      returned.answer(true);
      return tokens;
    } catch (err) {
      returned.answer(false);
      if (oauthCode(err) === 'access_denied') throw new LoginError('the sign-in was denied (access_denied)', 'access_denied', { cause: err });
      throw new LoginError(`the browser sign-in failed: ${reason(err)}`, oauthCode(err), { cause: err });
    }
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** The redirect that came back, and how to answer the browser once the code is exchanged (or not). */
interface Returned {
  readonly url: URL;
  answer(ok: boolean): void;
}

async function listen(): Promise<{ server: Server; redirectUri: string; callback: Promise<Returned> }> {
  let deliver!: (returned: Returned) => void;
  let fail!: (err: Error) => void;
  const callback = new Promise<Returned>((resolve, reject) => {
    deliver = resolve;
    fail = reject;
  });
  let taken = false;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', redirectUri);
    // One redirect only: whatever comes first is the one checked (state, PKCE); later ones are refused.
    if (req.method !== 'GET' || url.pathname !== '/callback' || taken) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    taken = true;
    deliver({
      url,
      answer: (ok) =>
        res
          .writeHead(ok ? 200 : 400, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
          .end(`<!doctype html><title>Tollgate</title><p>${ok ? 'Signed in to Tollgate. You can close this window.' : 'The sign-in did not complete; see the terminal.'}</p>\n`),
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
  const timer = setTimeout(() => fail(new LoginError(`no sign-in came back within ${WAIT_MS / 60_000} min`)), WAIT_MS);
  timer.unref();
  server.once('close', () => clearTimeout(timer));
  return { server, redirectUri, callback };
}

/** `$BROWSER` when set (the usual convention; `true` or `none` to not open one), else the platform's opener. */
function openBrowser(url: string, say: (line: string) => void): void {
  const configured = process.env['BROWSER'];
  if (configured === 'none') return;
  const [command, args] =
    configured !== undefined && configured !== ''
      ? [configured, [url]]
      : process.platform === 'darwin'
        ? ['open', [url]]
        : process.platform === 'win32'
          ? ['cmd', ['/c', 'start', '""', url]]
          : ['xdg-open', [url]];
  const child = spawn(command, args, { stdio: 'ignore', detached: true });
  child.on('error', (err) => say(`(could not start ${command}: ${err.message})`));
  child.unref();
}

/** Whether a browser can plausibly be opened here (a desktop session, or `$BROWSER`). */
export function browserAvailable(): boolean {
  if (process.env['BROWSER'] !== undefined && process.env['BROWSER'] !== '' && process.env['BROWSER'] !== 'none') return true;
  if (process.platform === 'darwin' || process.platform === 'win32') return !process.env['SSH_CONNECTION'];
  return !!(process.env['DISPLAY'] || process.env['WAYLAND_DISPLAY']) && !process.env['SSH_CONNECTION'];
}
