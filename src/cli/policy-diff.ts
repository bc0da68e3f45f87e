/**
 * `tollgate diff OLD NEW (--cases CASES.yaml | --audit FILE) [--json]`: which decisions change
 * between two configurations. Every request is run through the explain engine (the live Check,
 * cli/explain.ts) once under each configuration, and the requests whose decision, status,
 * reason, deciding rule or shadow rule differ are printed with both sides.
 * Exit 0 when nothing changed, 1 when any decision changed, 2 for a usage error or input that
 * cannot be read (like diff(1)).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { errorText, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Explainer, type Caller, type Explanation, type ExplainRequest } from './explain.js';
import { modelBody } from './explain-command.js';
import { parseCases } from './policy-test.js';

/** The part of an explanation a diff compares. */
export interface DecisionSummary {
  readonly decision: 'allow' | 'deny' | 'answer';
  readonly status: number;
  readonly reason: string;
  readonly rule: string | null;
  readonly shadowDenied: string | null;
  /** What `/v1/models` would list (comma-separated); not in audit lines. */
  readonly models?: string | null;
  /** The identity headers the upstream would get (keys redacted), as JSON; not in audit lines. */
  readonly upstreamHeaders?: string;
}

/** One request to compare, named for the report. */
export interface DiffInput {
  readonly name: string;
  readonly request: ExplainRequest;
  /** The decision recorded for it (audit lines): checked against OLD to tell replays that differ. */
  readonly recorded?: DecisionSummary;
}

export interface DiffChange {
  readonly name: string;
  /** The fields that differ, in the order of DecisionSummary. */
  readonly fields: readonly (keyof DecisionSummary)[];
  readonly old: DecisionSummary;
  readonly new: DecisionSummary;
}

/** A recorded decision that the OLD configuration does not reproduce (counters, token errors...). */
export interface NotReproduced {
  readonly name: string;
  readonly recorded: DecisionSummary;
  readonly replayed: DecisionSummary;
}

export interface DiffReport {
  readonly compared: number;
  readonly changes: readonly DiffChange[];
  readonly notReproduced: readonly NotReproduced[];
  /** Input lines left out, with why (audit lines only). */
  readonly skipped: readonly string[];
}

/** What an audit line records too; a change also compares what the caller would see besides. */
const RECORDED = ['decision', 'status', 'reason', 'rule', 'shadowDenied'] as const;
const FIELDS = [...RECORDED, 'models', 'upstreamHeaders'] as const;

/**
 * The decision; for an allowed request also the identity headers the upstream gets, and for a
 * `/v1/models` request the list (compared once per such case, not on every case of the caller).
 */
export function summarize(e: Explanation, path?: string): DecisionSummary {
  const headers = Object.entries(e.upstreamHeaders).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    decision: e.decision,
    status: e.status,
    reason: e.reason,
    rule: e.rule ?? null,
    shadowDenied: e.shadowDenied?.rule ?? null,
    ...(path === '/v1/models' ? { models: e.models?.join(',') ?? null } : {}),
    ...(e.decision === 'allow' ? { upstreamHeaders: JSON.stringify(Object.fromEntries(headers)) } : {}),
  };
}

function differing(a: DecisionSummary, b: DecisionSummary, fields: readonly (keyof DecisionSummary)[] = FIELDS): (keyof DecisionSummary)[] {
  return fields.filter((f) => a[f] !== b[f]);
}

/** Runs every input under both configurations and reports what changed. */
export async function diffDecisions(oldConfig: Config, newConfig: Config, inputs: readonly DiffInput[], skipped: readonly string[] = []): Promise<DiffReport> {
  const before = new Explainer(oldConfig);
  const after = new Explainer(newConfig);
  const changes: DiffChange[] = [];
  const notReproduced: NotReproduced[] = [];
  for (const input of inputs) {
    const old = summarize(await before.explain(input.request), input.request.path);
    const now = summarize(await after.explain(input.request), input.request.path);
    const fields = differing(old, now);
    if (fields.length > 0) changes.push({ name: input.name, fields, old, new: now });
    if (input.recorded !== undefined && differing(input.recorded, old, RECORDED).length > 0) {
      notReproduced.push({ name: input.name, recorded: input.recorded, replayed: old });
    }
  }
  return { compared: inputs.length, changes, notReproduced, skipped };
}

/** The inputs of a cases file (the format of `tollgate test`; `expect` optional and ignored). */
export function casesInputs(text: string): DiffInput[] {
  return parseCases(text, { expectRequired: false }).map((c) => ({ name: c.name, request: c.request }));
}

function headline(s: DecisionSummary): string {
  const extra = [s.rule !== null ? `rule ${s.rule}` : undefined, s.shadowDenied !== null ? `shadow ${s.shadowDenied}` : undefined].filter((x) => x !== undefined);
  return `${s.decision.toUpperCase()} ${s.status} ${s.reason}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`;
}

export function formatDiff(report: DiffReport): string {
  const lines: string[] = [];
  for (const c of report.changes) {
    lines.push(`CHANGED  ${c.name}`);
    for (const f of c.fields) lines.push(`  ${f}: ${JSON.stringify(c.old[f] ?? null)} -> ${JSON.stringify(c.new[f] ?? null)}`);
    lines.push(`  old: ${headline(c.old)}`, `  new: ${headline(c.new)}`);
  }
  if (report.notReproduced.length > 0) {
    lines.push('', `${report.notReproduced.length} recorded decision(s) not reproduced by OLD (state or input the audit line does not hold):`);
    for (const n of report.notReproduced) lines.push(`  ${n.name}: recorded ${headline(n.recorded)}, replayed ${headline(n.replayed)}`);
  }
  if (report.skipped.length > 0) {
    lines.push('', `${report.skipped.length} line(s) skipped:`);
    for (const s of report.skipped) lines.push(`  ${s}`);
  }
  if (lines.length > 0) lines.push('');
  lines.push(`${report.compared} compared, ${report.changes.length} changed`);
  return `${lines.join('\n')}\n`;
}

interface Out {
  write(chunk: string): unknown;
}

const HELP = `usage: tollgate diff OLD NEW (--cases CASES.yaml | --audit FILE) [--json]
  --cases  requests in the cases format of \`tollgate test\` (expect is optional and ignored)
  --audit  recorded audit decision lines (JSON lines; other lines are skipped)
  --json   the report as JSON
exit 0: no decision changed; 1: some changed; 2: usage error or unreadable input
`;

export async function diffCommand(args: string[], stdout: Out, stderr: Out): Promise<number> {
  let parsed: { values: { cases?: string; audit?: string; json?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      options: { cases: { type: 'string' }, audit: { type: 'string' }, json: { type: 'boolean' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    stderr.write(`tollgate diff: ${errorText(err)}\n\n${HELP}`);
    return 2;
  }
  const { cases, audit, json } = parsed.values;
  const [oldFile, newFile, ...extra] = parsed.positionals;
  if (oldFile === undefined || newFile === undefined || extra.length > 0 || (cases === undefined) === (audit === undefined)) {
    stderr.write(`tollgate diff: needs OLD and NEW configuration files and one of --cases FILE or --audit FILE\n\n${HELP}`);
    return 2;
  }
  try {
    const oldConfig = await loadConfigFile(oldFile);
    const newConfig = await loadConfigFile(newFile);
    let report: DiffReport;
    if (cases !== undefined) {
      report = await diffDecisions(oldConfig, newConfig, casesInputs(await readFile(cases, 'utf8')));
    } else {
      const { inputs, skipped } = auditInputs(await readFile(audit ?? '', 'utf8'), oldConfig);
      if (inputs.length === 0) throw new Error(`${audit ?? ''}: no audit decision line (lines with "audit":"decision")`);
      report = await diffDecisions(oldConfig, newConfig, inputs, skipped);
    }
    stdout.write(json === true ? `${JSON.stringify(report, null, 2)}\n` : formatDiff(report));
    return report.changes.length > 0 ? 1 : 0;
  } catch (err) {
    stderr.write(`tollgate diff: ${errorText(err)}\n`);
    return 2;
  }
}

// ---- audit lines ---------------------------------------------------------------------------

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * The caller of an audit line, as claims under the line's provider's mapping: the mapped user,
 * groups and tenant go back under their claim names, with `sub`, `email` and the claims the
 * deciding rule used (`claimsUsed`). Claims the line does not carry cannot be reconstructed.
 */
function auditCaller(line: Record<string, unknown>, config: Config): Caller | string {
  const providerName = str(line['provider']);
  if (providerName === undefined) return { anonymous: true };
  const provider = config.authentication.find((p) => p.name === providerName);
  if (provider === undefined) return `provider ${JSON.stringify(providerName)} is not in OLD`;
  const claims: Record<string, unknown> = {};
  if (isMap(line['claimsUsed'])) Object.assign(claims, line['claimsUsed']);
  const email = str(line['email']);
  if (email !== undefined) claims['email'] = email;
  const subject = str(line['subject']);
  if (subject !== undefined) claims['sub'] = subject;
  const user = str(line['user']);
  if (user !== undefined) claims[provider.claims.user] = user;
  if (Array.isArray(line['groups'])) claims[provider.claims.groups] = line['groups'];
  const tenant = str(line['tenant']);
  if (tenant !== undefined) claims[provider.claims.tenant] = tenant;
  return { claims, provider: providerName };
}

function recordedOf(line: Record<string, unknown>): DecisionSummary | undefined {
  const { decision, status, reason } = line;
  if ((decision !== 'allow' && decision !== 'deny') || typeof status !== 'number' || typeof reason !== 'string') return undefined;
  return {
    decision,
    status,
    reason,
    rule: str(line['rule']) ?? null,
    shadowDenied: isMap(line['shadowDenied']) ? (str(line['shadowDenied']['rule']) ?? null) : null,
  };
}

/**
 * The requests of recorded audit decision lines (check/audit.ts). Needed: `method`, `path`,
 * `decision`, `status`, `reason`; used when present: `provider`, `subject`, `user`, `email`,
 * `groups`, `tenant`, `claimsUsed`, `model`, `rule`, `shadowDenied`, `requestId`. The body is
 * rebuilt as the smallest request of the path's kind for the line's `model`; the query string,
 * other headers and body fields, and the counters at the time are not in the line.
 */
export function auditInputs(text: string, oldConfig: Config): { inputs: DiffInput[]; skipped: string[] } {
  const inputs: DiffInput[] = [];
  const skipped: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const at = `line ${i + 1}`;
    if (raw.trim() === '') return;
    let line: unknown;
    try {
      line = JSON.parse(raw);
    } catch {
      skipped.push(`${at}: not JSON`);
      return;
    }
    if (!isMap(line) || line['audit'] !== 'decision') return; // other log lines: settlements, info
    if (line['decision'] === 'answer') return; // a whoami ask: answered, not judged; nothing to replay
    const method = str(line['method']);
    const path = str(line['path']);
    const recorded = recordedOf(line);
    if (method === undefined || path === undefined || recorded === undefined) {
      skipped.push(`${at}: a decision line needs method, path, decision, status and reason`);
      return;
    }
    const caller = auditCaller(line, oldConfig);
    if (typeof caller === 'string') {
      skipped.push(`${at}: ${caller}`);
      return;
    }
    const model = str(line['model']);
    const id = str(line['requestId']);
    inputs.push({
      name: `${at}${id !== undefined ? ` (${id})` : ''}: ${method} ${path}${model !== undefined ? ` ${model}` : ''}`,
      request: {
        caller,
        method,
        path,
        ...(model !== undefined && method !== 'GET' ? { body: modelBody(path, model) } : {}),
      },
      recorded,
    });
  });
  return { inputs, skipped };
}
