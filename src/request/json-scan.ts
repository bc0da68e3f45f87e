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

const WS = ' \t\r\n';

function skipWs(text: string, i: number): number {
  while (i < text.length && WS.includes(text[i] ?? '')) i++;
  return i;
}

/** Index just after the string literal starting at `i`, or -1. */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text[j];
    if (c === '\\') j++;
    else if (c === '"') return j + 1;
  }
  return -1;
}

/** Index just after the JSON value starting at `i`, or -1. Linear; strings are skipped whole. */
function valueEnd(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return stringEnd(text, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') {
        j = stringEnd(text, j) - 1;
        if (j < 0) return -1;
      } else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  let j = i;
  while (j < text.length && !',}] \t\r\n'.includes(text[j] ?? '')) j++;
  return j > i ? j : -1;
}

/**
 * The layout of `text` when it is a single JSON object (whitespace around it allowed), or
 * undefined. Values are delimited, not validated: call it on text JSON.parse accepted.
 */
export function scanObject(text: string): ObjectLayout | undefined {
  let i = skipWs(text, 0);
  if (text[i] !== '{') return undefined;
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
