/** Reading the Prometheus text format in tests, from a live `/metrics` or a serialized exporter. */

/** GET `url` (a stack's `ready.metrics`); fails unless it answers 200. */
export async function scrapeMetrics(url: string | null | undefined): Promise<string> {
  if (url === null || url === undefined) throw new Error('metrics are not served (no metrics URL)');
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  return res.text();
}

/**
 * The value of the one series named exactly `name` whose label set contains every `labels`
 * entry, or undefined when there is none; more than one matching series is an error.
 */
export function metricValue(
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const lines = text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .filter((l) => wanted.every((w) => l.includes(w)));
  if (lines.length > 1)
    throw new Error(
      `${lines.length} series match ${name} ${wanted.join(',')}:\n${lines.join('\n')}`,
    );
  return lines[0] === undefined ? undefined : Number(lines[0].slice(lines[0].lastIndexOf(' ') + 1));
}
