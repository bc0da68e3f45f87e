/**
 * The requests sent through real Envoy to capture fixtures, one per case. Each case states
 * what must happen (the HTTP status, whether a Check and a Process stream take place), so a
 * capture that went wrong is refused rather than committed.
 */

export interface FixtureCase {
  /** File name under test/fixtures/envoy/ (without `.json`). */
  readonly name: string;
  readonly method: 'GET' | 'POST';
  /** Path and query as the client sends them. */
  readonly path: string;
  /** Send the caller's token as `authorization: Bearer …`. */
  readonly token: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  readonly expect: { readonly status: number; readonly check: boolean; readonly process: boolean };
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');
const JSON_HEADERS = { 'content-type': 'application/json' } as const;
const MESSAGES = [{ role: 'user', content: 'Say hello.' }];

/** The model the configuration's rule refuses (see capture-envoy-fixtures.ts). */
export const DENIED_MODEL = 'o3-mini';

export const CASES: readonly FixtureCase[] = [
  {
    name: 'chat-completion',
    method: 'POST',
    path: '/v1/chat/completions',
    token: true,
    // A spoofed identity header: Envoy's early header mutation must drop it before the Check.
    headers: { ...JSON_HEADERS, 'x-user-id': 'mallory' },
    body: json({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 64 }),
    expect: { status: 200, check: true, process: true },
  },
  {
    name: 'chat-completion-stream',
    method: 'POST',
    path: '/v1/chat/completions',
    token: true,
    // The dev upstream spaces its events out, so Envoy hands them over in several chunks.
    headers: {
      ...JSON_HEADERS,
      accept: 'text/event-stream',
      'x-dev-chunks': '3',
      'x-dev-chunk-delay-ms': '30',
    },
    // No stream_options: Tollgate asks for the request body to add include_usage.
    body: json({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true }),
    expect: { status: 200, check: true, process: true },
  },
  {
    name: 'chat-completion-denied-model',
    method: 'POST',
    path: '/v1/chat/completions',
    token: true,
    headers: JSON_HEADERS,
    body: json({ model: DENIED_MODEL, messages: MESSAGES }),
    expect: { status: 403, check: true, process: false },
  },
  {
    name: 'missing-token',
    method: 'POST',
    path: '/v1/chat/completions',
    token: false,
    headers: JSON_HEADERS,
    body: json({ model: 'gpt-4o-mini', messages: MESSAGES }),
    expect: { status: 401, check: true, process: false },
  },
  {
    name: 'models-list',
    method: 'GET',
    path: '/v1/models',
    token: true,
    expect: { status: 200, check: true, process: true },
  },
  {
    name: 'embeddings',
    method: 'POST',
    path: '/v1/embeddings',
    token: true,
    headers: JSON_HEADERS,
    body: json({ model: 'text-embedding-3-small', input: 'The quick brown fox.' }),
    expect: { status: 200, check: true, process: true },
  },
  {
    name: 'query-credential',
    method: 'POST',
    path: '/v1/chat/completions?api-version=2024-10-21&api_key=sk-client-leaked',
    token: true,
    headers: JSON_HEADERS,
    body: json({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 16 }),
    expect: { status: 200, check: true, process: true },
  },
  {
    name: 'invalid-utf8-body',
    method: 'POST',
    path: '/v1/chat/completions',
    token: true,
    headers: JSON_HEADERS,
    // 0xff can never occur in UTF-8; 0xc3 0x28 is a broken two-byte sequence.
    body: Buffer.concat([
      Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"', 'utf8'),
      Buffer.from([0xff, 0xc3, 0x28]),
      Buffer.from('"}]}', 'utf8'),
    ]),
    expect: { status: 400, check: true, process: false },
  },
];
