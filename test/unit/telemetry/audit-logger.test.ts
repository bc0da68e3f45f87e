/**
 * The audit logger skips pino's wildcard redaction for speed; these tests pin that it writes
 * byte for byte what the fully redacting root logger writes for audit-shaped lines, and that
 * the fields keyed by outside names keep their censoring.
 */
import { expect } from 'chai';
import { auditLogger, CENSOR } from '../../../src/telemetry/logger.js';
import { logSink } from '../../helpers/unit.js';

/** The same line through the root logger and through the audit logger, `time` removed. */
function bothWays(
  line: Record<string, unknown>,
  msg: string,
  open: readonly string[],
): [string, string] {
  const root = logSink();
  const audit = logSink();
  root.logger.info(line, msg);
  auditLogger(audit.logger, open).info(line, msg);
  const strip = (raw: string[]): string => (raw[0] ?? '').replace(/"time":"[^"]*",/, '');
  return [strip(root.raw), strip(audit.raw)];
}

const DECISION = {
  audit: 'decision',
  requestId: 'req-1',
  provider: 'main-idp',
  subject: 'sub-1',
  user: 'ann@myorg.com',
  email: 'ann@myorg.com',
  tenant: 'acme',
  groups: ['eng', 'ml-team'],
  method: 'POST',
  path: '/v1/chat/completions',
  model: 'gpt-4o',
  decision: 'allow',
  status: 200,
  reason: 'allowed',
  rule: 'ml-team',
  claimsUsed: { groups: 'ml-team', 'org.unit': 'r&d "quoted" ünïcødé' },
  shadowDenied: undefined,
  latencyMs: 0.125,
  stages: { authenticate: 0.01, authorize: 0.002, admit: 0.05 },
};

describe('telemetry/logger: the audit logger', () => {
  it('writes a decision line exactly as the redacting root logger does', () => {
    const [root, audit] = bothWays(DECISION, 'allow', ['claimsUsed']);
    expect(audit).to.equal(root);
    expect(JSON.parse(audit)).to.deep.include({ model: 'gpt-4o', latencyMs: 0.125 });
  });

  it('keeps censoring claims whose names the root logger redacts one level down', () => {
    const line = {
      ...DECISION,
      claimsUsed: { token: 'abc', password: 'pw', groups: 'eng', secret: 's' },
    };
    const [root, audit] = bothWays(line, 'allow', ['claimsUsed']);
    expect(audit).to.equal(root);
    expect(JSON.parse(audit).claimsUsed).to.deep.equal({
      token: CENSOR,
      password: CENSOR,
      groups: 'eng',
      secret: CENSOR,
    });
  });

  it('writes a usage line (nested maps keyed by budget names) exactly as the root logger does', () => {
    const usage = {
      audit: 'usage',
      requestId: 'req-2',
      admission: 'a-1',
      groups: ['eng'],
      inputTokens: 12,
      outputTokens: 30,
      totalTokens: 42,
      source: 'provider',
      budgets: ['tenant:acme', 'user:ann'],
      remaining: { 'tenant:acme': 958, 'user:ann': 10 },
      settled: false,
      budgetKeys: ['tb:tenant:acme:2026-11'],
      error: 'store call exceeded 50 ms',
    };
    const [root, audit] = bothWays(usage, 'usage NOT settled', []);
    expect(audit).to.equal(root);
  });

  it('is a child: same level and destination as its parent', () => {
    const sink = logSink();
    const audit = auditLogger(sink.logger, []);
    audit.debug({ audit: 'decision' }, 'hidden at info');
    audit.info({ audit: 'decision' }, 'shown');
    expect(sink.lines.map((l) => l['msg'])).to.deep.equal(['shown']);
    expect(sink.lines[0]).to.include({ level: 'info', service: 'tollgate' });
  });
});
