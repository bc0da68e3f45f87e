import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../../src/config/load.js';
import {
  resolveMetricsToken,
  resolveSecret,
  resolveSecretSync,
  resolveUpstreamSecrets,
} from '../../../src/config/secrets.js';
import { ConfigError } from '../../../src/config/problems.js';
import { MINIMAL, describeProblems } from './helpers.js';

async function rejection(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).to.be.instanceOf(ConfigError);
  return err as ConfigError;
}

describe('config/secrets', () => {
  let dir: string;
  const vars = [
    'TOLLGATE_TEST_KEY',
    'TOLLGATE_TEST_EMPTY',
    'TOLLGATE_TEST_UNSET',
    'TOLLGATE_TEST_TENANT',
    'TOLLGATE_TEST_METRICS',
  ];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tollgate-secrets-'));
  });
  after(async () => {
    for (const v of vars) delete process.env[v];
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    process.env['TOLLGATE_TEST_KEY'] = 'sk-test-123';
    process.env['TOLLGATE_TEST_EMPTY'] = '';
    delete process.env['TOLLGATE_TEST_UNSET'];
  });

  it('reads an environment variable', async () => {
    expect(await resolveSecret({ env: 'TOLLGATE_TEST_KEY' })).to.equal('sk-test-123');
    expect(resolveSecretSync({ env: 'TOLLGATE_TEST_KEY' })).to.equal('sk-test-123');
  });

  it('refuses an unset or empty variable, naming it but no value', async () => {
    const unset = await rejection(resolveSecret({ env: 'TOLLGATE_TEST_UNSET' }, 'upstream.apiKey'));
    expect(unset.problems).to.deep.equal([
      { path: 'upstream.apiKey', message: 'environment variable TOLLGATE_TEST_UNSET is not set' },
    ]);
    const empty = await rejection(resolveSecret({ env: 'TOLLGATE_TEST_EMPTY' }));
    expect(empty.problems).to.deep.equal([
      { path: '', message: 'environment variable TOLLGATE_TEST_EMPTY is empty' },
    ]);
    expect(() => resolveSecretSync({ env: 'TOLLGATE_TEST_UNSET' })).to.throw(
      ConfigError,
      'TOLLGATE_TEST_UNSET is not set',
    );
  });

  it('reads a file and drops the trailing newline', async () => {
    const file = join(dir, 'key');
    await writeFile(file, 'sk-from-file\n');
    expect(await resolveSecret({ file })).to.equal('sk-from-file');
    await writeFile(file, 'sk-crlf\r\n');
    expect(resolveSecretSync({ file })).to.equal('sk-crlf');
  });

  it('refuses a missing, empty or multi-line file', async () => {
    const missing = await rejection(resolveSecret({ file: join(dir, 'nope') }));
    expect(missing.problems[0]?.message).to.equal(
      `cannot read secret file ${join(dir, 'nope')} (ENOENT)`,
    );
    const empty = join(dir, 'empty');
    await writeFile(empty, '\n');
    expect((await rejection(resolveSecret({ file: empty }))).problems[0]?.message).to.equal(
      `secret file ${empty} is empty`,
    );
    const multi = join(dir, 'multi');
    await writeFile(multi, 'sk-one\nsk-two\n');
    const err = await rejection(resolveSecret({ file: multi }));
    expect(err.problems[0]?.message).to.contain('contains a line break');
    expect(err.message).to.not.contain('sk-one');
    expect(() => resolveSecretSync({ file: join(dir, 'nope') })).to.throw(ConfigError, 'ENOENT');
  });

  it('server.metricsToken: a secret reference, read at start-up, 16+ characters a bearer token may hold', async () => {
    expect(await resolveMetricsToken(parseConfig(MINIMAL))).to.equal(undefined);
    const cfg = parseConfig(`${MINIMAL}server: { metricsToken: { env: TOLLGATE_TEST_METRICS } }\n`);
    expect(cfg.server.metricsToken).to.deep.equal({ env: 'TOLLGATE_TEST_METRICS' });
    process.env['TOLLGATE_TEST_METRICS'] = 'c2VjcmV0LXRva2VuLTE2Kw==';
    expect(await resolveMetricsToken(cfg)).to.equal('c2VjcmV0LXRva2VuLTE2Kw==');
    const file = join(dir, 'metrics-token');
    await writeFile(file, `${'ab12'.repeat(16)}\n`);
    expect(await resolveMetricsToken(parseConfig(`${MINIMAL}server: { metricsToken: { file: ${JSON.stringify(file)} } }\n`))).to.equal('ab12'.repeat(16));
    for (const [value, message] of [
      ['short-token', 'shorter than 16 characters'],
      ['a token with spaces in it', 'may hold only'],
      ['tok"en-that-is-long-enough', 'may hold only'],
    ] as const) {
      process.env['TOLLGATE_TEST_METRICS'] = value;
      const err = await rejection(resolveMetricsToken(cfg));
      expect(err.problems[0]?.path).to.equal('server.metricsToken');
      expect(err.problems[0]?.message).to.include(message);
      expect(err.message).to.not.include(value);
    }
    delete process.env['TOLLGATE_TEST_METRICS'];
    expect((await rejection(resolveMetricsToken(cfg))).problems[0]?.message).to.equal('environment variable TOLLGATE_TEST_METRICS is not set');
    // Written in the file itself, a token would be refused: like every secret, it is a reference.
    expect(describeProblems(`${MINIMAL}server: { metricsToken: hunter2hunter2hunter2 }\n`)[0]).to.match(/^3: server\.metricsToken: /);
  });

  it('resolves every upstream key of a config and reports all failures at once', async () => {
    const file = join(dir, 'default-key');
    await writeFile(file, 'sk-default\n');
    process.env['TOLLGATE_TEST_TENANT'] = 'sk-tenant';
    const ok = parseConfig(`${MINIMAL}upstream:
  apiKey: { file: ${JSON.stringify(file)} }
  tenants: { marketing: { apiKey: { env: TOLLGATE_TEST_TENANT } } }
`);
    expect(await resolveUpstreamSecrets(ok)).to.deep.equal({
      apiKey: 'sk-default',
      tenants: { marketing: 'sk-tenant' },
    });

    const bad = parseConfig(`${MINIMAL}upstream:
  apiKey: { env: TOLLGATE_TEST_UNSET }
  tenants: { "team a": { apiKey: { env: TOLLGATE_TEST_EMPTY } } }
`);
    const err = await rejection(resolveUpstreamSecrets(bad));
    expect(err.problems.map((p) => p.path)).to.deep.equal([
      'upstream.apiKey',
      'upstream.tenants["team a"].apiKey',
    ]);
  });
});
