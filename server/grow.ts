/**
 * Growable typed buffers for batching entries without per-entry allocation: they double when
 * full and are reused after every flush (`length = 0`).
 *
 * @module
 */

/** An append-only Uint32 list backed by one reusable typed array. */
export class U32List {
  data: Uint32Array;
  length = 0;
  constructor(capacity = 64) {
    this.data = new Uint32Array(capacity);
  }
  push(x: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = x;
  }
  /** Makes room for `n` more entries (doubling). */
  #reserve(n: number): void {
    if (this.length + n <= this.data.length) return;
    let cap = this.data.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint32Array(cap);
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
  /** Appends `src[from .. from+n)`. */
  pushRange(src: Uint32Array, from: number, n: number): void {
    this.#reserve(n);
    this.data.set(src.subarray(from, from + n), this.length);
    this.length += n;
  }
  /** Appends `n` entries: `first`, `first + step`, ... (step 0: `n` copies of `first`). */
  pushSeries(first: number, step: number, n: number): void {
    this.#reserve(n);
    const data = this.data, at = this.length;
    for (let i = 0; i < n; i++) data[at + i] = first + i * step;
    this.length += n;
  }
  /** A view of the entries; valid until the next push after a reset. */
  view(): Uint32Array {
    return this.data.subarray(0, this.length);
  }
}

/** An append-only Float32 list of fixed-size rows. */
export class F32Rows {
  data: Float32Array;
  length = 0; // floats
  constructor(capacity = 256) {
    this.data = new Float32Array(capacity);
  }
  /** Appends `src[offset .. offset+n]`. */
  push(src: Float32Array, offset: number, n: number): void {
    this.#reserve(n);
    this.data.set(src.subarray(offset, offset + n), this.length);
    this.length += n;
  }
  /** Appends `n` floats and returns the offset where the caller writes them. */
  alloc(n: number): number {
    this.#reserve(n);
    const at = this.length;
    this.length += n;
    return at;
  }
  view(): Float32Array {
    return this.data.subarray(0, this.length);
  }
  #reserve(n: number): void {
    if (this.length + n <= this.data.length) return;
    let cap = this.data.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Float32Array(cap);
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
}
