/**
 * `server.heapGrowingPercent`: how far V8 lets the old generation grow past what the last full
 * collection kept before it collects again. V8's own factor adapts between 1.1 and 4 and, for a
 * heap as small as the sidecar's (20–30 MB live), mostly sits near the top: garbage promoted
 * under load piles up to several times the live heap before a collection, and the resident set
 * follows (bench/CHECK.md: 195 MiB peak for 10,000 users, 30 MiB of it live). A fixed factor
 * holds the peak near the live heap, at the price of more full collections under saturation
 * (marked incrementally on the main thread in the image, which runs `--single-threaded-gc`).
 * 0 leaves V8's adaptive factor.
 *
 * The factor is a process-wide V8 flag, read at every collection, so it can be set at start
 * and changed on reload. It is not one NODE_OPTIONS accepts.
 */
import { setFlagsFromString } from 'node:v8';

/** The V8 option that sets the factor (also valid on node's command line). */
export function heapGrowingFlag(percent: number): string {
  return `--heap-growing-percent=${Math.max(0, Math.floor(percent))}`;
}

let applied: number | undefined;

/** Sets the factor for this process (once per distinct value). */
export function applyHeapGrowing(percent: number): void {
  if (percent === applied) return;
  setFlagsFromString(heapGrowingFlag(percent));
  applied = percent;
}
