/**
 * OpenAI's `x-ratelimit-reset-*` values are Go durations (`12ms`, `1s`, `1.5s`, `6m0s`); SDKs
 * and dashboards parse them, so we write them the way Go's time.Duration.String does.
 */

/**
 * Go-style duration of `ms` milliseconds, rounded up to a whole millisecond (waiting the
 * advertised time must be enough). Below one second: `Nms`; from one second: `h`, `m`, `s`
 * with zero middle parts kept (`1h0m0s`) and fractional seconds as decimals (`1.5s`); no day
 * unit, so 30 days is `720h0m0s`. Zero and negative values are `0s`, as in Go.
 */
export function formatResetDuration(ms: number): string {
  const total = Number.isFinite(ms) ? Math.ceil(ms) : 0;
  if (total <= 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const whole = Math.floor(millis / 1000);
  const frac = millis % 1000;
  const seconds =
    frac === 0 ? `${whole}` : `${whole}.${String(frac).padStart(3, '0').replace(/0+$/, '')}`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** `retry-after` value: whole seconds, rounded up, at least 1. */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}
