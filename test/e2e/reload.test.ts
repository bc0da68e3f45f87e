/**
 * Live configuration reload through the real stack: the `tollgate stack` CLI watches its file
 * while real Envoy keeps serving. An invalid file changes nothing, a Kubernetes ConfigMap
 * `..data` symlink swap is followed, and a valid file takes effect within 5 s without cutting a
 * stream that is in flight.
 */
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import OpenAI from 'openai';
import type { DevIssuer } from '../../src/dev/issuer.js';
import { baseConfig, withStack } from '../helpers/e2e.js';
import { metricValue, scrapeMetrics } from '../helpers/prometheus.js';
import { eventually } from '../helpers/serve.js';

const HI = [{ role: 'user' as const, content: 'hi' }];

function configYaml(issuer: DevIssuer, authorization: string): string {
  return baseConfig({ issuer, name: 'idp', extra: `${authorization}\n` });
}

/** Polls `probe` until it returns something other than undefined. */
const waitFor = <T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10000,
): Promise<T> => eventually(probe, what, timeoutMs);

describe('e2e: live configuration reload through real Envoy', function () {
  this.timeout(60000);
  const e2e = withStack((issuer) => configYaml(issuer, 'authorization: { default: allow }'));
  let token: string;

  const client = () =>
    new OpenAI({
      baseURL: `${e2e.stack.ready.envoy}/v1`,
      apiKey: token,
      maxRetries: 0,
      timeout: 10000,
    });
  /** The HTTP status a chat completion with `model` gets right now. */
  const statusFor = async (model: string): Promise<number> => {
    try {
      await client().chat.completions.create({ model, messages: HI });
      return 200;
    } catch (err) {
      if (err instanceof OpenAI.APIError && typeof err.status === 'number') return err.status;
      throw err;
    }
  };
  const reloads = async (result: string) =>
    metricValue(await scrapeMetrics(e2e.stack.ready.metrics), 'tollgate_config_reloads_total', {
      result,
    }) ?? 0;

  before(async () => {
    token = await e2e.issuer.mint({ sub: 'u-1', email: 'ada@myorg.com', groups: ['eng'] });
  });

  it('refuses an invalid file: nothing changes, every problem is logged and counted', async () => {
    // Both mistakes would deny everything if they were half-applied.
    await e2e.stack.writeConfig(
      configYaml(
        e2e.issuer,
        'authorization:\n  defualt: deny\n  rules:\n    - name: block-all\n      action: maybe\n',
      ),
    );
    const refused = await waitFor('the refusal to be logged', () =>
      e2e.stack.logLines().find((l) => String(l['msg']).startsWith('configuration change refused')),
    );
    const problems = refused['problems'] as { path: string; message: string; line?: number }[];
    expect(problems.map((p) => p.path)).to.deep.equal([
      'authorization.defualt',
      'authorization.rules[0].action',
    ]);
    expect(problems[0]!.message).to.contain('did you mean `default`?');
    expect(problems.every((p) => typeof p.line === 'number')).to.equal(true);
    expect(String(refused['error'])).to.contain('2 problems');

    expect(await statusFor('gpt-4o-mini')).to.equal(200);
    expect(await reloads('rejected')).to.equal(1);
    expect(await reloads('success')).to.equal(0);
  });

  it('follows a Kubernetes ConfigMap update (the ..data symlink swap)', async () => {
    // The kubelet layout: tollgate.yaml -> ..data/tollgate.yaml, ..data -> ..<timestamp>/.
    const dir = e2e.stack.dir;
    const version = async (name: string, authorization: string) => {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'tollgate.yaml'), configYaml(e2e.issuer, authorization));
    };
    const denyModel = (m: string) =>
      `authorization:\n  default: allow\n  rules:\n    - { name: no-${m}, match: { models: ["${m}*"] }, action: deny }\n`;

    await version('..2026_01_01_00_00_00.000000001', denyModel('o3'));
    await symlink('..2026_01_01_00_00_00.000000001', join(dir, '..data'));
    await symlink('..data/tollgate.yaml', join(dir, 'tollgate.yaml.link'));
    await rename(join(dir, 'tollgate.yaml.link'), e2e.stack.configPath);
    await waitFor('the first ConfigMap version', async () =>
      (await statusFor('o3-mini')) === 403 ? true : undefined,
    );

    // The update itself: only the ..data link changes; tollgate.yaml stays the same symlink.
    await version('..2026_01_01_00_01_00.000000002', denyModel('gpt-4.1'));
    await symlink('..2026_01_01_00_01_00.000000002', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(join(dir, '..2026_01_01_00_00_00.000000001'), { recursive: true });
    await waitFor('the swapped ConfigMap version', async () =>
      (await statusFor('gpt-4.1')) === 403 ? true : undefined,
    );
    expect(await statusFor('o3-mini')).to.equal(200);
    expect(await reloads('success')).to.equal(2);
  });

  it('applies a default-deny file within 5 s while a stream in flight completes', async () => {
    const CHUNKS = 30;
    const stream = await client().chat.completions.create(
      { model: 'gpt-4o-mini', messages: HI, stream: true },
      { headers: { 'x-dev-chunks': String(CHUNKS), 'x-dev-chunk-delay-ms': '200' } },
    );
    let received = 0;
    let finish: string | null | undefined;
    const consumed = (async () => {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) received += 1;
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
    })();
    await waitFor('the first streamed chunk', () => (received > 0 ? true : undefined));

    const written = Date.now();
    await e2e.stack.writeConfig(configYaml(e2e.issuer, 'authorization: { default: deny }'));
    await waitFor(
      'the new policy',
      async () => ((await statusFor('gpt-4o-mini')) === 403 ? true : undefined),
      5000,
    );
    expect(Date.now() - written).to.be.below(5000);
    const receivedAtReload = received;

    await consumed;
    expect(receivedAtReload).to.be.below(CHUNKS);
    expect(received).to.equal(CHUNKS);
    expect(finish).to.equal('stop');

    const denial = e2e.stack
      .logLines()
      .filter((l) => l['audit'] === 'decision' && l['decision'] === 'deny')
      .at(-1);
    expect(denial).to.include({ reason: 'access_denied', rule: 'default', status: 403 });
    expect(await reloads('success')).to.equal(3);
  });
});
