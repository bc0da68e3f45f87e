/**
 * Envoy bootstraps for every configuration. The Tollgate ones are the stack's own rendering of
 * `envoy/local.yaml`; the baseline and the native-filter ones are derived from that same
 * rendering by swapping only the HTTP filters, so listener, codec, timeouts and route stay
 * identical and the comparison measures the filters alone.
 */
import { parse } from 'yaml';
import type { Config } from '../../src/config/schema.js';
import { renderBootstrap } from '../../src/stack/bootstrap.js';
import { stackBootstrapOptions } from '../../src/stack/run.js';
import type { JWK } from 'jose';

type Json = Record<string, unknown>;

/** What the benchmark's upstream answers to a non-streaming chat completion. */
export const CHAT_COMPLETION = {
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1700000000,
  model: 'gpt-4o-mini',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'Hello from the bench upstream.' },
      finish_reason: 'stop',
    },
  ],
  usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 },
};

/**
 * The upstream: Envoy answering from memory (`direct_response`), so it costs as little CPU as
 * anything can and every configuration sees the same, instant model API.
 */
export function upstreamYaml(): string {
  const doc = {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: 'ingress',
          address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'upstream',
                    codec_type: 'AUTO',
                    route_config: {
                      name: 'upstream',
                      virtual_hosts: [
                        {
                          name: 'openai',
                          domains: ['*'],
                          routes: [
                            {
                              match: { prefix: '/' },
                              direct_response: {
                                status: 200,
                                body: { inline_string: JSON.stringify(CHAT_COMPLETION) },
                              },
                              response_headers_to_add: [
                                {
                                  header: { key: 'content-type', value: 'application/json' },
                                  append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
                                },
                              ],
                            },
                          ],
                        },
                      ],
                    },
                    http_filters: [
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: {
                          '@type':
                            'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                        },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    },
  };
  return JSON.stringify(doc);
}

/**
 * The bootstrap `tollgate stack` renders for `config` (the options come from the stack itself,
 * so ext_proc's processing mode, identity headers and whatever else it passes stay in step).
 */
export function stackYaml(config: Config, grpcPort: number, upstreamUrl: string): string {
  return renderBootstrap(stackBootstrapOptions(config, grpcPort, upstreamUrl, 0));
}

function hcm(doc: Json): Json {
  const listeners = (doc['static_resources'] as { listeners: Json[] }).listeners;
  const ingress = listeners.find((l) => l['name'] === 'ingress');
  const chains = ingress?.['filter_chains'] as { filters: Json[] }[] | undefined;
  const manager = chains?.[0]?.filters.find(
    (f) => f['name'] === 'envoy.filters.network.http_connection_manager',
  );
  if (manager === undefined)
    throw new Error('bench: the stack bootstrap has no ingress http_connection_manager');
  return manager['typed_config'] as Json;
}

/** Replaces the HTTP filters before the router with `filters` (none = plain proxy). */
function swapFilters(yaml: string, filters: Json[], routeEdit?: (route: Json) => void): string {
  const doc = parse(yaml) as Json;
  const manager = hcm(doc);
  const current = manager['http_filters'] as Json[];
  const router = current.find((f) => f['name'] === 'envoy.filters.http.router');
  if (router === undefined) throw new Error('bench: the stack bootstrap has no router filter');
  manager['http_filters'] = [...filters, router];
  if (routeEdit) {
    const hosts = (manager['route_config'] as { virtual_hosts: { routes: Json[] }[] })
      .virtual_hosts;
    for (const host of hosts) for (const route of host.routes) routeEdit(route);
  }
  return JSON.stringify(doc);
}

/** Drops named filters (e.g. ext_proc for the ext_authz-only configuration). */
export function withoutFilters(yaml: string, names: readonly string[]): string {
  const doc = parse(yaml) as Json;
  const manager = hcm(doc);
  manager['http_filters'] = (manager['http_filters'] as Json[]).filter(
    (f) => !names.includes(String(f['name'])),
  );
  return JSON.stringify(doc);
}

/** (a): the stack's listener and route with no filter but the router. */
export function baselineYaml(stack: string): string {
  return swapFilters(stack, []);
}

export interface NativeOptions {
  readonly issuer: string;
  readonly audience: string;
  readonly jwks: { keys: JWK[] };
  /** Claim value every token must carry in `groups` (the RBAC rule). */
  readonly group: string;
  readonly upstreamKey: string;
}

/**
 * (b): what Envoy can do in process. jwt_authn verifies against an inline JWKS and caches
 * verified tokens (as Tollgate does), rbac applies the same claim rule on the payload it puts in
 * metadata, local_ratelimit applies a limit that never bites. The caller's token is removed
 * and the upstream key set on the route, as Tollgate's response does.
 */
export function nativeYaml(stack: string, opts: NativeOptions): string {
  const enabled = {
    default_value: { numerator: 100, denominator: 'HUNDRED' },
    runtime_key: 'bench_rl',
  };
  const filters: Json[] = [
    {
      name: 'envoy.filters.http.jwt_authn',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
        providers: {
          bench: {
            issuer: opts.issuer,
            audiences: [opts.audience],
            local_jwks: { inline_string: JSON.stringify(opts.jwks) },
            forward: false,
            payload_in_metadata: 'jwt_payload',
            jwt_cache_config: { jwt_cache_size: 10000 },
            claim_to_headers: [
              { header_name: 'x-user-id', claim_name: 'sub' },
              { header_name: 'x-user-email', claim_name: 'email' },
              { header_name: 'x-tenant-id', claim_name: 'tenant_id' },
            ],
          },
        },
        rules: [{ match: { prefix: '/' }, requires: { provider_name: 'bench' } }],
      },
    },
    {
      name: 'envoy.filters.http.rbac',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
        rules: {
          action: 'ALLOW',
          policies: {
            'bench-group': {
              permissions: [{ any: true }],
              principals: [
                {
                  metadata: {
                    filter: 'envoy.filters.http.jwt_authn',
                    path: [{ key: 'jwt_payload' }, { key: 'groups' }],
                    value: { list_match: { one_of: { string_match: { exact: opts.group } } } },
                  },
                },
              ],
            },
          },
        },
      },
    },
    {
      name: 'envoy.filters.http.local_ratelimit',
      typed_config: {
        '@type':
          'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
        stat_prefix: 'bench_rl',
        token_bucket: {
          max_tokens: 1_000_000_000,
          tokens_per_fill: 1_000_000_000,
          fill_interval: '60s',
        },
        filter_enabled: enabled,
        filter_enforced: enabled,
        enable_x_ratelimit_headers: 'DRAFT_VERSION_03',
      },
    },
  ];
  return swapFilters(stack, filters, (route) => {
    const add = (route['request_headers_to_add'] as Json[] | undefined) ?? [];
    add.push({
      header: { key: 'authorization', value: `Bearer ${opts.upstreamKey}` },
      append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
    });
    route['request_headers_to_add'] = add;
  });
}
