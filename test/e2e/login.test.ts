/**
 * `tollgate login` / `token` / `logout` as a developer uses them, against a real OpenID Provider
 * (`oidc-provider`: device flow, authorization code + PKCE, refresh tokens, revocation). The test
 * plays the person at the browser by submitting the provider's real pages over HTTP; the CLI runs
 * as a real process with its own TOLLGATE_HOME. Then the token it prints goes through real Envoy
 * with the official `openai` SDK, whose apiKey is a function that asks `tollgate token`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { decodeJwt } from 'jose';
import OpenAI from 'openai';
import { DevUpstream } from '../../src/dev/upstream.js';
import { spawnTracked, stopAll, type Spawned } from '../helpers/processes.js';
import { CLI_CLIENT_ID, GATEWAY_AUDIENCE, TestOP } from '../helpers/oidc-op.js';
import { TestBrowser, signIn } from '../helpers/oidc-user.js';
import { ROOT, SOURCE_CLI, startStack, type StackProcess } from '../helpers/stack.js';

const exec = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('e2e: tollgate login against oidc-provider', function () {
  this.timeout(60000);
  let op: TestOP;
  let home: string;

  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    TOLLGATE_HOME: home,
    TOLLGATE_ISSUER: op.issuer,
    TOLLGATE_CLIENT_ID: CLI_CLIENT_ID,
    DISPLAY: '',
    WAYLAND_DISPLAY: '',
    BROWSER: 'none',
    ...extra,
  });

  async function run(args: string[], extra: Record<string, string> = {}): Promise<Result> {
    try {
      const { stdout, stderr } = await exec(process.execPath, [...SOURCE_CLI, ...args], { cwd: ROOT, env: env(extra) });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }

  function startLogin(args: string[] = [], extra: Record<string, string> = {}): Spawned {
    return spawnTracked(process.execPath, [...SOURCE_CLI, 'login', ...args], { cwd: ROOT, env: env(extra) });
  }

  /** Runs `tollgate login --device`, signing in as `user` on the provider's pages (or denying). */
  async function deviceLogin(user: string, args: string[] = [], opts: { deny?: boolean } = {}): Promise<Result & { page: string }> {
    const cli = startLogin(['--device', ...args]);
    const line = await cli.waitForLine(/^\(or open (\S+)\)$/, { stream: 'stderr', timeoutMs: 15000 });
    const url = /^\(or open (\S+)\)$/.exec(line)?.[1] ?? '';
    const browser = new TestBrowser();
    const page = await signIn(browser, url, user, opts);
    const exit = await cli.waitForExit(30000).catch((e: unknown) => {
      throw new Error(`${String(e)}; the CLI said:\n${cli.stderr.join('\n')}\nthe browser went: ${browser.visited.join(' ')}`);
    });
    return { code: exit.code ?? -1, stdout: cli.stdout.join('\n'), stderr: cli.stderr.join('\n'), page: page.html };
  }

  async function cached(profile = 'default'): Promise<Record<string, unknown>> {
    return JSON.parse(await readFile(join(home, 'credentials', `${profile}.json`), 'utf8')) as Record<string, unknown>;
  }

  /** Revokes a token at the provider as the CLI's client would, outside Tollgate. */
  async function revokeAtProvider(token: string): Promise<void> {
    const res = await fetch(`${op.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, client_id: CLI_CLIENT_ID, token_type_hint: 'refresh_token' }),
    });
    expect(res.status).to.equal(200);
  }

  /** A direct refresh at the provider: what it says about a refresh token now. */
  async function refreshAtProvider(refreshToken: string): Promise<{ status: number; error?: string }> {
    const res = await fetch(`${op.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: CLI_CLIENT_ID }),
    });
    return { status: res.status, ...((await res.json()) as { error?: string }) };
  }

  before(async () => {
    op = await TestOP.start();
  });

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'tollgate-login-'));
    op.accessTokenTtl = 3600;
    op.deviceCodeTtl = 600;
    op.interval = 1;
    op.slowDownNext = 0;
  });

  afterEach(async () => {
    await stopAll();
    await rm(home, { recursive: true, force: true });
  });

  after(async () => {
    await op?.close();
  });

  describe('device authorization grant', () => {
    it('prints the URL and code, polls at the server interval, caches the tokens 0600, and `tollgate token` prints the access token', async () => {
      const before = op.tokenRequests.length;
      const r = await deviceLogin('ada');
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.match(new RegExp(`To sign in, open ${op.issuer}/device and enter the code [A-Z]{4}-[A-Z]{4}`));
      expect(r.stderr).to.match(/Logged in as ada to /);
      expect(r.stdout).to.equal('');

      const polls = op.tokenRequests.slice(before);
      expect(polls.at(-1)?.status).to.equal(200);
      for (let i = 1; i < polls.length; i++) {
        expect(polls[i]!.at - polls[i - 1]!.at, 'seconds between polls').to.be.at.least(900);
      }

      expect((await stat(join(home, 'credentials'))).mode & 0o777).to.equal(0o700);
      expect((await stat(join(home, 'credentials', 'default.json'))).mode & 0o777).to.equal(0o600);
      const entry = await cached();
      expect(entry['refreshToken']).to.be.a('string');

      const t = await run(['token']);
      expect(t.code, t.stderr).to.equal(0);
      const token = t.stdout.trim();
      expect(token).to.equal(entry['accessToken']);
      const claims = decodeJwt(token);
      expect(claims.iss).to.equal(op.issuer);
      expect(claims.aud).to.equal(GATEWAY_AUDIENCE);
      expect(claims['email']).to.equal('ada@example.com');
      expect(claims['groups']).to.deep.equal(['ml-team']);
    });

    it('backs off by 5 s after slow_down', async () => {
      op.slowDownNext = 1;
      const before = op.tokenRequests.length;
      const r = await deviceLogin('ada');
      expect(r.code, r.stderr).to.equal(0);
      const polls = op.tokenRequests.slice(before);
      expect(polls[0]?.status).to.equal(400);
      expect(polls.length).to.be.at.least(2);
      // interval 1 + 5 after slow_down
      expect(polls[1]!.at - polls[0]!.at).to.be.at.least(5900);
    });

    it('says the sign-in was denied when the user aborts, and caches nothing', async () => {
      const r = await deviceLogin('ada', [], { deny: true });
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/the sign-in was denied \(access_denied\)/);
      const t = await run(['token']);
      expect(t.code).to.equal(1);
      expect(t.stderr).to.match(/profile default is not logged in: run `tollgate login`/);
    });

    it('says the code expired when nobody signs in before it does', async () => {
      op.deviceCodeTtl = 2;
      const cli = startLogin(['--device']);
      const exit = await cli.waitForExit(20000);
      expect(exit.code).to.equal(1);
      expect(cli.stderr.join('\n')).to.match(/the code expired before the sign-in was completed/);
    });
  });

  describe('tokens over time', () => {
    it('reuses a fresh token without asking the IdP', async () => {
      expect((await deviceLogin('ada')).code).to.equal(0);
      const before = op.tokenRequests.length;
      const a = await run(['token']);
      const b = await run(['token']);
      expect(a.stdout).to.equal(b.stdout);
      expect(op.tokenRequests.length).to.equal(before);
    });

    it('refreshes a token about to expire with the refresh token, and rewrites the cache', async () => {
      op.accessTokenTtl = 30; // under the 60 s refresh margin
      expect((await deviceLogin('ada')).code).to.equal(0);
      const first = await cached();
      const before = op.tokenRequests.length;
      const t = await run(['token']);
      expect(t.code, t.stderr).to.equal(0);
      expect(op.tokenRequests.length).to.equal(before + 1);
      const token = t.stdout.trim();
      expect(token).to.not.equal(first['accessToken']);
      expect(decodeJwt(token)['email']).to.equal('ada@example.com');
      const second = await cached();
      expect(second['accessToken']).to.equal(token);
      // Whole seconds: a refresh within the second of the login may expire at the same instant.
      expect(second['expiresAt']).to.be.at.least(first['expiresAt'] as number);
      expect((await stat(join(home, 'credentials', 'default.json'))).mode & 0o777).to.equal(0o600);
    });

    it('refreshes once when several `tollgate token` run at the same time', async () => {
      op.accessTokenTtl = 30;
      expect((await deviceLogin('ada')).code).to.equal(0);
      op.accessTokenTtl = 3600;
      const before = op.tokenRequests.length;
      const all = await Promise.all([1, 2, 3, 4].map(() => run(['token'])));
      for (const r of all) expect(r.code, r.stderr).to.equal(0);
      expect(new Set(all.map((r) => r.stdout)).size).to.equal(1);
      expect(op.tokenRequests.length - before).to.equal(1);
    });

    it('says to log in again when the IdP has revoked the refresh token', async () => {
      op.accessTokenTtl = 30;
      expect((await deviceLogin('ada')).code).to.equal(0);
      await revokeAtProvider((await cached())['refreshToken'] as string);
      const t = await run(['token']);
      expect(t.code).to.equal(1);
      expect(t.stdout).to.equal('');
      expect(t.stderr).to.match(/the IdP refused the refresh token \(revoked or expired: invalid_grant.*\): run `tollgate login`/);
    });

    it('prints the still-valid token with a warning when the IdP cannot be reached to refresh it', async () => {
      const down = await TestOP.start();
      try {
        down.accessTokenTtl = 30;
        const cli = startLogin(['--device', '--issuer', down.issuer]);
        const line = await cli.waitForLine(/^\(or open (\S+)\)$/, { stream: 'stderr', timeoutMs: 15000 });
        await signIn(new TestBrowser(), /^\(or open (\S+)\)$/.exec(line)?.[1] ?? '', 'ada');
        expect((await cli.waitForExit(30000)).code).to.equal(0);
      } finally {
        await down.close();
      }
      const t = await run(['token']);
      expect(t.code, t.stderr).to.equal(0);
      expect(t.stdout.trim()).to.equal((await cached())['accessToken']);
      expect(t.stderr).to.match(/warning: cannot use http:\/\/127\.0\.0\.1:\d+ as an OIDC issuer: .*; printing the current token \(\d+ s left\)/);
    });

    it('`tollgate logout` revokes at the IdP and deletes the cache', async () => {
      expect((await deviceLogin('ada')).code).to.equal(0);
      const refreshToken = (await cached())['refreshToken'] as string;
      const out = await run(['logout']);
      expect(out.code, out.stderr).to.equal(0);
      expect(out.stderr).to.match(/the IdP revoked the tokens and the local copy is deleted/);
      expect(await refreshAtProvider(refreshToken)).to.include({ status: 400, error: 'invalid_grant' });
      const gone = await stat(join(home, 'credentials', 'default.json')).then(() => false, () => true);
      expect(gone).to.equal(true);
      const again = await run(['logout']);
      expect(again.stderr).to.match(/was not logged in/);
    });
  });

  describe('authorization code + PKCE with a loopback redirect', () => {
    /** Runs `tollgate login --browser`; the test is the browser `$BROWSER` would have opened. */
    async function browserLogin(user: string, opts: { deny?: boolean } = {}) {
      const cli = startLogin(['--browser']);
      const url = await cli.waitForLine(/^http\S+\/auth\?/, { stream: 'stderr', timeoutMs: 15000 });
      const browser = new TestBrowser();
      const page = await signIn(browser, url, user, opts);
      const exit = await cli.waitForExit(30000);
      return { code: exit.code, stderr: cli.stderr.join('\n'), url: new URL(url), page, visited: browser.visited };
    }

    it('signs in through the browser, comes back to 127.0.0.1, and caches a refreshable login', async () => {
      const r = await browserLogin('ada');
      expect(r.code, r.stderr).to.equal(0);
      const q = r.url.searchParams;
      expect(q.get('code_challenge_method')).to.equal('S256');
      expect(q.get('code_challenge')).to.match(/^[\w-]{43}$/);
      expect(q.get('state')).to.match(/^[\w-]{20,}$/);
      expect(q.get('redirect_uri')).to.match(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      expect(r.visited.at(-1)).to.match(/^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/);
      expect(r.page.html).to.match(/Signed in to Tollgate/);
      expect(r.stderr).to.match(/Logged in as ada to /);
      const entry = await cached();
      expect(entry['refreshToken']).to.be.a('string');
      expect(decodeJwt(entry['accessToken'] as string)['email']).to.equal('ada@example.com');
    });

    it('says the sign-in was denied when the user cancels', async () => {
      const r = await browserLogin('ada', { deny: true });
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/the sign-in was denied \(access_denied\)/);
      expect(r.page.html).to.match(/did not complete/);
    });
  });

  describe('the token through real Envoy with the openai SDK', () => {
    let upstream: DevUpstream;
    let stack: StackProcess;

    before(async () => {
      upstream = await DevUpstream.start();
      stack = await startStack({
        upstream: upstream.url,
        config: `
server: { grpc: 127.0.0.1:0, metrics: 127.0.0.1:0 }
authentication:
  - provider:
      name: company-idp
      issuer: ${op.issuer}
      clientId: ${GATEWAY_AUDIENCE}
upstream:
  apiKey: { env: TEST_UPSTREAM_KEY }
identityHeaders:
  x-user-email: email
  x-tenant-id: tenant_id
authorization:
  default: deny
  rules:
    - name: ml-team
      match: { claims: { groups: ml-team } }
      action: allow
`,
        env: { TEST_UPSTREAM_KEY: 'sk-upstream' },
      });
    });

    after(async () => {
      await stack?.stop();
      await upstream?.close();
    });

    /** The SDK asks `tollgate token` before every request: the README's shell-out helper. */
    const sdkFor = (profile: string) =>
      new OpenAI({
        baseURL: `${stack.ready.envoy}/v1`,
        maxRetries: 0,
        apiKey: async () => {
          const t = await run(['token', '--profile', profile]);
          if (t.code !== 0) throw new Error(t.stderr);
          return t.stdout.trim();
        },
      });

    it('lets the logged-in user through as themselves, with a refreshed token on every call', async () => {
      op.accessTokenTtl = 30; // every `tollgate token` refreshes
      expect((await deviceLogin('ada', ['--profile', 'ada'])).code).to.equal(0);
      const client = sdkFor('ada');
      const before = op.tokenRequests.length;
      for (let i = 0; i < 2; i++) {
        const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
        expect(completion.usage?.total_tokens).to.be.greaterThan(0);
        const h = upstream.received.at(-1)!.headers;
        expect(h['x-user-email']).to.equal('ada@example.com');
        expect(h['x-tenant-id']).to.equal('acme');
        expect(h['authorization']).to.equal('Bearer sk-upstream');
      }
      expect(op.tokenRequests.length - before, 'one refresh per call').to.equal(2);
    });

    it("the README's Node helper reads the cache, and runs `tollgate token` only when the token is about to expire", async () => {
      op.accessTokenTtl = 30;
      expect((await deviceLogin('ada')).code).to.equal(0);
      op.accessTokenTtl = 3600;
      const block = /```ts\n(import \{ execFile \}[\s\S]*?)```/.exec(await readFile(join(ROOT, 'README.md'), 'utf8'))?.[1];
      expect(block, 'the helper block in README.md').to.be.a('string');
      // `tollgate` on PATH is this checkout's CLI; the helper module lives under dist/ so `openai` resolves.
      const dir = await mkdtemp(join(ROOT, 'dist', 'readme-helper-'));
      const saved = { PATH: process.env['PATH'], TOLLGATE_HOME: process.env['TOLLGATE_HOME'], ISSUER: process.env['TOLLGATE_ISSUER'] };
      try {
        await writeFile(join(dir, 'tollgate'), `#!/bin/sh\necho "$@" >> "${join(dir, 'calls')}"\nexec "${process.execPath}" ${SOURCE_CLI.map((a) => `"${a}"`).join(' ')} "$@"\n`, { mode: 0o755 });
        await writeFile(join(dir, 'helper.ts'), `${block}\nexport { tollgateToken };\n`);
        process.env['PATH'] = `${dir}:${process.env['PATH'] ?? ''}`;
        process.env['TOLLGATE_HOME'] = home;
        process.env['TOLLGATE_ISSUER'] = op.issuer;
        const { tollgateToken } = (await import(join(dir, 'helper.ts'))) as { tollgateToken: () => Promise<string> };
        const client = new OpenAI({ baseURL: `${stack.ready.envoy}/v1`, maxRetries: 0, apiKey: tollgateToken });
        const before = op.tokenRequests.length;
        for (let i = 0; i < 2; i++) {
          await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
          expect(upstream.received.at(-1)!.headers['x-user-email']).to.equal('ada@example.com');
        }
        expect(op.tokenRequests.length - before, 'one refresh').to.equal(1);
        expect(await readFile(join(dir, 'calls'), 'utf8'), 'one `tollgate token`, then the cache').to.equal('token\n');
      } finally {
        for (const [k, v] of Object.entries({ PATH: saved.PATH, TOLLGATE_HOME: saved.TOLLGATE_HOME, TOLLGATE_ISSUER: saved.ISSUER })) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('refuses another logged-in user by the rules (403), with the token the IdP issued them', async () => {
      expect((await deviceLogin('bob', ['--profile', 'bob'])).code).to.equal(0);
      const err = await sdkFor('bob')
        .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
        .then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(OpenAI.PermissionDeniedError);
      expect((err as InstanceType<typeof OpenAI.PermissionDeniedError>).headers?.get('x-tollgate-reason')).to.equal('access_denied');
    });
  });

  describe('logout without revocation, and a forged redirect', () => {
    let bare: TestOP;
    before(async () => {
      bare = await TestOP.start({ revocation: false });
    });
    after(async () => {
      await bare?.close();
    });

    it('`tollgate logout` deletes the cache and says the IdP offers no revocation', async () => {
      const cli = startLogin(['--device', '--issuer', bare.issuer]);
      const line = await cli.waitForLine(/^\(or open (\S+)\)$/, { stream: 'stderr', timeoutMs: 15000 });
      await signIn(new TestBrowser(), /^\(or open (\S+)\)$/.exec(line)?.[1] ?? '', 'ada');
      expect((await cli.waitForExit(30000)).code).to.equal(0);
      const out = await run(['logout']);
      expect(out.code, out.stderr).to.equal(0);
      expect(out.stderr).to.match(/the local copy is deleted \(the IdP offers no revocation\)/);
      expect(await stat(join(home, 'credentials', 'default.json')).then(() => true, () => false)).to.equal(false);
    });

    it('refuses a redirect to the loopback listener that carries another state (login CSRF)', async () => {
      const cli = startLogin(['--browser']);
      const url = new URL(await cli.waitForLine(/^http\S+\/auth\?/, { stream: 'stderr', timeoutMs: 15000 }));
      const callback = new URL(url.searchParams.get('redirect_uri') ?? '');
      callback.search = new URLSearchParams({ code: 'attacker-code', state: 'forged', iss: op.issuer }).toString();
      const res = await fetch(callback);
      expect(res.status).to.equal(400);
      expect(await res.text()).to.match(/did not complete/);
      const exit = await cli.waitForExit(15000);
      expect(exit.code).to.equal(1);
      expect(cli.stderr.join('\n')).to.match(/the browser sign-in failed: .*state/i);
      expect(await stat(join(home, 'credentials', 'default.json')).then(() => true, () => false)).to.equal(false);
    });
  });

  describe('wrong issuer', () => {
    it('refuses an issuer whose discovery document names another issuer', async () => {
      const wrong = op.issuer.replace('127.0.0.1', 'localhost');
      const r = await run(['login', '--device', '--issuer', wrong]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/cannot use http:\/\/localhost:\d+ as an OIDC issuer: the discovery document names another issuer/);
    });

    it('refuses a URL that is no OIDC issuer', async () => {
      const r = await run(['login', '--device', '--issuer', `${op.issuer}/not-an-issuer`]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/cannot use .*\/not-an-issuer as an OIDC issuer: unexpected HTTP response status code/);
    });

    it('refuses plain http to anything but loopback', async () => {
      const r = await run(['login', '--device', '--issuer', 'http://idp.example.com']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/the issuer must be an https URL \(plain http only on loopback\)/);
    });
  });
});
