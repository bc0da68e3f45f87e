/**
 * GET of a small document (discovery, JWKS) over node:http / node:https.
 *
 * Why not the global fetch: its first use loads undici, about 10–15 MiB of resident memory
 * held for the life of the process, for a request made once per key refresh. This getter
 * keeps what the sidecar relied on from fetch: redirects followed (at most 20, as fetch
 * does; but never from https down to http), one deadline (the caller's signal) over
 * connect, headers and body, and it adds a limit on the body read as it arrives rather
 * than after the whole of it was buffered.
 * No connection is kept alive: a key refresh is minutes apart.
 */
import { get as getHttp, type IncomingMessage } from 'node:http';
import { get as getHttps } from 'node:https';

/** What the identity code reads of a response; the global fetch's Response fits it too. */
export interface DocumentResponse {
  readonly ok: boolean;
  readonly status: number;
  text(): Promise<string>;
}

export interface DocumentRequest {
  /** Aborts the whole exchange (connect, redirects, headers, body). */
  readonly signal: AbortSignal;
  readonly headers: Readonly<Record<string, string>>;
}

/** A document getter; tests inject their own, the sidecar uses `getDocument`. */
export type FetchFn = (url: string, init: DocumentRequest) => Promise<DocumentResponse>;

/** Largest identity-provider document accepted, in bytes. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/** The body passed MAX_DOCUMENT_BYTES; reading stopped there. */
export class DocumentTooLarge extends Error {
  constructor() {
    super('larger than 1 MiB');
    this.name = 'DocumentTooLarge';
  }
}

/** fetch's own limit (WHATWG Fetch, "HTTP-redirect fetch" step 5). */
const MAX_REDIRECTS = 20;
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** GET `url`, following redirects; a non-2xx answer resolves with an empty body. */
export const getDocument: FetchFn = (url, init) => get(new URL(url), init, 0);

function get(url: URL, init: DocumentRequest, redirects: number): Promise<DocumentResponse> {
  const client = url.protocol === 'https:' ? getHttps : url.protocol === 'http:' ? getHttp : undefined;
  if (client === undefined)
    return Promise.reject(new TypeError(`unsupported protocol ${url.protocol} (http: or https: only)`));
  return new Promise((resolve, reject) => {
    const { signal } = init;
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      outcome();
    };
    const fail = (err: unknown): void => {
      finish(() => reject(err instanceof Error ? err : new Error(String(err))));
      req.destroy();
    };
    const onAbort = (): void => fail(signal.reason);
    const req = client(url, { headers: init.headers, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (REDIRECTS.has(status) && location !== undefined) {
        res.destroy();
        if (redirects >= MAX_REDIRECTS) return fail(new Error(`more than ${MAX_REDIRECTS} redirects`));
        let next: URL;
        try {
          next = redirectTarget(url, location);
        } catch (err) {
          return fail(err);
        }
        return finish(() => resolve(get(next, init, redirects + 1)));
      }
      if (status < 200 || status > 299) {
        res.destroy();
        return finish(() => resolve({ ok: false, status, text: () => Promise.resolve('') }));
      }
      readBody(res, fail, (text) => finish(() => resolve({ ok: true, status, text: () => Promise.resolve(text) })));
    });
    req.once('error', fail);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Where a redirect from `from` leads. An https document is never fetched again over plain
 * http: whoever sits on the path could then hand us signing keys (fetch would follow it).
 */
export function redirectTarget(from: URL, location: string): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new Error(`redirect to an invalid location ${JSON.stringify(location.slice(0, 200))}`);
  }
  if (from.protocol === 'https:' && next.protocol !== 'https:')
    throw new Error(`redirect from https to ${next.protocol} refused (${next.origin})`);
  return next;
}

/** The body as UTF-8, refused as soon as it passes MAX_DOCUMENT_BYTES. */
function readBody(res: IncomingMessage, fail: (err: Error) => void, done: (text: string) => void): void {
  const declared = Number(res.headers['content-length']);
  if (declared > MAX_DOCUMENT_BYTES) return fail(new DocumentTooLarge());
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_DOCUMENT_BYTES) return fail(new DocumentTooLarge());
    chunks.push(chunk);
  });
  res.once('error', fail);
  res.once('end', () => done(Buffer.concat(chunks, size).toString('utf8')));
  // A connection cut before the end of the body: 'close' without 'end'.
  res.once('close', () => {
    if (!res.complete) fail(new Error('the connection closed before the end of the body'));
  });
}
