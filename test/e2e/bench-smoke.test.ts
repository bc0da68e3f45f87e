/**
 * The benchmark's smoke mode (`npm run bench:smoke`): every configuration starts, serves real
 * requests without errors and produces numbers. No timing is asserted: this machine's speed is
 * not the test's business, the harness working is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import type { RunResults } from '../../bench/lib/report.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

describe('e2e: benchmark smoke run', function () {
  this.timeout(150_000);
  let dir: string;
  let child: ChildProcess | undefined;
  let results: RunResults;
  let markdown: string;
  let exitCode: number | null;
  let output = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tollgate-bench-smoke-'));
    const out = join(dir, 'RESULTS.md');
    const json = join(dir, 'results.json');
    child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench', 'run.ts'), '--smoke', '--out', out, '--json', json],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    exitCode = await new Promise<number | null>((done) =>
      child?.once('exit', (code) => done(code)),
    );
    try {
      results = JSON.parse(await readFile(json, 'utf8')) as RunResults;
      markdown = await readFile(out, 'utf8');
    } catch (err) {
      throw new Error(
        `the smoke run (exit ${exitCode}) wrote no report: ${String(err)}\n${output.slice(-4000)}`,
        { cause: err },
      );
    }
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 and writes the report with the command and the machine', () => {
    expect(exitCode, output).to.equal(0);
    expect(markdown).to.include('# Benchmark results');
    expect(markdown).to.include('bench/run.ts --smoke');
    expect(markdown).to.match(/Machine: .+\d+ CPUs/);
    for (const section of [
      '## Envoy configurations',
      '## Errors and mixed traffic',
      '## Streaming (e)',
      '## Check RPC, sidecar alone',
      '## Targets',
    ]) {
      expect(markdown).to.include(section);
    }
  });

  it('measures every Envoy configuration with real, successful requests', () => {
    expect(results.cases.map((c) => c.id)).to.deep.equal(['a', 'b', 'c', 'd', 'f']);
    for (const c of results.cases) {
      expect(c.error, `(${c.id})`).to.equal(undefined);
      expect(c.saturation?.requests, `(${c.id}) requests`).to.be.greaterThan(0);
      expect(c.saturation?.rps, `(${c.id}) rps`).to.be.greaterThan(0);
      expect(c.saturation?.non2xx, `(${c.id}) non-2xx`).to.equal(0);
      expect(c.fixed?.count, `(${c.id}) fixed-rate samples`).to.be.greaterThan(0);
      expect(c.fixed?.failed, `(${c.id}) fixed-rate failures`).to.equal(0);
      expect(c.fixed?.p99, `(${c.id}) p99`).to.be.a('number').and.greaterThan(0);
      expect(c.envoyCpuUs, `(${c.id}) envoy cpu`).to.be.a('number');
    }
    for (const c of results.cases.filter((x) => ['c', 'd', 'f'].includes(x.id))) {
      expect(c.sidecarCpuUs?.saturation, `(${c.id}) sidecar cpu`).to.be.a('number').and.not.NaN;
      expect(c.sidecarMemory?.rss, `(${c.id}) sidecar rss`).to.be.greaterThan(0);
    }
  });

  it('counts the mixed traffic by status: only the junk is refused, nothing fails', () => {
    for (const c of results.cases) {
      const m = c.mixed;
      expect(m?.requests, `(${c.id}) mixed requests`).to.be.greaterThan(0);
      expect(m?.unexpected, `(${c.id}) ${JSON.stringify(m?.statuses)}`).to.equal(0);
      expect(m?.fiveXx, `(${c.id}) 5xx`).to.equal(0);
      expect(m?.ok, `(${c.id}) 2xx`).to.be.greaterThan(0);
      expect(c.valid5xx, `(${c.id}) valid 5xx`).to.equal(0);
      // Envoy alone has nothing to refuse; every other configuration refuses the junk.
      if (c.id === 'a') expect(m?.denied, '(a) denials').to.equal(0);
      else expect(m?.denied, `(${c.id}) denials`).to.be.greaterThan(0);
    }
    for (const c of results.cases.filter((x) => ['c', 'd', 'f'].includes(x.id))) {
      expect(c.mixed?.sidecarGoaways, `(${c.id}) GOAWAY`).to.equal(0);
    }
    // ext_proc runs for admitted requests only.
    for (const c of results.cases.filter((x) => ['d', 'f'].includes(x.id)))
      expect(c.mixed?.extProcStreams, `(${c.id}) ext_proc streams`).to.be.at.most(
        c.mixed?.admitted ?? 0,
      );
  });

  it('streams through both paths and reports the added delay', () => {
    expect(results.streamError).to.equal(undefined);
    const s = results.stream;
    expect(s?.direct.failed).to.equal(0);
    expect(s?.tollgate.failed).to.equal(0);
    expect(s?.tollgate.transit.count).to.equal((s?.tollgate.streams ?? 0) * (s?.chunks ?? -1));
    expect(s?.addedTtftP50).to.be.a('number').and.not.NaN;
    expect(s?.addedChunkP50).to.be.a('number').and.not.NaN;
  });

  it('runs the Check RPC with and without the token cache for every user count', () => {
    expect(results.checks.map((m) => m.cache)).to.deep.equal([true, false]);
    for (const mode of results.checks) {
      expect(mode.error).to.equal(undefined);
      expect(mode.runs).to.have.length(3);
      for (const r of mode.runs) {
        expect(r.count).to.be.greaterThanOrEqual(r.users);
        expect(r.allowed).to.equal(r.count);
        expect(r.rssMiB).to.be.greaterThan(0);
      }
    }
  });
});
