/**
 * Step `respond`: what an allowed request carries toward the upstream — identity headers from
 * verified claims, the upstream API key in place of the caller's token, and no other
 * credential of the caller anywhere (request/credentials.ts). Everything that depends only on
 * the configuration is prepared once, at construction.
 */
import type { Config } from '../config/schema.js';
import type { Identity } from '../domain/identity.js';
import { claimHeaderValue, trustedClaim } from '../identity/claims.js';
import { CREDENTIAL_HEADERS, credentialRemovals } from '../request/credentials.js';
import type { CheckStep } from './step.js';

/** Resolved upstream credentials: the default key and per-tenant overrides. */
export interface UpstreamCredentials {
  readonly apiKey?: string;
  readonly tenants: Readonly<Record<string, { readonly apiKey: string; readonly project?: string; readonly organization?: string }>>;
}

/** Mapped claim keys name the provider's mapping, like everywhere else in the config. */
function identityValue(identity: Identity, claim: string): unknown {
  switch (claim) {
    case 'user':
      return identity.user;
    case 'groups':
      return identity.groups;
    case 'tenant':
      return identity.tenant;
    default:
      return trustedClaim(identity.claims, claim);
  }
}

/** Header mutations toward the upstream; shared between requests, so never to be mutated. */
export interface UpstreamHeaders {
  readonly set: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
}

const NOTHING_REMOVED: readonly string[] = Object.freeze([]);

export class Responder {
  private readonly headers: readonly (readonly [string, string])[];
  /**
   * The identity headers of each verified identity. The verified-token cache hands out the
   * same Identity object for every request with the same token, and these depend only on it
   * and on this configuration; the entry lives as long as the cached identity.
   */
  private readonly computed = new WeakMap<Identity, UpstreamHeaders>();
  /**
   * The credential headers, made at construction (a reload makes a new Responder): one set per
   * tenant with its own key (`upstream.tenants`), one shared by everyone else.
   */
  private readonly perTenant: ReadonlyMap<string, UpstreamHeaders>;
  private readonly shared: UpstreamHeaders;

  constructor(config: Config, credentials: UpstreamCredentials) {
    this.headers = Object.entries(config.identityHeaders);
    this.shared = credentialHeadersFor(credentials.apiKey, undefined);
    // A Map, not the tenants object: a tenant named `constructor` finds nothing here.
    this.perTenant = new Map(
      Object.entries(credentials.tenants).map(([tenant, own]) => [tenant, credentialHeadersFor(credentials.apiKey, own)]),
    );
  }

  /** The identity headers for a verified identity (set, or removed when the claim is absent). */
  identityHeaders(identity: Identity): UpstreamHeaders {
    let headers = this.computed.get(identity);
    if (headers === undefined) {
      headers = this.computeIdentity(identity);
      this.computed.set(identity, headers);
    }
    return headers;
  }

  /** The upstream key, project and organization for the identity's tenant. */
  credentialHeaders(identity: Identity): UpstreamHeaders {
    return (identity.tenant !== undefined ? this.perTenant.get(identity.tenant) : undefined) ?? this.shared;
  }

  private computeIdentity(identity: Identity): UpstreamHeaders {
    const set: Record<string, string> = {};
    const remove: string[] = [];
    for (const [header, claim] of this.headers) {
      const value = claimHeaderValue(identityValue(identity, claim));
      // An absent claim must still erase whatever the caller sent under that name.
      if (value === undefined || value === '') remove.push(header);
      else set[header] = value;
    }
    // Kept as long as the cached identity: an exact-length copy (appending leaves spare room).
    return { set, remove: remove.length === 0 ? NOTHING_REMOVED : remove.slice() };
  }
}

/** Header mutations that put the gateway's key (a tenant's own, else the default) upstream. */
function credentialHeadersFor(
  defaultKey: string | undefined,
  tenantCreds: UpstreamCredentials['tenants'][string] | undefined,
): UpstreamHeaders {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  const key = tenantCreds?.apiKey ?? defaultKey;
  // The caller's JWT never travels upstream: replaced by the key, or removed when none is set.
  if (key !== undefined) set['authorization'] = `Bearer ${key}`;
  else remove.push('authorization');
  // The gateway's key is billed, so the caller never picks the project or organization it bills.
  if (tenantCreds?.project !== undefined) set['openai-project'] = tenantCreds.project;
  else remove.push('openai-project');
  if (tenantCreds?.organization !== undefined) set['openai-organization'] = tenantCreds.organization;
  else remove.push('openai-organization');
  return { set, remove };
}

export function respondStep(responder: Responder): CheckStep {
  return {
    name: 'respond',
    reported: false,
    run(check) {
      const identity = responder.identityHeaders(check.caller);
      const credentials = responder.credentialHeaders(check.caller);
      Object.assign(check.setHeaders, identity.set, credentials.set);
      check.removeHeaders.push(...identity.remove, ...credentials.remove, ...CREDENTIAL_HEADERS);
      if (check.token !== undefined) {
        const removals = credentialRemovals(check.request, check.token);
        check.removeHeaders.push(...removals.headers);
        check.removeQueryParams.push(...removals.params);
      }
      return undefined;
    },
  };
}
