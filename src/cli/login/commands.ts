/**
 * `tollgate login`, `tollgate logout` and the login half of `tollgate token`. Prompts and
 * progress go to stderr; stdout carries only what a script reads (the token).
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../../config/problems.js';
import { browserAvailable, browserLogin } from './browser.js';
import { credentialsPath, writeLogin } from './cache.js';
import { deviceLogin } from './device.js';
import { LoginError, discover, profileFlag, toCached } from './oidc.js';
import { freshToken, logout } from './session.js';
import type { ClientConfig } from '../../config/client.js';
import { SettingsError, loadClientConfig, profileName, resolveSettings, type LoginFlags } from './settings.js';

interface Out {
  write(chunk: string): unknown;
}

export const LOGIN_HELP = `usage: tollgate login [--issuer URL] [--client-id ID] [--scope "openid offline_access"] [--resource URI]
                      [--profile NAME] [--browser | --device]
  signs in with the OIDC device authorization grant (prints a URL and a code), or with
  authorization code + PKCE in a browser (--browser, or by default when a browser can be opened);
  defaults come from TOLLGATE_ISSUER / TOLLGATE_CLIENT_ID / ... and the client config
  ($TOLLGATE_CONFIG, $TOLLGATE_HOME/config.yaml or ~/.config/tollgate/config.yaml)
`;

const LOGOUT_HELP = 'usage: tollgate logout [--profile NAME]\n';

/** Parses the arguments; returns the exit code for a usage error (after printing it). */
function args(rest: string[], err: Out, help: string, booleans: readonly string[], strings: readonly string[]) {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const b of ['help', ...booleans]) options[b] = { type: 'boolean' };
  for (const s of strings) options[s] = { type: 'string' };
  try {
    const parsed = parseArgs({ args: rest, options, allowPositionals: false, strict: true });
    return parsed.values as Record<string, string | boolean | undefined>;
  } catch (e) {
    err.write(`tollgate: ${e instanceof Error ? e.message : String(e)}\n\n${help}`);
    return undefined;
  }
}

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Prints a failure the user can act on and returns its exit code; rethrows anything else. */
function failed(e: unknown, err: Out): number {
  if (e instanceof SettingsError || e instanceof ConfigError) {
    err.write(`tollgate: ${e.message}\n`);
    return 2;
  }
  if (e instanceof LoginError) {
    err.write(`tollgate: ${e.message}\n`);
    return 1;
  }
  throw e;
}

export async function loginCommand(rest: string[], out: Out, err: Out): Promise<number> {
  const v = args(rest, err, LOGIN_HELP, ['browser', 'device'], ['issuer', 'client-id', 'scope', 'resource', 'profile']);
  if (v === undefined) return 2;
  if (v['help'] === true) {
    out.write(LOGIN_HELP);
    return 0;
  }
  if (v['browser'] === true && v['device'] === true) {
    err.write(`tollgate: --browser and --device exclude each other\n\n${LOGIN_HELP}`);
    return 2;
  }
  const flags: LoginFlags = {
    profile: str(v['profile']),
    issuer: str(v['issuer']),
    clientId: str(v['client-id']),
    scope: str(v['scope']),
    resource: str(v['resource']),
  };
  const say = (line: string) => err.write(`${line}\n`);
  try {
    const settings = resolveSettings(flags, await loadClientConfig());
    const config = await discover(settings);
    const meta = config.serverMetadata();
    const useBrowser =
      v['browser'] === true ||
      (v['device'] !== true && (meta.device_authorization_endpoint === undefined || browserAvailable()));
    const res = useBrowser ? await browserLogin(config, settings, say) : await deviceLogin(config, settings, say);
    const login = toCached(settings, res);
    await writeLogin(settings.profile, login);
    const claims = res.claims();
    const who = [claims?.['email'], claims?.sub].find((c): c is string => typeof c === 'string');
    say(`Logged in${who !== undefined ? ` as ${who}` : ''} to ${settings.issuer} (profile ${settings.profile}; tokens in ${credentialsPath(settings.profile)}).`);
    if (login.refreshToken === undefined) say('The IdP issued no refresh token (ask for `offline_access`?): `tollgate token` works until the token expires.');
    say(`Print a fresh token with \`tollgate token${profileFlag(settings.profile)}\`.`);
    return 0;
  } catch (e) {
    return failed(e, err);
  }
}

export async function logoutCommand(rest: string[], out: Out, err: Out): Promise<number> {
  const v = args(rest, err, LOGOUT_HELP, [], ['profile']);
  if (v === undefined) return 2;
  if (v['help'] === true) {
    out.write(LOGOUT_HELP);
    return 0;
  }
  try {
    const profile = profileName({ profile: str(v['profile']) }, await loadClientConfig());
    const result = await logout(profile);
    const said = {
      revoked: `Logged out of profile ${profile}: the IdP revoked the tokens and the local copy is deleted.`,
      deleted: `Logged out of profile ${profile}: the local copy is deleted (the IdP offers no revocation).`,
      none: `Profile ${profile} was not logged in.`,
    }[result];
    err.write(`${said}\n`);
    return 0;
  } catch (e) {
    return failed(e, err);
  }
}

/**
 * The login token of the named (or current) profile, fresh; undefined when that profile has no
 * login, so `tollgate token` can fall back to the demo issuer.
 */
export async function loginToken(profile: string | undefined, out: Out, err: Out): Promise<number | undefined> {
  try {
    const config = await loadClientConfig();
    const name = profileName({ profile }, config);
    const token = await freshToken(name, (line) => err.write(`${line}\n`));
    if (token === undefined) {
      // Nothing configured for logins and no profile named: today's demo behaviour.
      if (profile === undefined && !configured(config)) return undefined;
      err.write(`tollgate: profile ${name} is not logged in: run \`tollgate login${profileFlag(name)}\`\n`);
      return 1;
    }
    out.write(`${token}\n`);
    return 0;
  } catch (e) {
    return failed(e, err);
  }
}

/** Whether the environment or the client config names an issuer for the current profile. */
export function configured(config: ClientConfig): boolean {
  try {
    resolveSettings({}, config);
    return true;
  } catch {
    return false;
  }
}
