/**
 * Several worker processes' Prometheus text expositions made into one, so the one `/metrics`
 * of `server.workers > 1` reports for all of them with the same series a single process has.
 * Counters and histograms add up (each request was counted by exactly one worker); gauges add
 * up too (reservations held, workers in each breaker state), except the few that describe one
 * shared thing as each worker last saw it (GAUGE_RULES).
 */

/** How one series reported by several workers becomes one value (`first`: one exposition's only). */
export type Combine = 'sum' | 'max' | 'min' | 'first';

/**
 * Gauges that are not a sum over workers. A budget's level is the same Redis value read at
 * different settlements: the highest `used` (lowest `remaining`) is the latest in its period.
 * Signing keys are cached per worker: the fewest is what some worker can verify with.
 */
const GAUGE_RULES: Readonly<Record<string, Combine>> = {
  // The process's resource attributes: the same for every worker; the first one speaks for all.
  target_info: 'first',
  tollgate_budget_used: 'max',
  tollgate_budget_remaining: 'min',
  tollgate_jwks_keys: 'min',
};

interface Family {
  /** `# HELP`, `# UNIT`, `# TYPE` lines, from the first exposition that had the family. */
  readonly header: string[];
  combine: Combine;
  /** Series (name and labels) in order of first appearance, with the value so far. */
  readonly samples: Map<string, number>;
  /** The exposition (index in the input) that first had samples of this family. */
  from: number | undefined;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

function formatValue(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** `name{labels}` and the value of one sample line (a timestamp, if any, is dropped). */
function splitSample(line: string): { series: string; value: number } | undefined {
  // Label values may hold spaces but never a `}` unescaped at the end: the series ends at the
  // last `}` when there are labels, at the first space otherwise.
  const close = line.lastIndexOf('}');
  const end = close >= 0 ? close + 1 : line.indexOf(' ');
  if (end <= 0) return undefined;
  const value = line.slice(end).trim().split(/\s+/)[0];
  if (value === undefined || value === '') return undefined;
  return { series: line.slice(0, end), value: parseValue(value) };
}

function combine(how: Combine, a: number, b: number): number {
  if (how === 'first') return a;
  if (how === 'max') return Math.max(a, b);
  if (how === 'min') return Math.min(a, b);
  return a + b;
}

/** The family a sample line belongs to: the `# TYPE` in force, else the metric name itself. */
function metricName(series: string): string {
  const brace = series.indexOf('{');
  return brace >= 0 ? series.slice(0, brace) : series;
}

/** One exposition holding every family of `texts`, each series combined across them. */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) {
      f = { header: [], combine: 'sum', samples: new Map(), from: undefined };
      families.set(name, f);
    }
    return f;
  };
  for (const [index, text] of texts.entries()) {
    let current: Family | undefined;
    let currentName: string | undefined;
    let fresh = false;
    for (const raw of text.split('\n')) {
      const line = raw.trimEnd();
      if (line === '') continue;
      if (line.startsWith('#')) {
        const [, keyword, name, ...rest] = line.split(' ');
        if ((keyword !== 'HELP' && keyword !== 'TYPE' && keyword !== 'UNIT') || name === undefined) continue;
        if (name !== currentName || current === undefined) {
          fresh = !families.has(name);
          currentName = name;
        }
        const f = family(name);
        current = f;
        if (fresh) f.header.push(line);
        if (keyword === 'TYPE') f.combine = rest[0] === 'gauge' ? (GAUGE_RULES[name] ?? 'sum') : 'sum';
        continue;
      }
      const sample = splitSample(line);
      if (sample === undefined) continue;
      const owner = current ?? family(metricName(sample.series));
      owner.from ??= index;
      if (owner.combine === 'first' && owner.from !== index) continue;
      const before = owner.samples.get(sample.series);
      owner.samples.set(
        sample.series,
        before === undefined ? sample.value : combine(owner.combine, before, sample.value),
      );
    }
  }
  const out: string[] = [];
  for (const f of families.values()) {
    out.push(...f.header);
    for (const [series, value] of f.samples) out.push(`${series} ${formatValue(value)}`);
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}
