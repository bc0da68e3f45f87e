/**
 * `tollgate check-config FILE`: the same validation `serve` and reload use. Exit status 0 when
 * valid, 1 when the file has problems (every one printed as `FILE:LINE: path: message`), 2 when
 * the file cannot be read at all. Secrets are not resolved: the file may be checked in CI,
 * far from the keys.
 */
import { readFile } from 'node:fs/promises';
import { errorText, parseConfig } from '../config/load.js';
import { ConfigError } from '../config/problems.js';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function checkConfig(
  file: string,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    err.write(`error: cannot read ${file}: ${errorText(e)}\n`);
    return 2;
  }
  try {
    const cfg = parseConfig(text, file);
    const counts = [
      plural(cfg.authentication.length, 'provider'),
      plural(cfg.authorization.rules.length, 'rule'),
      plural(cfg.rateLimits.length, 'rate limit'),
      plural(cfg.tokenBudgets.length, 'budget'),
    ];
    out.write(`ok: ${file} is valid (${counts.join(', ')})\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) {
      const where = p.line !== undefined ? `${file}:${p.line}` : file;
      err.write(`${where}: ${p.path || '(root)'}: ${p.message}\n`);
    }
    err.write(`invalid: ${file} has ${plural(e.problems.length, 'problem')}\n`);
    return 1;
  }
}
