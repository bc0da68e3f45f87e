/**
 * The settings of one login: flags over environment over the profile's entry over the client
 * configuration's top-level defaults. A missing issuer or client id is a usage problem that says
 * where each can come from.
 */
import { readFile } from 'node:fs/promises';
import {
  EMPTY_CLIENT_CONFIG,
  PROFILE_NAME,
  parseClientConfig,
  profileNameProblem,
  resourceProblem,
  type ClientConfig,
  type ClientProfile,
  type PrintedToken,
} from '../../config/client.js';
import { clientConfigPath } from '../home.js';

export const DEFAULT_SCOPE = 'openid offline_access';
export const DEFAULT_PROFILE = 'default';

export interface LoginSettings {
  readonly profile: string;
  readonly issuer: string;
  readonly clientId: string;
  readonly scope: string;
  readonly resource?: string;
  readonly token: PrintedToken;
}

/** What the command line said; each overrides the environment and the file. */
export interface LoginFlags {
  readonly profile?: string | undefined;
  readonly issuer?: string | undefined;
  readonly clientId?: string | undefined;
  readonly scope?: string | undefined;
  readonly resource?: string | undefined;
}

/** A problem with the settings the user can fix (exit 2 with the message). */
export class SettingsError extends Error {}

export async function loadClientConfig(path = clientConfigPath()): Promise<ClientConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_CLIENT_CONFIG;
    throw err;
  }
  return parseClientConfig(text, path);
}

/** The profile a command acts on: `--profile`, `TOLLGATE_PROFILE`, the file's `profile`, `default`. */
export function profileName(flags: LoginFlags, config: ClientConfig): string {
  const name = flags.profile ?? env('TOLLGATE_PROFILE') ?? config.profile ?? DEFAULT_PROFILE;
  if (!PROFILE_NAME.test(name)) throw new SettingsError(profileNameProblem(name));
  return name;
}

/** Merges every source; throws SettingsError when the issuer or client id is missing or invalid. */
export function resolveSettings(flags: LoginFlags, config: ClientConfig): LoginSettings {
  const profile = profileName(flags, config);
  const entry: ClientProfile = Object.hasOwn(config.profiles, profile) ? (config.profiles[profile] ?? {}) : {};
  const pick = (flag: string | undefined, envName: string, key: keyof Omit<ClientProfile, 'token'>) =>
    flag ?? env(envName) ?? entry[key] ?? config.defaults[key];
  const issuer = pick(flags.issuer, 'TOLLGATE_ISSUER', 'issuer');
  const clientId = pick(flags.clientId, 'TOLLGATE_CLIENT_ID', 'clientId');
  const scope = pick(flags.scope, 'TOLLGATE_SCOPE', 'scope') ?? DEFAULT_SCOPE;
  const resource = pick(flags.resource, 'TOLLGATE_RESOURCE', 'resource');
  const missing = [issuer === undefined ? '--issuer URL (or TOLLGATE_ISSUER, or `issuer:` in the client config)' : '', clientId === undefined ? '--client-id ID (or TOLLGATE_CLIENT_ID, or `clientId:`)' : ''].filter(Boolean);
  if (issuer === undefined || clientId === undefined) {
    throw new SettingsError(`profile ${JSON.stringify(profile)} needs ${missing.join(' and ')}; the client config is ${clientConfigPath()}`);
  }
  checkIssuer(issuer);
  if (resource !== undefined && resourceProblem(resource) !== undefined) throw new SettingsError(resourceProblem(resource));
  if (scope.trim() === '') throw new SettingsError('the scope must not be empty');
  return {
    profile,
    issuer,
    clientId,
    scope: scope.trim().split(/ +/).join(' '),
    ...(resource !== undefined ? { resource } : {}),
    token: entry.token ?? config.defaults.token ?? 'access',
  };
}

/**
 * The gateway's base URL for `tollgate whoami`: `--url`, `TOLLGATE_URL`, the profile's `url`,
 * the client config's top-level `url`; undefined when none says.
 */
export function gatewayUrl(flag: string | undefined, config: ClientConfig, profile: string): string | undefined {
  const entry: ClientProfile = Object.hasOwn(config.profiles, profile) ? (config.profiles[profile] ?? {}) : {};
  return flag ?? env('TOLLGATE_URL') ?? entry.url ?? config.defaults.url;
}

/**
 * Plain http is allowed only for an issuer on this machine (a test or development IdP): tokens
 * and refresh tokens must never cross a network in the clear.
 */
export function checkIssuer(issuer: string): URL {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new SettingsError(`the issuer must be an https URL, got ${JSON.stringify(issuer)}`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopback(url.hostname)) return url;
  throw new SettingsError(`the issuer must be an https URL (plain http only on loopback), got ${JSON.stringify(issuer)}`);
}

export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}
