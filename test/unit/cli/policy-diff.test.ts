/** `tollgate diff`: two versions of the README's Okta policy, over cases and over real audit lines. */
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { Explainer, type ExplainRequest } from '../../../src/cli/explain.js';
import { auditInputs, casesInputs, diffCommand, diffDecisions, formatDiff } from '../../../src/cli/policy-diff.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import type { CounterReader } from '../../../src/store/store.js';

const DIR = 'examples/policy-tests';
const OLD = `${DIR}/okta.yaml`;
const NEW = `${DIR}/okta-next.yaml`;

async function load(file: string): Promise<Config> {
  return parseConfig(await readFile(file, 'utf8'), file);
}

function sink(): { lines: string[]; write(s: string): void } {
  const lines: string[] = [];
  return { lines, write: (s: string) => void lines.push(s) };
}

const support = { sub: 'ann', email: 'ann@acme.test', groups: ['support'], team: 'support' };
const SUPPORT_HEADERS = '{"authorization":"Bearer [redacted]","openai-project":"proj_support","x-tenant-id":"support","x-user-id":"ann"}';
const product = { sub: 'bob', groups: ['product-eng', 'beta'], team: 'product-eng' };

function chat(claims: Record<string, unknown> | undefined, model: string, id: string): ExplainRequest {
  return {
    caller: claims !== undefined ? { claims } : { anonymous: true },
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'x-request-id': id },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  };
}

/** Decision lines written by the live Check's audit writer (CheckFlow → check/audit.ts). */
async function recordAudit(config: Config, requests: readonly ExplainRequest[], counters?: CounterReader): Promise<string> {
  const out = sink();
  const explainer = new Explainer(config, { logger: createLogger({ destination: out }), ...(counters !== undefined ? { counters } : {}) });
  for (const r of requests) await explainer.explain(r);
  return out.lines.join('');
}

describe('cli/policy-diff', () => {
  let oldConfig: Config;
  let newConfig: Config;
  before(async () => {
    oldConfig = await load(OLD);
    newConfig = await load(NEW);
  });

  describe('over cases', () => {
    it('names the cases whose decision changes, with both sides', async () => {
      const inputs = casesInputs(await readFile(`${DIR}/okta.cases.yaml`, 'utf8'));
      const report = await diffDecisions(oldConfig, newConfig, inputs);
      expect(report.compared).to.equal(inputs.length);
      expect(report.changes).to.deep.equal([
        {
          name: 'support gets model_not_allowed for a larger model',
          fields: ['decision', 'status', 'reason', 'rule', 'upstreamHeaders'],
          old: { decision: 'deny', status: 403, reason: 'model_not_allowed', rule: 'other-models', shadowDenied: null },
          new: { decision: 'allow', status: 200, reason: 'allowed', rule: 'support-small-chat', shadowDenied: null, upstreamHeaders: SUPPORT_HEADERS },
        },
        {
          name: 'product engineers may use gpt-4.1, recorded by the trial rule',
          fields: ['decision', 'status', 'reason', 'rule', 'shadowDenied', 'upstreamHeaders'],
          old: {
            decision: 'allow',
            status: 200,
            reason: 'allowed',
            rule: 'product-eng-models',
            shadowDenied: 'trial-no-gpt41-for-product',
            upstreamHeaders: '{"authorization":"Bearer [redacted]","openai-project":"proj_product","x-tenant-id":"product-eng","x-user-id":"bob"}',
          },
          new: { decision: 'deny', status: 403, reason: 'model_not_allowed', rule: 'trial-no-gpt41-for-product', shadowDenied: null },
        },
        // The model list is compared on /v1/models cases: gpt-4o is now listed for support.
        {
          name: 'support lists only the small models',
          fields: ['models'],
          old: { decision: 'allow', status: 200, reason: 'allowed', rule: 'teams-may-list-models', shadowDenied: null, models: 'gpt-4o-mini', upstreamHeaders: SUPPORT_HEADERS },
          new: {
            decision: 'allow',
            status: 200,
            reason: 'allowed',
            rule: 'teams-may-list-models',
            shadowDenied: null,
            models: 'gpt-4o,gpt-4o-mini',
            upstreamHeaders: SUPPORT_HEADERS,
          },
        },
      ]);
      const text = formatDiff(report);
      expect(text).to.include('CHANGED  support gets model_not_allowed for a larger model\n  decision: "deny" -> "allow"');
      expect(text).to.include('  old: ALLOW 200 allowed (rule product-eng-models, shadow trial-no-gpt41-for-product)\n');
      expect(text).to.include('CHANGED  support lists only the small models\n  models: "gpt-4o-mini" -> "gpt-4o,gpt-4o-mini"');
      expect(text).to.match(/9 compared, 3 changed\n$/);
    });

    it('the same configuration on both sides changes nothing', async () => {
      const inputs = casesInputs(await readFile(`${DIR}/okta.cases.yaml`, 'utf8'));
      const report = await diffDecisions(oldConfig, oldConfig, inputs);
      expect(report.changes).to.deep.equal([]);
      expect(formatDiff(report)).to.equal('9 compared, 0 changed\n');
    });

    it('cases need no expectation for a diff, but tollgate test still does', () => {
      const inputs = casesInputs('- name: bare\n  request: { claims: { sub: ann }, model: gpt-4o }\n');
      expect(inputs.map((i) => i.name)).to.deep.equal(['bare']);
      expect(() => casesInputs('- request: { pth: x }\n')).to.throw(/unknown key "pth"/);
    });
  });

  describe('over audit lines', () => {
    it('replays the decision lines the audit writer wrote', async () => {
      const audit = await recordAudit(oldConfig, [
        chat(support, 'gpt-4o', 'r1'),
        chat(product, 'gpt-4.1', 'r2'),
        chat(support, 'gpt-4o-mini', 'r3'),
        chat(undefined, 'gpt-4o-mini', 'r4'),
        { caller: { claims: support }, method: 'GET', path: '/v1/models', headers: { 'x-request-id': 'r5' } },
        // A whoami ask is answered, not judged: its line is no decision to replay.
        { caller: { claims: support }, method: 'GET', path: '/v1/tollgate/whoami', headers: { 'x-request-id': 'r6' } },
      ]);
      expect(audit).to.include('"decision":"answer"');
      const text = `${audit}not json\n{"level":"info","msg":"listening"}\n`;
      const { inputs, skipped } = auditInputs(text, oldConfig);
      expect(inputs).to.have.length(5);
      expect(skipped).to.deep.equal(['line 7: not JSON']);
      const report = await diffDecisions(oldConfig, newConfig, inputs, skipped);
      expect(report.notReproduced).to.deep.equal([]);
      expect(report.changes.map((c) => [c.name, c.old.reason, c.new.reason])).to.deep.equal([
        ['line 1 (r1): POST /v1/chat/completions gpt-4o', 'model_not_allowed', 'allowed'],
        ['line 2 (r2): POST /v1/chat/completions gpt-4.1', 'allowed', 'model_not_allowed'],
        ['line 5 (r5): GET /v1/models', 'allowed', 'allowed'],
      ]);
      expect(report.changes[2]?.fields).to.deep.equal(['models']);
    });

    it('rebuilds the caller from the mapped identity fields (the groups are all kept)', async () => {
      const audit = await recordAudit(oldConfig, [chat(product, 'gpt-4o', 'r1')]);
      const [input] = auditInputs(audit, oldConfig).inputs;
      expect(input?.request.caller).to.deep.equal({
        claims: { groups: ['product-eng', 'beta'], sub: 'bob', team: 'product-eng' },
        provider: 'okta',
      });
    });

    it('tells the recorded decisions that OLD does not reproduce (counters are not in the line)', async () => {
      const full: CounterReader = {
        readWindow: () => Promise.resolve({ count: 1000 }),
        readBudget: () => Promise.resolve({ used: 0, reserved: 0 }),
      };
      const audit = await recordAudit(oldConfig, [chat(support, 'gpt-4o-mini', 'r1')], full);
      expect(audit).to.include('"reason":"rate_limited"');
      const report = await diffDecisions(oldConfig, newConfig, auditInputs(audit, oldConfig).inputs);
      expect(report.changes).to.deep.equal([]);
      expect(report.notReproduced.map((n) => [n.recorded.reason, n.replayed.reason])).to.deep.equal([['rate_limited', 'allowed']]);
      expect(formatDiff(report)).to.include('1 recorded decision(s) not reproduced by OLD');
    });

    it('skips decision lines it cannot replay, saying why', () => {
      const { inputs, skipped } = auditInputs(
        [
          '{"audit":"decision","method":"POST","decision":"allow","status":200,"reason":"allowed"}',
          '{"audit":"decision","provider":"gone","method":"POST","path":"/v1/chat/completions","decision":"allow","status":200,"reason":"allowed"}',
        ].join('\n'),
        oldConfig,
      );
      expect(inputs).to.deep.equal([]);
      expect(skipped).to.deep.equal([
        'line 1: a decision line needs method, path, decision, status and reason',
        'line 2: provider "gone" is not in OLD',
      ]);
    });
  });

  describe('the command', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tollgate-diff-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
      const out = sink();
      const err = sink();
      const code = await diffCommand(args, out, err);
      return { code, out: out.lines.join(''), err: err.lines.join('') };
    }

    it('exits 1 when a decision changes, 0 when none does; --json', async () => {
      const cases = `${DIR}/okta.cases.yaml`;
      const changed = await run(OLD, NEW, '--cases', cases, '--json');
      expect(changed.code).to.equal(1);
      const report = JSON.parse(changed.out) as { compared: number; changes: { name: string }[] };
      expect(report.compared).to.equal(9);
      expect(report.changes).to.have.length(3);
      const same = await run(OLD, OLD, '--cases', cases);
      expect(same).to.deep.equal({ code: 0, out: '9 compared, 0 changed\n', err: '' });
    });

    it('reads an audit file', async () => {
      const file = join(dir, 'audit.log');
      await writeFile(file, await recordAudit(oldConfig, [chat(support, 'gpt-4o', 'r1')]));
      const r = await run(OLD, NEW, '--audit', file);
      expect(r.code).to.equal(1);
      expect(r.out).to.include('CHANGED  line 1 (r1): POST /v1/chat/completions gpt-4o');
      const empty = join(dir, 'empty.log');
      await writeFile(empty, '{"msg":"hello"}\n');
      const none = await run(OLD, NEW, '--audit', empty);
      expect(none.code).to.equal(2);
      expect(none.err).to.match(/no audit decision line/);
    });

    it('usage errors exit 2', async () => {
      expect((await run(OLD, NEW)).code).to.equal(2);
      expect((await run(OLD, '--cases', 'x')).code).to.equal(2);
      expect((await run(OLD, NEW, '--cases', 'x', '--audit', 'y')).code).to.equal(2);
      expect((await run(OLD, NEW, '--bogus')).code).to.equal(2);
      const missing = await run(OLD, join(dir, 'nope.yaml'), '--cases', `${DIR}/okta.cases.yaml`);
      expect(missing.code).to.equal(2);
      expect(missing.err).to.match(/nope\.yaml/);
    });
  });
});
