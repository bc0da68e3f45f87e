/**
 * Reloads the configuration file when it changes. Three ways a file changes in practice:
 * edited in place, replaced by an atomic rename (editors, `kubectl cp`, config management), and
 * Kubernetes ConfigMap updates, where `config.yaml -> ..data/config.yaml` and `..data` is a
 * symlink swapped to a new timestamped directory. Watching the file's inode misses the last two
 * (the watch stays on the old inode), so we watch the directories (the one named in the path
 * and the one the symlinks currently resolve to) and compare a hash of the content after a
 * debounce. A slow poll catches whatever the platform's watcher does not report.
 */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigError } from './problems.js';
import { errorText, parseConfig } from './load.js';
import type { Config } from './schema.js';

export interface WatchOptions {
  /** Quiet time after the last file event before the file is re-read (default 200 ms). */
  readonly debounceMs?: number;
  /** Interval of the safety-net poll (default 2000 ms); 0 disables it. */
  readonly pollMs?: number;
}

export interface ConfigWatcher {
  /** Re-reads the file now (SIGHUP) instead of waiting for an event or the poll. */
  reread(): void;
  close(): void;
}

type Snapshot =
  | { readonly hash: string; readonly text: string }
  | { readonly hash: string; readonly error: unknown };

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function failed(err: unknown): Snapshot {
  // Same failure, same "hash": a file that stays missing is reported once, not every poll.
  return {
    hash: `error:${(err as NodeJS.ErrnoException | undefined)?.code ?? errorText(err)}`,
    error: err,
  };
}

function snapshotSync(path: string): Snapshot {
  try {
    const text = readFileSync(path, 'utf8');
    return { hash: digest(text), text };
  } catch (err) {
    return failed(err);
  }
}

async function snapshot(path: string): Promise<Snapshot> {
  try {
    const text = await readFile(path, 'utf8');
    return { hash: digest(text), text };
  } catch (err) {
    return failed(err);
  }
}

/**
 * Calls `onChange` with each new valid configuration and `onError` for each new invalid (or
 * unreadable) content. The content present when the watcher starts is taken as the current
 * one and not reported. The caller keeps the last good Config in force on errors.
 */
export function watchConfig(
  path: string,
  /** `text`: the file content `cfg` was read from (the cluster primary hands it to its workers). */
  onChange: (cfg: Config, text: string) => void,
  onError: (err: ConfigError) => void,
  opts: WatchOptions = {},
): ConfigWatcher {
  const file = resolve(path);
  const debounceMs = opts.debounceMs ?? 200;
  const pollMs = opts.pollMs ?? 2000;
  const watchers = new Map<string, FSWatcher>();
  let last = snapshotSync(file).hash;
  let closed = false;
  let running = false;
  let again = false;
  let debounce: NodeJS.Timeout | undefined;

  const safely = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      // A throwing callback must not stop the watcher; surface it without crashing the process.
      process.emitWarning(`config watcher callback threw: ${errorText(err)}`);
    }
  };

  const schedule = (): void => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void check(), debounceMs);
    debounce.unref();
  };

  const arm = (): void => {
    const dirs = new Set([dirname(file)]);
    try {
      dirs.add(dirname(realpathSync(file)));
    } catch {
      // Missing for now; the named directory's watch and the poll will notice its return.
    }
    for (const [dir, w] of watchers) {
      if (!dirs.has(dir)) {
        w.close();
        watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, schedule);
        w.on('error', () => {
          // Typically the old ConfigMap timestamp directory being deleted: drop it and re-arm.
          w.close();
          if (watchers.get(dir) === w) watchers.delete(dir);
          schedule();
        });
        watchers.set(dir, w);
      } catch {
        // Directory gone or not watchable; the poll remains.
      }
    }
  };

  const check = async (): Promise<void> => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      arm();
      const snap = await snapshot(file);
      if (closed || snap.hash === last) return;
      last = snap.hash;
      if ('error' in snap) {
        const err = new ConfigError(
          [{ path: '', message: `cannot read the configuration file: ${errorText(snap.error)}` }],
          path,
        );
        safely(() => onError(err));
        return;
      }
      let cfg: Config;
      try {
        cfg = parseConfig(snap.text, path);
      } catch (err) {
        if (err instanceof ConfigError) safely(() => onError(err));
        return;
      }
      safely(() => onChange(cfg, snap.text));
    } finally {
      running = false;
      if (again && !closed) {
        again = false;
        schedule();
      }
    }
  };

  arm();
  const poll = pollMs > 0 ? setInterval(() => void check(), pollMs) : undefined;
  poll?.unref();

  return {
    reread(): void {
      void check();
    },
    close(): void {
      closed = true;
      clearTimeout(debounce);
      if (poll !== undefined) clearInterval(poll);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
