/**
 * `tollgate test --config FILE CASES.yaml [--format text|tap|junit]`: policy cases, each a
 * request and what the live Check must decide for it, run through the explain engine
 * (cli/explain.ts). Exit 0 when every case passes, 1 when one fails or the cases file is
 * invalid, 2 for a usage error. The case format is documented in docs/policy-testing.md.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { errorText, loadConfigFile } from '../config/load.js';
import { Explainer, type Caller, type Explanation, type ExplainRequest } from './explain.js';
import { callerFrom } from './explain-command.js';

/** What a case expects; every key is optional and only the given ones are checked. */
export interface CaseExpectation {
  readonly decision?: 'allow' | 'deny' | 'answer';
  readonly status?: number;
  readonly reason?: string;
  readonly rule?: string;
  /** The shadow rule that would have denied; `null` for "none". */
  readonly shadowDenied?: string | null;
  /** Upstream headers (allow) or response headers (deny) that must have these values. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Exactly the models `/v1/models` lists, among the candidates. */
  readonly models?: readonly string[];
}

export interface PolicyCase {
  readonly name: string;
  readonly request: ExplainRequest;
  readonly expect: CaseExpectation;
}

export interface CaseResult {
  readonly name: string;
  readonly failures: readonly string[];
  readonly explanation: Explanation;
}

export class CasesError extends Error {}

const REQUEST_KEYS = new Set(['claims', 'token', 'insecureDecode', 'provider', 'method', 'path', 'model', 'body', 'headers']);
const EXPECT_KEYS = new Set(['decision', 'status', 'reason', 'rule', 'shadowDenied', 'headers', 'models']);

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownKeys(where: string, value: Record<string, unknown>, known: ReadonlySet<string>): void {
  const bad = Object.keys(value).filter((k) => !known.has(k));
  if (bad.length > 0) throw new CasesError(`${where}: unknown key ${bad.map((k) => JSON.stringify(k)).join(', ')}; known: ${[...known].join(', ')}`);
}

function stringMap(where: string, v: unknown): Record<string, string> {
  if (!isMap(v) || !Object.values(v).every((x) => typeof x === 'string')) throw new CasesError(`${where} must be a map of strings`);
  return v as Record<string, string>;
}

/** Parses and checks a cases file: `cases:` (or the top-level list) of {name, request, expect}. */
export function parseCases(text: string, opts: { readonly expectRequired?: boolean } = {}): PolicyCase[] {
  const expectRequired = opts.expectRequired ?? true;
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new CasesError(`not YAML: ${errorText(err)}`);
  }
  const list = isMap(doc) ? doc['cases'] : doc;
  if (!Array.isArray(list) || list.length === 0) throw new CasesError('expected a non-empty list under `cases:`');
  return list.map((raw, i): PolicyCase => {
    const at = `cases[${i}]`;
    if (!isMap(raw)) throw new CasesError(`${at} must be a map`);
    unknownKeys(at, raw, new Set(['name', 'request', 'expect']));
    const name = typeof raw['name'] === 'string' && raw['name'] !== '' ? raw['name'] : `case ${i + 1}`;
    const r = raw['request'];
    const e = raw['expect'];
    if (!isMap(r)) throw new CasesError(`${at}.request must be a map`);
    unknownKeys(`${at}.request`, r, REQUEST_KEYS);
    // `tollgate diff` reads the same files: there an expectation is optional (and not checked).
    if (e === undefined && !expectRequired) return { name, request: requestOf(`${at}.request`, r), expect: {} };
    if (!isMap(e) || Object.keys(e).length === 0) throw new CasesError(`${at}.expect must be a non-empty map`);
    unknownKeys(`${at}.expect`, e, EXPECT_KEYS);
    return { name, request: requestOf(`${at}.request`, r), expect: expectationOf(`${at}.expect`, e) };
  });
}

function requestOf(at: string, r: Record<string, unknown>): ExplainRequest {
  const str = (k: string): string | undefined => {
    const v = r[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new CasesError(`${at}.${k} must be a string`);
    return v;
  };
  if (r['claims'] !== undefined && !isMap(r['claims'])) throw new CasesError(`${at}.claims must be a map`);
  let caller: Caller;
  try {
    caller = callerFrom({
      ...(r['claims'] !== undefined ? { claims: JSON.stringify(r['claims']) } : {}),
      ...(str('token') !== undefined ? { token: str('token') } : {}),
      ...(str('provider') !== undefined ? { provider: str('provider') } : {}),
      'insecure-decode': r['insecureDecode'] === true,
    });
  } catch (err) {
    throw new CasesError(`${at}: ${errorText(err)}`);
  }
  const path = str('path') ?? '/v1/chat/completions';
  const model = str('model');
  const body = r['body'] === undefined ? undefined : typeof r['body'] === 'string' ? r['body'] : JSON.stringify(r['body']);
  if (model !== undefined && body !== undefined) throw new CasesError(`${at}: give model or body, not both`);
  return {
    caller,
    method: str('method') ?? (path.startsWith('/v1/models') ? 'GET' : 'POST'),
    path,
    ...(r['headers'] !== undefined ? { headers: stringMap(`${at}.headers`, r['headers']) } : {}),
    ...(body !== undefined ? { body } : model !== undefined ? { body: JSON.stringify({ model, messages: [{ role: 'user', content: 'test' }] }) } : {}),
  };
}

function expectationOf(at: string, e: Record<string, unknown>): CaseExpectation {
  const d = e['decision'];
  if (d !== undefined && d !== 'allow' && d !== 'deny' && d !== 'answer') throw new CasesError(`${at}.decision must be allow, deny or answer`);
  for (const k of ['reason', 'rule'] as const) {
    if (e[k] !== undefined && typeof e[k] !== 'string') throw new CasesError(`${at}.${k} must be a string`);
  }
  if (e['status'] !== undefined && !Number.isInteger(e['status'])) throw new CasesError(`${at}.status must be an integer`);
  const s = e['shadowDenied'];
  if (s !== undefined && s !== null && typeof s !== 'string') throw new CasesError(`${at}.shadowDenied must be a rule name or null`);
  const m = e['models'];
  if (m !== undefined && !(Array.isArray(m) && m.every((x) => typeof x === 'string'))) throw new CasesError(`${at}.models must be a list of strings`);
  return {
    ...(d !== undefined ? { decision: d } : {}),
    ...(e['status'] !== undefined ? { status: e['status'] as number } : {}),
    ...(e['reason'] !== undefined ? { reason: e['reason'] as string } : {}),
    ...(e['rule'] !== undefined ? { rule: e['rule'] as string } : {}),
    ...(s !== undefined ? { shadowDenied: s } : {}),
    ...(e['headers'] !== undefined ? { headers: stringMap(`${at}.headers`, e['headers']) } : {}),
    ...(m !== undefined ? { models: m } : {}),
  };
}

/** What differs between a case's expectation and its explanation (empty: it passes). */
export function compare(expect: CaseExpectation, e: Explanation): string[] {
  const out: string[] = [];
  const check = (what: string, want: unknown, got: unknown): void => {
    if (want !== undefined && want !== got) out.push(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got ?? null)}`);
  };
  check('decision', expect.decision, e.decision);
  check('status', expect.status, e.status);
  check('reason', expect.reason, e.reason);
  check('rule', expect.rule, e.rule);
  if (expect.shadowDenied !== undefined) check('shadowDenied', expect.shadowDenied, e.shadowDenied?.rule ?? null);
  const headers = e.response?.headers ?? e.upstreamHeaders;
  for (const [k, v] of Object.entries(expect.headers ?? {})) check(`header ${k}`, v, headers[k.toLowerCase()]);
  if (expect.models !== undefined) check('models', JSON.stringify(expect.models), JSON.stringify(e.models ?? []));
  return out;
}

export async function runCases(explainer: Explainer, cases: readonly PolicyCase[]): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    const explanation = await explainer.explain(c.request);
    results.push({ name: c.name, failures: compare(c.expect, explanation), explanation });
  }
  return results;
}

export function formatText(results: readonly CaseResult[]): string {
  const lines = results.map((r) =>
    r.failures.length === 0 ? `  ok    ${r.name}` : [`  FAIL  ${r.name}`, ...r.failures.map((f) => `          ${f}`)].join('\n'),
  );
  const failed = results.filter((r) => r.failures.length > 0).length;
  lines.push('', `${results.length - failed} passing, ${failed} failing`);
  return `${lines.join('\n')}\n`;
}

export function formatTap(results: readonly CaseResult[]): string {
  const lines = ['TAP version 13', `1..${results.length}`];
  results.forEach((r, i) => {
    const name = r.name.replace(/#/g, '\\#');
    if (r.failures.length === 0) lines.push(`ok ${i + 1} - ${name}`);
    else lines.push(`not ok ${i + 1} - ${name}`, '  ---', ...r.failures.map((f) => `  # ${f}`), '  ...');
  });
  return `${lines.join('\n')}\n`;
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function formatJunit(results: readonly CaseResult[], suite: string): string {
  const failed = results.filter((r) => r.failures.length > 0).length;
  const cases = results.map((r) =>
    r.failures.length === 0
      ? `    <testcase classname="${xml(suite)}" name="${xml(r.name)}"/>`
      : `    <testcase classname="${xml(suite)}" name="${xml(r.name)}">\n      <failure message="${xml(r.failures[0] ?? '')}">${xml(r.failures.join('\n'))}</failure>\n    </testcase>`,
  );
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites tests="${results.length}" failures="${failed}">`,
    `  <testsuite name="${xml(suite)}" tests="${results.length}" failures="${failed}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

interface Out {
  write(chunk: string): unknown;
}

const HELP = `usage: tollgate test --config FILE CASES.yaml [--format text|tap|junit]\n`;

export async function testCommand(args: string[], stdout: Out, stderr: Out): Promise<number> {
  let parsed: { values: { config?: string; format?: string }; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      options: { config: { type: 'string', short: 'c' }, format: { type: 'string' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    stderr.write(`tollgate test: ${errorText(err)}\n\n${HELP}`);
    return 2;
  }
  const { config } = parsed.values;
  const format = parsed.values.format ?? 'text';
  const [casesFile, ...extra] = parsed.positionals;
  if (config === undefined || casesFile === undefined || extra.length > 0 || !['text', 'tap', 'junit'].includes(format)) {
    stderr.write(`tollgate test: needs --config FILE, one CASES.yaml and --format text, tap or junit\n\n${HELP}`);
    return 2;
  }
  try {
    const cases = parseCases(await readFile(casesFile, 'utf8'));
    const results = await runCases(new Explainer(await loadConfigFile(config)), cases);
    stdout.write(format === 'tap' ? formatTap(results) : format === 'junit' ? formatJunit(results, casesFile) : formatText(results));
    return results.some((r) => r.failures.length > 0) ? 1 : 0;
  } catch (err) {
    stderr.write(`tollgate test: ${casesFile}: ${errorText(err)}\n`);
    return 1;
  }
}
