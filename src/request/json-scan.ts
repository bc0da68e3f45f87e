/**
 * A linear scan of a JSON object's top level, without building values: where each member's
 * name and value sit in the text. Used to refuse ambiguous bodies (a duplicated member, which
 * parsers resolve differently) and to edit one member in place, byte for byte.
 */

/** One top-level member: its decoded name and the [start, end) of its value in the text. */
export interface Member {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

/** The members of a JSON object text in order, and where its closing brace sits. */
export interface ObjectLayout {
  readonly members: readonly Member[];
  readonly objectEnd: number;
}

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isWs(c: number): boolean {
  return c === SPACE || c === LF || c === CR || c === TAB;
}

function skipWs(text: string, i: number): number {
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  return i;
}

/**
 * Index just after the string literal starting at `i`, or -1. Jumps from quote to quote
 * (indexOf is native), so a multi-megabyte string (a base64 image) costs next to nothing: a
 * quote ends the string unless an odd run of backslashes escapes it.
 */
function stringEnd(text: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return -1;
    let slashes = 0;
    for (let k = q - 1; k > i && text.charCodeAt(k) === BACKSLASH; k--) slashes++;
    if (slashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/** The next `"`, `{`, `}`, `[` or `]` at or after `from`. */
const STRUCTURE = /["{}[\]]/g;

/** Index just after the JSON value starting at `i`, or -1. Linear; strings are skipped whole. */
function valueEnd(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === QUOTE) return stringEnd(text, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    STRUCTURE.lastIndex = i;
    for (;;) {
      const m = STRUCTURE.exec(text);
      if (m === null) return -1;
      const j = m.index;
      const d = text.charCodeAt(j);
      if (d === QUOTE) {
        const end = stringEnd(text, j);
        if (end < 0) return -1;
        STRUCTURE.lastIndex = end;
      } else if (d === 0x7b || d === 0x5b) depth++;
      else {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
  }
  let j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === 0x2c || d === 0x7d || d === 0x5d || isWs(d)) break;
    j++;
  }
  return j > i ? j : -1;
}

/**
 * The layout of `text` when it is a single JSON object (whitespace around it allowed), or
 * undefined. Values are delimited, not validated: call it on text JSON.parse accepted.
 */
export function scanObject(text: string): ObjectLayout | undefined {
  let i = skipWs(text, 0);
  if (text.charCodeAt(i) !== 0x7b) return undefined;
  i = skipWs(text, i + 1);
  const members: Member[] = [];
  let objectEnd = text[i] === '}' ? i : -1;
  while (objectEnd < 0) {
    if (text[i] !== '"') return undefined;
    const keyEnd = stringEnd(text, i);
    if (keyEnd < 0) return undefined;
    let name: unknown;
    try {
      name = JSON.parse(text.slice(i, keyEnd));
    } catch {
      return undefined;
    }
    if (typeof name !== 'string') return undefined;
    i = skipWs(text, keyEnd);
    if (text[i] !== ':') return undefined;
    const start = skipWs(text, i + 1);
    const end = valueEnd(text, start);
    if (end < 0) return undefined;
    members.push({ name, start, end });
    i = skipWs(text, end);
    if (text[i] === ',') i = skipWs(text, i + 1);
    else if (text[i] === '}') objectEnd = i;
    else return undefined;
  }
  return skipWs(text, objectEnd + 1) === text.length ? { members, objectEnd } : undefined;
}

/** The first top-level member name that occurs twice (after unescaping), or undefined. */
export function duplicateMember(layout: ObjectLayout): string | undefined {
  const seen = new Set<string>();
  for (const { name } of layout.members) {
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}
