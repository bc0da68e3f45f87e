/**
 * Workers' expositions merged into the one `/metrics`: each request was counted by exactly one
 * worker, so counters and histograms add up; a few gauges describe one shared thing and do not.
 */
import { expect } from 'chai';
import { mergeExpositions } from '../../../src/telemetry/merge-metrics.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { metricValue } from '../../helpers/prometheus.js';

function worker(allowed: number, used: number, keys: number, service = 'w'): string {
  return `# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_name="${service}"} 1
# HELP tollgate_decisions_total ext_authz decisions
# TYPE tollgate_decisions_total counter
tollgate_decisions_total{result="allow",reason="allowed"} ${allowed}
# HELP tollgate_decision_duration Time to decide
# UNIT tollgate_decision_duration s
# TYPE tollgate_decision_duration histogram
tollgate_decision_duration_count{result="allow"} ${allowed}
tollgate_decision_duration_sum{result="allow"} 0.5
tollgate_decision_duration_bucket{result="allow",le="0.001"} ${allowed}
tollgate_decision_duration_bucket{result="allow",le="+Inf"} ${allowed}
# HELP tollgate_budget_used Tokens used
# TYPE tollgate_budget_used gauge
tollgate_budget_used{budget="team a"} ${used}
# HELP tollgate_budget_remaining Tokens left
# TYPE tollgate_budget_remaining gauge
tollgate_budget_remaining{budget="team a"} ${1000 - used}
# HELP tollgate_jwks_keys Keys
# TYPE tollgate_jwks_keys gauge
tollgate_jwks_keys{provider="corp"} ${keys}
# HELP tollgate_budget_reservations Reservations
# TYPE tollgate_budget_reservations gauge
tollgate_budget_reservations 2
`;
}

describe('telemetry/merge-metrics', () => {
  it('adds counters, histogram buckets, sums and counts across workers', () => {
    const text = mergeExpositions([worker(3, 10, 2), worker(4, 20, 2)]);
    expect(metricValue(text, 'tollgate_decisions_total', { result: 'allow', reason: 'allowed' })).to.equal(7);
    expect(metricValue(text, 'tollgate_decision_duration_count', { result: 'allow' })).to.equal(7);
    expect(metricValue(text, 'tollgate_decision_duration_sum', { result: 'allow' })).to.equal(1);
    expect(metricValue(text, 'tollgate_decision_duration_bucket', { result: 'allow', le: '+Inf' })).to.equal(7);
    expect(text).to.include('tollgate_decision_duration_bucket{result="allow",le="+Inf"} 7\n');
  });

  it('adds gauges that are per process (reservations held) and not those of one shared thing', () => {
    const text = mergeExpositions([worker(1, 10, 2), worker(1, 30, 0)]);
    expect(metricValue(text, 'tollgate_budget_reservations')).to.equal(4);
    // The same Redis budget read at two settlements: the later one used more.
    expect(metricValue(text, 'tollgate_budget_used', { budget: 'team a' })).to.equal(30);
    expect(metricValue(text, 'tollgate_budget_remaining', { budget: 'team a' })).to.equal(970);
    // A worker without keys is what operators must see.
    expect(metricValue(text, 'tollgate_jwks_keys', { provider: 'corp' })).to.equal(0);
  });

  it('writes each family header once and keeps one target_info (the first exposition’s)', () => {
    const text = mergeExpositions([worker(1, 1, 1, 'first'), worker(1, 1, 1, 'second')]);
    expect(text.match(/# TYPE tollgate_decisions_total counter/g)).to.have.length(1);
    expect(text.match(/# UNIT tollgate_decision_duration s/g)).to.have.length(1);
    expect(text.match(/^target_info/gm)).to.have.length(1);
    expect(text).to.include('target_info{service_name="first"} 1');
  });

  it('keeps series that only some workers have, in order of first appearance', () => {
    const a = '# TYPE x_total counter\nx_total{k="a"} 1\n';
    const b = '# TYPE x_total counter\nx_total{k="b"} 2\nx_total{k="a"} 5\n# TYPE y gauge\ny 3\n';
    expect(mergeExpositions([a, b])).to.equal('# TYPE x_total counter\nx_total{k="a"} 6\nx_total{k="b"} 2\n# TYPE y gauge\ny 3\n');
  });

  it('reads label values holding spaces and braces, and drops timestamps', () => {
    const a = '# TYPE m_total counter\nm_total{model="gpt {x} 4"} 1 1700000000000\n';
    expect(mergeExpositions([a, a])).to.equal('# TYPE m_total counter\nm_total{model="gpt {x} 4"} 2\n');
  });

  it('is the identity for one exposition of the real exporter', async () => {
    const m = new Metrics();
    m.recordReload('success');
    m.recordBudget('b', 10, 100);
    m.reservationOpened({ names: ['b'], reserved: [5] });
    const text = await m.text();
    expect(mergeExpositions([text])).to.equal(text.endsWith('\n') ? text.replace(/\n+$/, '\n') : `${text}\n`);
    expect(metricValue(mergeExpositions([text, text]), 'tollgate_config_reloads_total', { result: 'success' })).to.equal(2);
  });

  it('merges nothing into nothing', () => {
    expect(mergeExpositions([])).to.equal('');
    expect(mergeExpositions(['', '\n'])).to.equal('');
  });
});
