import { expect } from 'chai';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../../../src/config/schema.js';
import { watchConfig } from '../../../src/config/watch.js';
import type { ConfigWatcher } from '../../../src/config/watch.js';
import type { ConfigError } from '../../../src/config/problems.js';

/** A valid file whose first provider is named `name`, so each version is recognizable. */
const version = (name: string): string => `authentication:
  - provider: { name: ${name}, issuer: "https://auth.example.com", clientId: envoy }
`;

type Event = { change: Config } | { error: ConfigError };

interface Observer {
  readonly watcher: ConfigWatcher;
  readonly seen: Event[];
  /** Resolves with the first not yet consumed event that satisfies `pred` (fails after 3 s). */
  waitFor(pred: (e: Event) => boolean): Promise<Event>;
}

function observe(path: string, opts: { debounceMs?: number; pollMs?: number }): Observer {
  const seen: Event[] = [];
  let consumed = 0;
  let wake: (() => void) | undefined;
  const push = (e: Event): void => {
    seen.push(e);
    wake?.();
  };
  const watcher = watchConfig(
    path,
    (change) => push({ change }),
    (error) => push({ error }),
    opts,
  );
  const waitFor = async (pred: (e: Event) => boolean): Promise<Event> => {
    const deadline = Date.now() + 3000;
    for (;;) {
      while (consumed < seen.length) {
        const e = seen[consumed++] as Event;
        if (pred(e)) return e;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching config event within 3 s (seen ${seen.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  return { watcher, seen, waitFor };
}

/**
 * A change to the version named `name`. Writing a file in place truncates it first, so a
 * (correct) error for a momentarily empty file may come before it; in-place tests skip those.
 */
const changeTo =
  (name: string) =>
  (e: Event): boolean =>
    'change' in e && e.change.authentication[0]?.name === name;

const anyEvent = (): boolean => true;

function providerName(e: Event): string | undefined {
  if (!('change' in e)) throw new Error(`expected a change, got error: ${e.error.message}`);
  return e.change.authentication[0]?.name;
}

/** Replaces `file` atomically, so no reader ever sees a half-written version. */
async function replace(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, content);
  await rename(tmp, file);
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('config/watch', () => {
  let dir: string;
  let active: ConfigWatcher | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tollgate-watch-'));
  });
  afterEach(async () => {
    active?.close();
    active = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('reloads a file edited in place; the initial content is not reported', async () => {
    const file = join(dir, 'config.yaml');
    await writeFile(file, version('v1'));
    const obs = observe(file, { debounceMs: 20, pollMs: 0 });
    active = obs.watcher;
    await settle(60);
    expect(obs.seen).to.deep.equal([]);
    await writeFile(file, version('v2'));
    expect(providerName(await obs.waitFor(changeTo('v2')))).to.equal('v2');
  });

  it('reports invalid content as an error, then reloads the fixed file', async () => {
    const file = join(dir, 'config.yaml');
    await writeFile(file, version('v1'));
    const obs = observe(file, { debounceMs: 20, pollMs: 0 });
    active = obs.watcher;
    await replace(file, 'authentication: []\n');
    const bad = await obs.waitFor(anyEvent);
    expect('error' in bad && bad.error.problems[0]?.message).to.equal(
      'must list at least one identity provider',
    );
    expect('error' in bad && bad.error.file).to.equal(file);
    await replace(file, version('v3'));
    expect(providerName(await obs.waitFor(anyEvent))).to.equal('v3');
  });

  it('reloads a file replaced by an atomic rename', async () => {
    const file = join(dir, 'config.yaml');
    await writeFile(file, version('v1'));
    const obs = observe(file, { debounceMs: 20, pollMs: 0 });
    active = obs.watcher;
    await replace(file, version('v2'));
    expect(providerName(await obs.waitFor(anyEvent))).to.equal('v2');
    // The watch must survive the inode change: a second replacement is seen too.
    await replace(file, version('v3'));
    expect(providerName(await obs.waitFor(anyEvent))).to.equal('v3');
  });

  it('reloads on a Kubernetes ConfigMap symlink swap', async () => {
    // Kubernetes layout: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>/
    const mount = async (stamp: string, content: string): Promise<void> => {
      await mkdir(join(dir, stamp));
      await writeFile(join(dir, stamp, 'config.yaml'), content);
      await symlink(stamp, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    await mount('..2024_01_01_00_00_00.1', version('v1'));
    await symlink('..data/config.yaml', join(dir, 'config.yaml'));
    const obs = observe(join(dir, 'config.yaml'), { debounceMs: 20, pollMs: 0 });
    active = obs.watcher;

    await mount('..2024_01_01_00_01_00.2', version('v2'));
    await rm(join(dir, '..2024_01_01_00_00_00.1'), { recursive: true });
    expect(providerName(await obs.waitFor(anyEvent))).to.equal('v2');

    await mount('..2024_01_01_00_02_00.3', version('v3'));
    await rm(join(dir, '..2024_01_01_00_01_00.2'), { recursive: true });
    expect(providerName(await obs.waitFor(anyEvent))).to.equal('v3');
  });

  it('catches changes through the slow poll alone', async () => {
    const file = join(dir, 'config.yaml');
    await writeFile(file, version('v1'));
    // A debounce far longer than the test: only the poll can deliver the change in time.
    const obs = observe(file, { debounceMs: 60_000, pollMs: 30 });
    active = obs.watcher;
    await replace(file, version('v2'));
    expect(providerName(await obs.waitFor(anyEvent))).to.equal('v2');
  });

  it('reports a removed file once, and reloads when it returns', async () => {
    const file = join(dir, 'config.yaml');
    await writeFile(file, version('v1'));
    const obs = observe(file, { debounceMs: 20, pollMs: 25 });
    active = obs.watcher;
    await rm(file);
    const gone = await obs.waitFor(anyEvent);
    expect('error' in gone && gone.error.problems[0]?.message).to.match(
      /^cannot read the configuration file: .*ENOENT/,
    );
    await settle(100);
    expect(obs.seen).to.have.length(1);
    await replace(file, version('v2'));
    expect(providerName(await obs.waitFor(anyEvent))).to.equal('v2');
  });

  it('stops reporting after close()', async () => {
    const file = join(dir, 'config.yaml');
    await writeFile(file, version('v1'));
    const obs = observe(file, { debounceMs: 10, pollMs: 20 });
    obs.watcher.close();
    await writeFile(file, version('v2'));
    await settle(100);
    expect(obs.seen).to.deep.equal([]);
  });
});
