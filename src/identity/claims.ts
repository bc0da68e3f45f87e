/**
 * Claim lookup and header-safe rendering of claim values.
 *
 * Claim paths are written by operators in the config (`realm_access.roles`,
 * `"https://myorg.com/groups"`); values come from tokens and may be hostile, so everything
 * that leaves this module toward a header goes through `sanitizeHeaderValue`.
 */

/**
 * Split a claim path into segments: dots separate segments, and a segment wrapped in double
 * quotes may contain dots and slashes (`"https://myorg.com".groups` → [`https://myorg.com`,
 * `groups`]). Returns undefined for a path that cannot be parsed (empty segment, unterminated
 * quote, text glued to a closing quote), so config validation can report it.
 */
export function parseClaimPath(path: string): string[] | undefined {
  const segments: string[] = [];
  let i = 0;
  if (path.length === 0) return undefined;
  while (i <= path.length) {
    let segment: string;
    if (path[i] === '"') {
      const close = path.indexOf('"', i + 1);
      if (close === -1) return undefined;
      segment = path.slice(i + 1, close);
      i = close + 1;
      if (i < path.length && path[i] !== '.') return undefined;
    } else {
      const dot = path.indexOf('.', i);
      const end = dot === -1 ? path.length : dot;
      segment = path.slice(i, end);
      if (segment.includes('"')) return undefined;
      i = end;
    }
    if (segment.length === 0) return undefined;
    segments.push(segment);
    if (i >= path.length) break;
    i += 1; // skip the dot
    if (i === path.length) return undefined; // trailing dot
  }
  return segments;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Read a claim by path. An exact top-level key wins first, so Auth0-style namespaced claims
 * (`https://myorg.com/groups`) work unquoted too; otherwise the path is walked through nested
 * objects. Only own properties are followed (a path like `__proto__` finds nothing).
 */
export function getClaim(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  const segments = parseClaimPath(path);
  if (segments === undefined) return undefined;
  let current: unknown = claims;
  for (const segment of segments) {
    if (!isRecord(current) || !Object.hasOwn(current, segment)) return undefined;
    current = current[segment];
  }
  return current;
}

function scalarString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

/**
 * A claim value as a list of strings: a scalar becomes a one-element list, an array keeps its
 * scalar elements (nested objects and arrays are ignored), anything else is empty.
 */
export function claimStrings(value: unknown): string[] {
  if (Array.isArray(value)) {
    const out: string[] = [];
    for (const element of value) {
      const s = scalarString(element);
      if (s !== undefined) out.push(s);
    }
    return out;
  }
  const s = scalarString(value);
  return s === undefined ? [] : [s];
}

// Line-breaking characters become a space so words stay apart; every other control or
// invisible formatting character (NUL, DEL, C1 controls, zero-width and bidi overrides,
// lone surrogates) is dropped. NEL, LS and PS count as line breaks for some parsers.
const LINE_BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]/gu;
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}]/gu;

/** Cut `value` to at most `maxBytes` UTF-8 bytes without splitting a character. */
function capUtf8(value: string, maxBytes: number): string {
  if (Buffer.byteLength(value, 'utf8') <= maxBytes) return value;
  let bytes = 0;
  let out = '';
  for (const ch of value) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (bytes + size > maxBytes) break;
    bytes += size;
    out += ch;
  }
  return out;
}

/**
 * Make a token-supplied string safe as an HTTP header value.
 *
 * Decision: printable ASCII and printable non-ASCII Unicode are kept (names and e-mail
 * addresses are often non-ASCII; Envoy forwards them as UTF-8 obs-text). CR, LF, TAB and the
 * Unicode line separators become a space; NUL, DEL, other C0/C1 controls and invisible format
 * characters (zero-width, bidi overrides) are removed. The result is trimmed and capped at
 * `maxLength` UTF-8 bytes, never splitting a character.
 */
export function sanitizeHeaderValue(value: string, maxLength = 1024): string {
  const cleaned = value.replace(LINE_BREAKS, ' ').replace(INVISIBLE, '').trim();
  return capUtf8(cleaned, Math.max(0, maxLength)).trimEnd();
}

/**
 * Characters an identity header carries as they are: RFC 3986 unreserved and the sub-delims
 * and `:@/` that e-mail addresses, URLs and group paths use, except `,` (the list separator).
 * Every other character, `%` included, is percent-encoded as UTF-8.
 */
const PLAIN = /^[A-Za-z0-9\-._~!$&'()*+;=:@/]$/;
/** A whole value of plain characters only: it is its own encoding. */
const ALL_PLAIN = /^[A-Za-z0-9\-._~!$&'()*+;=:@/]*$/;

/**
 * One claim value as identity-header text: percent-encoded UTF-8 for every character outside
 * the plain set (see PLAIN). Unambiguous — a `,` inside a group name is `%2C`, never a
 * separator — and ASCII-only, so no header carries raw control or non-ASCII bytes; a consumer
 * splits on `,` and percent-decodes each element. Cut at `maxBytes` on a character boundary.
 */
export function encodeClaimValue(value: string, maxBytes = Number.MAX_SAFE_INTEGER): string {
  // The common case (ids, e-mail addresses, group names): the value itself, no copy. The
  // identity headers of a cached identity then share their strings with its claims.
  if (value.length <= maxBytes && ALL_PLAIN.test(value)) return value;
  let out = '';
  for (const ch of value) {
    // A lone surrogate has no UTF-8 form (encodeURIComponent would throw): U+FFFD stands in.
    const lone = ch.length === 1 && ch >= '\ud800' && ch <= '\udfff';
    const piece = PLAIN.test(ch) ? ch : encodeURIComponent(lone ? '\ufffd' : ch);
    if (out.length + piece.length > maxBytes) break;
    out += piece;
  }
  return out;
}

/**
 * Render a claim value for an identity header: scalars encoded by `encodeClaimValue`, lists
 * as their encoded elements joined with ",". Returns undefined when there is nothing to send
 * (claim absent, an object, an empty list or string), so the caller removes the header
 * instead of sending "".
 *
 * A list that does not fit in `maxLength` loses whole trailing elements, never part of one: a
 * cut group name could turn `admins-readonly` into `admins`.
 */
export function claimHeaderValue(value: unknown, maxLength = 1024): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) {
    const text = encodeClaimList(claimStrings(value), maxLength);
    return text === '' ? undefined : text;
  }
  const [single] = claimStrings(value);
  if (single === undefined) return undefined;
  const encoded = encodeClaimValue(single, maxLength);
  return encoded.length > 0 ? encoded : undefined;
}

/** Encoded elements joined with ",", whole elements only, at most `maxLength` bytes. */
export function encodeClaimList(values: readonly string[], maxLength = Number.MAX_SAFE_INTEGER): string {
  const parts: string[] = [];
  let size = 0;
  for (const element of values) {
    const encoded = encodeClaimValue(element);
    if (encoded.length === 0) continue;
    const added = encoded.length + (parts.length > 0 ? 1 : 0);
    if (size + added > maxLength) break;
    parts.push(encoded);
    size += added;
  }
  return parts.join(',');
}

/**
 * Quote a token-supplied value (kid, iss, alg) for a human message: sanitized, at most 80
 * bytes, in double quotes. Denial messages end up in `www-authenticate` and logs.
 */
export function describeValue(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  const clean = sanitizeHeaderValue(text, 80).replace(/["\\]/g, '');
  return `"${clean}"`;
}

/**
 * A claim as policy may trust it: `getClaim`, except that an `email` the IdP itself marks
 * unverified (`email_verified: false`, as Google and Keycloak send) reads as absent. Used for
 * the user mapping, rule matching and identity headers alike.
 */
export function trustedClaim(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (path === 'email') {
    const verified = claims['email_verified'];
    if (verified === false || verified === 'false') return undefined;
  }
  return getClaim(claims, path);
}
