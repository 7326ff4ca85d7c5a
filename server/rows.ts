/**
 * Copying rows of `dim` floats between a packed array (row `j` at `j * dim`) and rows at given
 * positions, one bulk `set` per run of consecutive positions: a batch whose positions are in
 * order (the usual case: a remote-only call, or one request's keys at one holder) is one copy.
 *
 * @module
 */

// Bounce buffer for copies that involve shared memory and differ modulo 8 (see copyFloats).
const BOUNCE_FLOATS = 16 * 1024;
const bounce = new Float32Array(BOUNCE_FLOATS + 1);

/**
 * `dst.set(src, at)`, fast also when shared memory is involved: V8 copies to or from a
 * SharedArrayBuffer byte by byte (about 6x slower) when source and destination addresses
 * differ modulo 8, so such a copy goes in pieces through a bounce buffer aligned like the
 * shared side.
 *
 * @example
 * ```ts
 * import { copyFloats } from "./rows.ts";
 * const dst = new Float32Array(new SharedArrayBuffer(16));
 * copyFloats(Float32Array.of(1, 2, 3), dst, 1);
 * console.assert(dst.join() === "0,1,2,3");
 * ```
 */
export function copyFloats(src: Float32Array, dst: Float32Array, at: number): void {
  const srcShared = src.buffer instanceof SharedArrayBuffer;
  const dstShared = dst.buffer instanceof SharedArrayBuffer;
  const skew = (dst.byteOffset + 4 * at - src.byteOffset) % 8;
  if ((!srcShared && !dstShared) || skew === 0 || src.length < 64) {
    dst.set(src, at);
    return;
  }
  // Align the bounce buffer with the shared side (both shared: either; one copy stays slow).
  const sharedOffset = srcShared ? src.byteOffset : dst.byteOffset + 4 * at;
  const lead = (sharedOffset % 8) / 4; // 0 or 1 float
  for (let i = 0; i < src.length; i += BOUNCE_FLOATS) {
    const piece = src.subarray(i, i + BOUNCE_FLOATS);
    bounce.set(piece, lead);
    dst.set(bounce.subarray(lead, lead + piece.length), at + i);
  }
}

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
    copyFloats(src.subarray(j * dim, last * dim), dst, first * dim);
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
