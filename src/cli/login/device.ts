/**
 * RFC 8628 device authorization grant: print where to go and the code, then poll the token
 * endpoint. openid-client's poller waits the server's `interval` (5 s when it names none), adds
 * 5 s on `slow_down`, keeps waiting on `authorization_pending` and stops at `expires_in`; we turn
 * the ways it ends into sentences.
 */
import * as client from 'openid-client';
import { LoginError, oauthCode, reason, requestParameters } from './oidc.js';
import type { LoginSettings } from './settings.js';

type TokenResponse = Awaited<ReturnType<typeof client.pollDeviceAuthorizationGrant>>;

export async function deviceLogin(
  config: client.Configuration,
  settings: LoginSettings,
  say: (line: string) => void,
): Promise<TokenResponse> {
  if (config.serverMetadata().device_authorization_endpoint === undefined) {
    throw new LoginError(`${settings.issuer} offers no device authorization endpoint: use \`tollgate login --browser\``);
  }
  let start: client.DeviceAuthorizationResponse;
  try {
    start = await client.initiateDeviceAuthorization(config, requestParameters(settings));
  } catch (err) {
    throw new LoginError(`the IdP refused the device authorization request: ${reason(err)}`, oauthCode(err), { cause: err });
  }
  say(`To sign in, open ${start.verification_uri} and enter the code ${start.user_code}`);
  if (start.verification_uri_complete !== undefined) say(`(or open ${start.verification_uri_complete})`);
  say(`Waiting for the sign-in; the code expires in ${Math.round(start.expires_in / 60) || 1} min.`);
  try {
    return await client.pollDeviceAuthorizationGrant(config, start, settings.resource !== undefined ? { resource: settings.resource } : undefined);
  } catch (err) {
    switch (oauthCode(err)) {
      case 'access_denied':
        throw new LoginError('the sign-in was denied (access_denied)', 'access_denied', { cause: err });
      case 'expired_token':
        throw new LoginError('the code expired before the sign-in was completed (expired_token): run `tollgate login` again', 'expired_token', { cause: err });
    }
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError' || (err.cause instanceof Error && err.cause.name === 'TimeoutError'))) {
      throw new LoginError('the code expired before the sign-in was completed: run `tollgate login` again', 'expired_token', { cause: err });
    }
    throw new LoginError(`the device sign-in failed: ${reason(err)}`, oauthCode(err), { cause: err });
  }
}
