/**
 * One canonical request (DESIGN 1.8): what the rules, the limits and the meter judge must be
 * what the upstream receives. Envoy normalises paths before Tollgate sees them (our bootstraps
 * set `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action:
 * REJECT_REQUEST`); this check makes the sidecar safe on its own behind an Envoy configured
 * otherwise, by refusing every path that is not already in the one plain form. It never
 * rewrites: ext_authz cannot change the path the upstream gets, so judging a repaired path
 * while the original travels on would be the very bypass it prevents.
 *
 * Model names are refused unless plain (no spaces, no control or non-ASCII characters);
 * their letter case is not refused but ignored by the rules (policy/match.ts).
 */

/** Characters allowed in a path segment: RFC 3986 `pchar` without percent-escapes and `;`. */
const SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,=:@]+$/;

/**
 * Why `path` (the request target without its query string) is not canonical, or undefined
 * when it is. Canonical: `/`, or `/`-separated non-empty segments of plain characters — no
 * percent-escapes (Envoy decodes escaped letters; an escaped `/`, `\` or NUL is refused), no
 * `.` or `..` segments, no doubled or trailing slash, no `;` parameters, no backslash.
 */
export function pathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'the path must start with "/"';
  if (path === '/') return undefined;
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '') return 'the path has an empty segment (a doubled or trailing "/")';
    if (segment === '.' || segment === '..') return 'the path has a "." or ".." segment';
    if (!SEGMENT.test(segment)) {
      if (segment.includes('%')) return 'the path has a percent-escape';
      return 'the path has a character outside the plain set';
    }
  }
  return undefined;
}

/** The longest model name accepted (OpenAI's ids, fine-tunes included, are far shorter). */
export const MAX_MODEL_LENGTH = 256;

/** Printable ASCII without space: what every OpenAI model id (fine-tunes included) is made of. */
const MODEL = /^[\x21-\x7e]+$/;

/**
 * Why a body's `model` value cannot be judged, or undefined when it can. A name with spaces,
 * control characters or non-ASCII letters could be read differently by the provider
 * (trimmed, folded, truncated) than by a glob here, so it is refused rather than guessed.
 */
export function modelProblem(model: unknown): string | undefined {
  if (typeof model !== 'string') return '"model" must be a string';
  if (model.length === 0) return '"model" is empty';
  if (model.length > MAX_MODEL_LENGTH)
    return `"model" is longer than ${MAX_MODEL_LENGTH} characters`;
  if (!MODEL.test(model)) return '"model" may hold only printable ASCII characters without spaces';
  return undefined;
}
