/**
 * Readers over the parsed YAML tree. Every value is read through a Cursor that knows its dotted
 * path and 1-based line, so each problem can point at the exact place in the file. Readers
 * record a problem and return `undefined` for anything they refuse; they never throw. A caller
 * may substitute a default for `undefined` because, once any problem is recorded, the whole
 * result is discarded and a ConfigError is raised instead.
 */
import { isAlias, isMap, isScalar, isSeq } from 'yaml';
import type { Document, LineCounter, Node } from 'yaml';
import type { ConfigProblem } from './problems.js';
import { suggestion } from './validate-suggest.js';

export interface Ctx {
  readonly problems: ConfigProblem[];
  readonly lc: LineCounter;
  readonly doc: Document;
}

/** A value in the document together with where it lives. `node === null` means an empty value. */
export interface Cursor {
  readonly ctx: Ctx;
  readonly node: Node | null;
  readonly path: string;
  readonly line: number | undefined;
}

export function report(
  cur: Pick<Cursor, 'ctx' | 'path' | 'line'>,
  message: string,
  line = cur.line,
): void {
  cur.ctx.problems.push(
    line === undefined ? { path: cur.path, message } : { path: cur.path, message, line },
  );
}

export function lineOf(ctx: Ctx, node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] } | null)?.range;
  const start = range?.[0];
  return start === undefined ? undefined : ctx.lc.linePos(start).line;
}

const PLAIN_KEY = /^[A-Za-z_$][\w$-]*$/;

export function keyPath(parent: string, key: string): string {
  if (PLAIN_KEY.test(key)) return parent === '' ? key : `${parent}.${key}`;
  return `${parent}[${JSON.stringify(key)}]`;
}

/** Builds a cursor, following an alias to its anchor while keeping the alias's own line. */
export function cursor(ctx: Ctx, node: unknown, path: string, fallbackLine?: number): Cursor {
  const line = lineOf(ctx, node) ?? fallbackLine;
  if (isAlias(node)) {
    const target = node.resolve(ctx.doc);
    if (target === undefined) {
      report({ ctx, path, line }, `unknown alias \`*${node.source}\``);
      return { ctx, node: null, path, line };
    }
    return { ctx, node: target, path, line };
  }
  if (node === null || node === undefined) return { ctx, node: null, path, line };
  return { ctx, node: node as Node, path, line };
}

export function isNull(cur: Cursor): boolean {
  return cur.node === null || (isScalar(cur.node) && cur.node.value === null);
}

export function describe(cur: Cursor): string {
  const node = cur.node;
  if (node === null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'nothing';
    if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
    if (typeof v === 'number' || typeof v === 'bigint') return `the number ${String(v)}`;
    if (typeof v === 'boolean') return `the boolean ${String(v)}`;
    return 'an unsupported value';
  }
  return 'an unsupported value';
}

export type Fields = ReadonlyMap<string, Cursor>;

/**
 * Reads a mapping. With `known`, any other key is reported (with a near-miss suggestion). An
 * empty value is accepted as an empty mapping only when `nullable` is set.
 */
export function readMap(
  cur: Cursor,
  known?: readonly string[],
  nullable = false,
): Fields | undefined {
  if (nullable && isNull(cur)) return new Map();
  if (!isMap(cur.node)) {
    report(cur, `expected a mapping, got ${describe(cur)}`);
    return undefined;
  }
  const out = new Map<string, Cursor>();
  for (const pair of cur.node.items) {
    const keyLine = lineOf(cur.ctx, pair.key) ?? cur.line;
    const key = mapKey(cur, pair.key, keyLine);
    if (key === undefined) continue;
    const path = keyPath(cur.path, key);
    if (known !== undefined && !known.includes(key)) {
      const near = suggestion(key, known);
      const hint =
        near !== undefined
          ? `; did you mean \`${near}\`?`
          : ` (expected one of: ${known.join(', ')})`;
      report({ ctx: cur.ctx, path, line: keyLine }, `unknown key \`${key}\`${hint}`);
      continue;
    }
    out.set(key, cursor(cur.ctx, pair.value, path, keyLine));
  }
  return out;
}

function mapKey(parent: Cursor, key: unknown, line: number | undefined): string | undefined {
  const k = cursor(parent.ctx, key, parent.path, line);
  if (isScalar(k.node)) {
    const v = k.node.value;
    // Numeric keys (a tenant called 2024) keep the text the operator wrote, not the parsed number.
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' || typeof v === 'bigint') return k.node.source ?? String(v);
  }
  report(
    { ctx: parent.ctx, path: parent.path, line },
    `keys must be non-empty strings, got ${describe(k)}`,
  );
  return undefined;
}

/** Reports a missing required key (at the key's own path, on the parent's line). */
export function required(parent: Cursor, fields: Fields, key: string): Cursor | undefined {
  const cur = fields.get(key);
  if (cur === undefined)
    report({ ctx: parent.ctx, path: keyPath(parent.path, key), line: parent.line }, 'is required');
  return cur;
}

export function readList(cur: Cursor, nullable = false): Cursor[] | undefined {
  if (nullable && isNull(cur)) return [];
  if (!isSeq(cur.node)) {
    report(cur, `expected a list, got ${describe(cur)}`);
    return undefined;
  }
  return cur.node.items.map((item, i) => cursor(cur.ctx, item, `${cur.path}[${i}]`, cur.line));
}

function scalarValue(cur: Cursor): unknown {
  return isScalar(cur.node) ? cur.node.value : undefined;
}

export function readString(
  cur: Cursor | undefined,
  opts: { allowEmpty?: boolean } = {},
): string | undefined {
  if (cur === undefined) return undefined;
  const v = scalarValue(cur);
  if (typeof v !== 'string') {
    const hint =
      typeof v === 'number' || typeof v === 'boolean' ? ' (quote it to make it a string)' : '';
    report(cur, `expected a string, got ${describe(cur)}${hint}`);
    return undefined;
  }
  if (!opts.allowEmpty && v.trim() === '') {
    report(cur, 'must not be empty');
    return undefined;
  }
  return v;
}

export function readInt(cur: Cursor | undefined, min: number, max: number): number | undefined {
  if (cur === undefined) return undefined;
  const v = scalarValue(cur);
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    report(cur, `expected an integer, got ${describe(cur)}`);
    return undefined;
  }
  if (v < min || v > max) {
    report(
      cur,
      max === Number.MAX_SAFE_INTEGER
        ? `must be at least ${min}, got ${v}`
        : `must be between ${min} and ${max}, got ${v}`,
    );
    return undefined;
  }
  return v;
}

export function readEnum<T extends string>(
  cur: Cursor | undefined,
  values: readonly T[],
): T | undefined {
  if (cur === undefined) return undefined;
  const v = scalarValue(cur);
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  const near = typeof v === 'string' ? suggestion(v, values) : undefined;
  const hint = near !== undefined ? `; did you mean \`${near}\`?` : '';
  report(cur, `expected one of ${values.join(' | ')}, got ${describe(cur)}${hint}`);
  return undefined;
}

/** A string or a list of strings, normalized to a non-empty list. */
export function readStrings(cur: Cursor | undefined): string[] | undefined {
  if (cur === undefined) return undefined;
  if (isScalar(cur.node) && cur.node.value !== null) {
    const one = readString(cur);
    return one === undefined ? undefined : [one];
  }
  if (!isSeq(cur.node)) {
    report(cur, `expected a string or a list of strings, got ${describe(cur)}`);
    return undefined;
  }
  const items = readList(cur);
  if (items === undefined) return undefined;
  if (items.length === 0) {
    report(cur, 'must not be an empty list (it would never match)');
    return undefined;
  }
  const out: string[] = [];
  let ok = true;
  for (const item of items) {
    const s = readString(item);
    if (s === undefined) ok = false;
    else out.push(s);
  }
  return ok ? out : undefined;
}

/** Reports every value that occurs more than once under `what`. */
export function checkUnique(
  entries: readonly { value: string | undefined; cur: Cursor }[],
  what: string,
  label: (value: string) => string = (v) => JSON.stringify(v),
): void {
  const seen = new Map<string, Cursor>();
  for (const { value, cur } of entries) {
    if (value === undefined) continue;
    const first = seen.get(value);
    if (first === undefined) seen.set(value, cur);
    else
      report(
        cur,
        `duplicate ${what} ${label(value)} (first at ${first.path}${first.line !== undefined ? `, line ${first.line}` : ''})`,
      );
  }
}

export function readHttpUrl(cur: Cursor | undefined): string | undefined {
  const s = readString(cur);
  if (s === undefined || cur === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    report(cur, `expected an http(s) URL, got ${JSON.stringify(s)}`);
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    report(cur, `expected an http(s) URL, got scheme ${JSON.stringify(url.protocol)}`);
    return undefined;
  }
  return s;
}

/** Assigns an own property even for a key like `__proto__`, which plain assignment would treat as the prototype. */
export function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

export function readBoolean(cur: Cursor | undefined): boolean | undefined {
  if (cur === undefined) return undefined;
  const v = isScalar(cur.node) ? cur.node.value : undefined;
  if (typeof v !== 'boolean') {
    report(cur, `expected true or false, got ${describe(cur)}`);
    return undefined;
  }
  return v;
}

/**
 * A non-negative decimal with at most `places` decimals, as the integer `value × 10^places`,
 * read from the text the operator wrote (`2.50`, `"0.075"`), so no float ever rounds it.
 */
export function readDecimal(cur: Cursor | undefined, places: number, max: number): number | undefined {
  if (cur === undefined) return undefined;
  const node = cur.node;
  const v = isScalar(node) ? node.value : undefined;
  const text = typeof v === 'number' ? (isScalar(node) ? node.source : undefined) ?? String(v) : v;
  const m = typeof text === 'string' ? /^(\d{1,15})(?:\.(\d+))?$/.exec(text.trim()) : null;
  if (m === null) {
    report(cur, `expected a decimal number such as 2.50, got ${describe(cur)}`);
    return undefined;
  }
  const [, whole = '', frac = ''] = m;
  if (frac.replace(/0+$/, '').length > places) {
    report(cur, `has more than ${places} decimal places: ${text as string}`);
    return undefined;
  }
  const value = Number(whole) * 10 ** places + Number(frac.padEnd(places, '0').slice(0, places) || '0');
  if (!Number.isSafeInteger(value) || value > max) {
    report(cur, `is too large: ${text as string} (at most ${max / 10 ** places})`);
    return undefined;
  }
  return value;
}
