/**
 * Copying rows of `dim` floats between a packed array (row `j` at `j * dim`) and rows at given
 * positions, one bulk `set` per run of consecutive positions: a batch whose positions are in
 * order (the usual case: a remote-only call, or one request's keys at one holder) is one copy.
 *
 * @module
 */

/**
 * Row `j` of `src` goes to row `pos[j]` of `dst`, for `j` in `from .. end`.
 *
 * @example
 * ```ts
 * import { scatterRows } from "./rows.ts";
 * const dst = new Float32Array(6);
 * scatterRows(Float32Array.of(1, 2, 3, 4), dst, Uint32Array.of(1, 2), 0, 2, 2);
 * console.assert(dst.join() === "0,0,1,2,3,4");
 * ```
 */
export function scatterRows(
  src: Float32Array,
  dst: Float32Array,
  pos: ArrayLike<number>,
  from: number,
  end: number,
  dim: number,
): void {
  let j = from;
  while (j < end) {
    const first = pos[j];
    let last = j + 1;
    while (last < end && pos[last] === first + (last - j)) last++;
    dst.set(src.subarray(j * dim, last * dim), first * dim);
    j = last;
  }
}

/**
 * Row `pos[j]` of `src` goes to row `j` of `dst`, for `j` in `from .. end`.
 *
 * @example
 * ```ts
 * import { gatherRows } from "./rows.ts";
 * const dst = new Float32Array(4);
 * gatherRows(Float32Array.of(0, 0, 1, 2, 3, 4), dst, Uint32Array.of(1, 2), 0, 2, 2);
 * console.assert(dst.join() === "1,2,3,4");
 * ```
 */
export function gatherRows(
  src: Float32Array,
  dst: Float32Array,
  pos: ArrayLike<number>,
  from: number,
  end: number,
  dim: number,
): void {
  let j = from;
  while (j < end) {
    const first = pos[j];
    let last = j + 1;
    while (last < end && pos[last] === first + (last - j)) last++;
    dst.set(src.subarray(first * dim, (first + last - j) * dim), j * dim);
    j = last;
  }
}
