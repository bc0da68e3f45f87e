/** `tollgate shadow`: would-be denials per shadow rule, from the exposition the real Metrics write. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { ShadowDenial } from '../../../src/domain/decision.js';
import { deny } from '../../../src/domain/denials.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { formatShadowTable, metricsUrl, parseSample, shadowCommand, shadowReport } from '../../../src/cli/shadow.js';
import { identity } from '../telemetry/helpers.js';

async function scrape(metrics: Metrics): Promise<string> {
  const { resourceMetrics } = await metrics.exporter.collect();
  return new PrometheusSerializer(undefined, false).serialize(resourceMetrics);
}

/** Allowed decisions, `shadow` of them with these shadow denials, and one denial. */
async function exposition(shadow: readonly ShadowDenial[], plainAllows: number): Promise<string> {
  const m = new Metrics();
  const allow = { identity: identity(), setHeaders: {}, removeHeaders: [], responseHeaders: {}, metadata: {} };
  for (const s of shadow) m.recordDecision({ allow: { ...allow, shadowDenied: s } }, 0.01);
  for (let i = 0; i < plainAllows; i++) m.recordDecision({ allow }, 0.01);
  m.recordDecision({ deny: deny('access_denied', 'no') }, 0.01);
  return scrape(m);
}

function sink(): { text: string; write(s: string): void } {
  return {
    text: '',
    write(s: string) {
      this.text += s;
    },
  };
}

describe('cli/shadow', () => {
  it('counts would-be denials per rule and reason, as a share of the allowed decisions', async () => {
    const text = await exposition(
      [
        { rule: 'trial-no-gpt41', reason: 'model_not_allowed' },
        { rule: 'trial-no-gpt41', reason: 'model_not_allowed' },
        { rule: 'trial-no-gpt41', reason: 'model_not_allowed' },
        { rule: 'block-contractors', reason: 'access_denied' },
      ],
      4,
    );
    const report = shadowReport(text);
    expect(report).to.deep.equal({
      allowed: 8,
      rules: [
        { rule: 'trial-no-gpt41', reason: 'model_not_allowed', wouldDeny: 3 },
        { rule: 'block-contractors', reason: 'access_denied', wouldDeny: 1 },
      ],
    });
    expect(formatShadowTable(report)).to.equal(
      [
        'RULE               REASON             WOULD DENY  OF ALLOWED',
        'trial-no-gpt41     model_not_allowed           3       37.5%',
        'block-contractors  access_denied               1       12.5%',
        '8 allowed decisions since the sidecar started',
        '',
      ].join('\n'),
    );
  });

  it('says when nothing was recorded', async () => {
    const report = shadowReport(await exposition([], 2));
    expect(formatShadowTable(report)).to.equal('no shadow denials recorded (2 allowed decisions)\n');
  });

  it('reads label values with escapes', () => {
    expect(parseSample('tollgate_policy_shadow_denials_total{rule="a \\"b\\"",reason="x"} 2')).to.deep.equal({
      name: 'tollgate_policy_shadow_denials_total',
      labels: { rule: 'a "b"', reason: 'x' },
      value: 2,
    });
    expect(parseSample('up 1')).to.deep.equal({ name: 'up', labels: {}, value: 1 });
    expect(parseSample('garbage')).to.equal(undefined);
    expect(metricsUrl('http://127.0.0.1:9464').href).to.equal('http://127.0.0.1:9464/metrics');
    expect(metricsUrl('http://127.0.0.1:9464/metrics').href).to.equal('http://127.0.0.1:9464/metrics');
  });

  describe('the command', () => {
    let server: Server;
    let body = '';
    let status = 200;
    let base = '';
    before(async () => {
      server = createServer((_req, res) => {
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(body);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('prints the table, or JSON', async () => {
      body = await exposition([{ rule: 'r1', reason: 'access_denied' }], 1);
      status = 200;
      const out = sink();
      expect(await shadowCommand(['--url', base], out, sink())).to.equal(0);
      expect(out.text).to.match(/^RULE +REASON +WOULD DENY +OF ALLOWED\nr1 +access_denied +1 +50\.0%\n/);
      const json = sink();
      expect(await shadowCommand(['--url', `${base}/metrics`, '--json'], json, sink())).to.equal(0);
      expect(JSON.parse(json.text)).to.deep.equal({ allowed: 2, rules: [{ rule: 'r1', reason: 'access_denied', wouldDeny: 1 }] });
    });

    it('fails clearly on a wrong URL, a failing or a foreign endpoint', async () => {
      const err = sink();
      expect(await shadowCommand(['--url', 'not a url'], sink(), err)).to.equal(2);
      expect(await shadowCommand(['--bogus'], sink(), sink())).to.equal(2);
      status = 500;
      const failing = sink();
      expect(await shadowCommand(['--url', base], sink(), failing)).to.equal(1);
      expect(failing.text).to.match(/answered 500/);
      status = 200;
      body = '<html>hello</html>';
      const foreign = sink();
      expect(await shadowCommand(['--url', base], sink(), foreign)).to.equal(1);
      expect(foreign.text).to.match(/not a Prometheus text exposition/);
      // A port nobody listens on any more.
      const gone = createServer();
      await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
      const port = (gone.address() as AddressInfo).port;
      await new Promise((resolve) => gone.close(resolve));
      const closed = sink();
      expect(await shadowCommand(['--url', `http://127.0.0.1:${port}`], sink(), closed)).to.equal(1);
      expect(closed.text).to.match(/cannot reach/);
    });
  });
});
