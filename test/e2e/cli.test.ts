/**
 * The CLI as a user runs it: `tollgate demo` brings up everything and its printed curl works,
 * `tollgate token` mints for it, SIGTERM stops every child, `check-config` sets its exit code.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { MAIN } from '../helpers/stack.js';

const run = promisify(execFile);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function childPids(pid: number): Promise<number[]> {
  const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(pid)]).catch(() => ({ stdout: '' }));
  return stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
}

describe('e2e: tollgate CLI', function () {
  this.timeout(60000);

  describe('demo and token', () => {
    let home: string;
    let demo: ChildProcess;
    const out: string[] = [];
    let ready: Record<string, string>;

    before(async () => {
      home = await mkdtemp(join(tmpdir(), 'tollgate-home-'));
      const env: NodeJS.ProcessEnv = { ...process.env, TOLLGATE_HOME: home };
      delete env['OPENAI_API_KEY'];
      demo = spawn(process.execPath, [MAIN, 'demo', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      demo.stderr!.resume();
      ready = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`demo not ready:\n${out.join('\n')}`)), 30000);
        createInterface({ input: demo.stdout! }).on('line', (line) => {
          out.push(line);
          if (line.startsWith('{"event":"ready"')) {
            clearTimeout(timer);
            resolve(JSON.parse(line) as Record<string, string>);
          }
        });
        demo.once('exit', (code) => reject(new Error(`demo exited with ${code}`)));
      });
      // The banner follows the ready line.
      await new Promise((r) => setTimeout(r, 200));
    });

    after(async () => {
      if (demo && demo.exitCode === null) demo.kill('SIGKILL');
      await rm(home, { recursive: true, force: true });
    });

    it('prints a token and a curl command that succeeds', async () => {
      const text = out.join('\n');
      const token = /export TOKEN=(\S+)/.exec(text)?.[1];
      expect(token, text).to.be.a('string');
      expect(text).to.contain(`curl -s ${ready['envoy']}/v1/chat/completions`);
      const body = /-d '(\{.*\})'/.exec(text)?.[1];
      expect(body).to.be.a('string');
      const res = await fetch(`${ready['envoy']}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body!,
      });
      expect(res.status).to.equal(200);
      const json = (await res.json()) as { usage: { total_tokens: number } };
      expect(json.usage.total_tokens).to.be.greaterThan(0);
    });

    it('`tollgate token` mints a token the running demo accepts', async () => {
      const { stdout } = await run(process.execPath, [MAIN, 'token', '--email', 'eve@example.com', '--groups', 'eng'], {
        env: { ...process.env, TOLLGATE_HOME: home },
      });
      const res = await fetch(`${ready['envoy']}/v1/models`, { headers: { authorization: `Bearer ${stdout.trim()}` } });
      expect(res.status).to.equal(200);
    });

    it('stops Envoy and exits 0 on SIGTERM', async () => {
      const children = await childPids(demo.pid!);
      expect(children.length).to.be.greaterThan(0);
      const exited = new Promise<number | null>((r) => demo.once('exit', (code) => r(code)));
      demo.kill('SIGTERM');
      expect(await exited).to.equal(0);
      await new Promise((r) => setTimeout(r, 300));
      for (const pid of children) expect(alive(pid), `child ${pid} still alive`).to.equal(false);
      const refused = await fetch(`${ready['envoy']}/v1/models`).then(() => false, () => true);
      expect(refused).to.equal(true);
    });
  });

  it('`tollgate token` without a demo issuer says to run the demo first', async () => {
    const home = await mkdtemp(join(tmpdir(), 'tollgate-empty-'));
    const err = await run(process.execPath, [MAIN, 'token'], { env: { ...process.env, TOLLGATE_HOME: home } }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    await rm(home, { recursive: true, force: true });
    expect(err?.code).to.equal(1);
    expect(err?.stderr).to.match(/run `tollgate demo` first/);
  });

  describe('check-config', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tollgate-cc-'));
    });
    after(() => rm(dir, { recursive: true, force: true }));

    it('exits 0 for a valid file', async () => {
      const file = join(dir, 'ok.yaml');
      await writeFile(file, 'authentication:\n  - provider:\n      name: a\n      issuer: https://auth.myorg.com\n      clientId: envoy-gateway\n');
      const { stdout } = await run(process.execPath, [MAIN, 'check-config', file]);
      expect(stdout).to.match(/^ok:/);
    });

    it('exits 1 and lists every problem with its line', async () => {
      const file = join(dir, 'bad.yaml');
      await writeFile(file, 'authentication:\n  - provider:\n      name: a\n      isuer: https://auth.myorg.com\nrateLimits:\n  - name: x\n    requestsPerUnit: -1\n    unit: fortnight\n');
      const err = await run(process.execPath, [MAIN, 'check-config', file]).then(() => undefined, (e: { code: number; stdout: string; stderr: string }) => e);
      expect(err?.code).to.equal(1);
      const text = `${err?.stdout}${err?.stderr}`;
      expect(text).to.contain(':4:');
      expect(text).to.match(/isuer/);
      expect(text).to.match(/did you mean `?issuer/);
      expect(text).to.match(/requestsPerUnit/);
      expect(text).to.match(/unit/);
    });
  });
});
