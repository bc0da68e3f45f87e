/** Near-miss suggestions for unknown keys and enum values ("did you mean `issuer`?"). */

/** Levenshtein distance, case-insensitive: `clientID` is one step from `clientId`, not two. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const row = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[t.length] ?? 0;
}

/**
 * The closest candidate when it is close enough to be a plausible typo: at most a third of the
 * longer word's letters (and at most 3) differ, or the only difference is letter case.
 */
export function suggestion(word: string, candidates: readonly string[]): string | undefined {
  // Very long words cannot be typos of our short key names; skip the quadratic work.
  if (word.length > 64) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    const limit = Math.max(1, Math.min(3, Math.floor(Math.max(word.length, c.length) / 3)));
    if (d <= limit && d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}
