/**
 * Copying rows of `dim` floats between a packed array (row `j` at `j * dim`) and rows at given
 * positions, one bulk `set` per run of consecutive positions: a batch whose positions are in
 * order (the usual case: a remote-only call, or one request's keys at one holder) is one copy.
 *
 * @module
 */

// Bounce buffer for copies that involve shared memory and differ modulo 8 (see copyBytes).
const BOUNCE_BYTES = 64 * 1024;
const bounce = new Uint8Array(BOUNCE_BYTES + 8);

/** Below this many bytes a skewed copy stays one `set` (the pieces would cost more). */
const BOUNCE_BYTES_MIN = 256;

/**
 * `dst.set(src, at)`, fast also when shared memory is involved: V8 copies to or from a
 * SharedArrayBuffer byte by byte (about 6x slower) when source and destination addresses
 * differ modulo 8, so such a copy goes in pieces through a bounce buffer aligned like the
 * shared side (two fast copies instead of one slow one).
 *
 * @example
 * ```ts
 * import { copyBytes } from "./rows.ts";
 * const dst = new Uint8Array(new SharedArrayBuffer(8));
 * copyBytes(Uint8Array.of(1, 2, 3), dst, 5);
 * console.assert(dst.join() === "0,0,0,0,0,1,2,3");
 * ```
 */
export function copyBytes(src: Uint8Array, dst: Uint8Array, at: number): void {
  const srcShared = src.buffer instanceof SharedArrayBuffer;
  const dstShared = dst.buffer instanceof SharedArrayBuffer;
  if (
    (!srcShared && !dstShared) || src.length < BOUNCE_BYTES_MIN ||
    (dst.byteOffset + at - src.byteOffset) % 8 === 0
  ) {
    dst.set(src, at);
    return;
  }
  // Align the bounce buffer with the shared side (both shared: either; one copy stays slow).
  const lead = (srcShared ? src.byteOffset : dst.byteOffset + at) % 8;
  for (let i = 0; i < src.length; i += BOUNCE_BYTES) {
    const piece = src.subarray(i, i + BOUNCE_BYTES);
    bounce.set(piece, lead);
    dst.set(bounce.subarray(lead, lead + piece.length), at + i);
  }
}

/**
 * `dst.set(src, at)` for floats, through {@linkcode copyBytes} where that matters.
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
  if (4 * src.length < BOUNCE_BYTES_MIN || (dst.byteOffset + 4 * at - src.byteOffset) % 8 === 0) {
    dst.set(src, at);
    return;
  }
  copyBytes(
    new Uint8Array(src.buffer, src.byteOffset, src.byteLength),
    new Uint8Array(dst.buffer, dst.byteOffset + 4 * at, src.byteLength),
    0,
  );
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
