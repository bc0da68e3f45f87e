/**
 * Fetching identity-provider documents: the OIDC discovery document and the JWKS, each with a
 * deadline covering the whole exchange.
 */
import { describeValue } from './claims.js';
import { DocumentTooLarge, MAX_DOCUMENT_BYTES, type DocumentResponse, type FetchFn } from './http-document.js';

export type { FetchFn } from './http-document.js';

/**
 * GET a JSON document with a deadline covering connect, headers and body. Errors carry a
 * message fit for logs and for the jwks_unavailable denial.
 */
export async function fetchJson(
  fetchFn: FetchFn,
  url: string,
  timeoutMs: number,
  what: string,
): Promise<unknown> {
  let res: DocumentResponse;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    res = await fetchFn(url, { signal, headers: { accept: 'application/json' } });
  } catch (err) {
    if (err instanceof DocumentTooLarge)
      throw new Error(`${what} ${url} is larger than 1 MiB`, { cause: err });
    throw new Error(`${what} ${url} unreachable: ${reason(err, timeoutMs)}`, { cause: err });
  }
  if (!res.ok) throw new Error(`${what} ${url} answered HTTP ${res.status}`);
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw new Error(`${what} ${url} body could not be read: ${reason(err, timeoutMs)}`, {
      cause: err,
    });
  }
  if (text.length > MAX_DOCUMENT_BYTES) throw new Error(`${what} ${url} is larger than 1 MiB`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${what} ${url} is not valid JSON`);
  }
}

function reason(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `timed out after ${timeoutMs} ms`;
  }
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return err instanceof Error ? `${err.message}${cause}` : String(err);
}

/** The discovery document URL for an issuer (OIDC Discovery 1.0 §4). */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

/**
 * Find the JWKS URL of `issuer` through its discovery document. The document must name
 * exactly the configured issuer (OIDC Discovery §4.3), otherwise one issuer could publish
 * keys for another.
 */
export async function discoverJwksUri(
  fetchFn: FetchFn,
  issuer: string,
  timeoutMs: number,
): Promise<string> {
  const url = discoveryUrl(issuer);
  const doc = await fetchJson(fetchFn, url, timeoutMs, 'discovery document');
  if (typeof doc !== 'object' || doc === null)
    throw new Error(`discovery document ${url} is not a JSON object`);
  const { issuer: named, jwks_uri: jwksUri } = doc as { issuer?: unknown; jwks_uri?: unknown };
  if (named !== issuer) {
    throw new Error(
      `discovery document ${url} names issuer ${describeValue(named)}, expected ${describeValue(issuer)}`,
    );
  }
  if (typeof jwksUri !== 'string' || !URL.canParse(jwksUri)) {
    throw new Error(`discovery document ${url} has no valid jwks_uri`);
  }
  return jwksUri;
}
