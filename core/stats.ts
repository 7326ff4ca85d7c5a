/**
 * Small statistics helpers shared by benchmarks and tasks.
 *
 * @module
 */

/**
 * The value at quantile `q` (nearest rank) of `xs`; NaN for none.
 *
 * @example
 * ```ts
 * import { quantile } from "./stats.ts";
 * console.assert(quantile([3, 1, 2], 0.5) === 2);
 * ```
 */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** The arithmetic mean of `xs`; NaN for none. */
export function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * Adds per-worker epoch numbers `from` into `into` by the convention of `TaskContext.epochEnd`:
 * keys ending in `_max` take the maximum, all others the sum.
 */
export function addSums(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) {
    if (k.endsWith("_max")) into[k] = Math.max(into[k] ?? -Infinity, v);
    else into[k] = (into[k] ?? 0) + v;
  }
}

/**
 * The `k` indices in `0 .. n-1` with the highest `score(i)`, as `[i, score]` pairs, best first
 * (ties: the lower index first). One pass, `k` entries kept.
 *
 * @example
 * ```ts
 * import { topK } from "./stats.ts";
 * const xs = [3, 9, 1, 7];
 * console.log(topK(xs.length, 2, (i) => xs[i])); // [[1, 9], [3, 7]]
 * ```
 */
export function topK(n: number, k: number, score: (i: number) => number): [number, number][] {
  const best: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const s = score(i);
    if (best.length < k) {
      best.push([i, s]);
      if (best.length === k) best.sort((a, b) => b[1] - a[1]);
    } else if (s > best[k - 1][1]) {
      let at = k - 1;
      while (at > 0 && best[at - 1][1] < s) at--;
      best.splice(at, 0, [i, s]);
      best.pop();
    }
  }
  return best.sort((a, b) => b[1] - a[1]);
}
