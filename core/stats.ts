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
