/**
 * The per-worker cache of the bounded-staleness mode (`ps.mode: stale`, SSP as in Petuum): the
 * values this worker pulled, each with the clock it is fresh to, plus the worker's own pushes
 * since its last flush (added to the cached value at once, so a worker always reads its own
 * writes, and kept apart as the delta that `clock()` sends).
 *
 * Memory: one `Int32Array` key -> slot per table (4 bytes per key of the table), and per cached
 * key its value, its buffered delta and a tag. Slots are never freed during a job: the cache
 * holds at most the keys the worker touched, at most the table.
 *
 * @module
 */

/** The tag of a slot whose value is not valid (only pushed to, or invalidated). */
export const TAG_INVALID = -0x7fffffff;

/** One table's part of a worker's cache. */
export class CacheTable {
  readonly dim: number;
  /** key -> slot, -1 = not cached. */
  readonly slotOf: Int32Array;
  /** slot -> key. */
  keyOf = new Uint32Array(64);
  /** slot -> the clock the value is fresh to (every worker's pushes of earlier clocks in it). */
  tag = new Int32Array(64);
  /** slot -> value (`dim` floats), including this worker's buffered pushes. */
  vals: Float32Array;
  /** slot -> this worker's pushes since the last flush (`dim` floats). */
  delta: Float32Array;
  /** slot -> 1 if `delta` holds something to flush. */
  dirty = new Uint8Array(64);
  /** The dirty slots, in the order they became dirty. */
  dirtyList = new Uint32Array(64);
  dirtyCount = 0;
  /** Slots in use. */
  count = 0;

  constructor(keys: number, dim: number) {
    this.dim = dim;
    this.slotOf = new Int32Array(keys).fill(-1);
    this.vals = new Float32Array(64 * dim);
    this.delta = new Float32Array(64 * dim);
  }

  /** The slot of `key`, created (with an invalid tag and a zero delta) if absent. */
  slot(key: number): number {
    const s = this.slotOf[key];
    if (s >= 0) return s;
    if (this.count === this.keyOf.length) this.#grow();
    const n = this.count++;
    this.slotOf[key] = n;
    this.keyOf[n] = key;
    this.tag[n] = TAG_INVALID;
    return n;
  }

  /** Adds `src[offset .. offset+dim]` to the slot's value and buffered delta. */
  addDelta(slot: number, src: Float32Array, offset: number): void {
    const dim = this.dim, at = slot * dim, vals = this.vals, delta = this.delta;
    for (let f = 0; f < dim; f++) {
      const d = src[offset + f];
      vals[at + f] += d;
      delta[at + f] += d;
    }
    if (this.dirty[slot] === 0) {
      this.dirty[slot] = 1;
      this.dirtyList[this.dirtyCount++] = slot;
    }
  }

  /** Sets the slot's value to `src[offset ..]` plus the buffered delta, fresh to `tag`. */
  fill(slot: number, src: Float32Array, offset: number, tag: number): void {
    const dim = this.dim, at = slot * dim, vals = this.vals, delta = this.delta;
    for (let f = 0; f < dim; f++) vals[at + f] = src[offset + f] + delta[at + f];
    this.tag[slot] = tag;
  }

  /** Marks every value stale (after a barrier every worker must see every other's pushes). */
  invalidate(): void {
    this.tag.fill(TAG_INVALID, 0, this.count);
  }

  /** Forgets the buffered deltas (after they were flushed). */
  clearDirty(): void {
    const delta = this.delta, dim = this.dim;
    for (let i = 0; i < this.dirtyCount; i++) {
      const s = this.dirtyList[i];
      this.dirty[s] = 0;
      delta.fill(0, s * dim, s * dim + dim);
    }
    this.dirtyCount = 0;
  }

  #grow(): void {
    const cap = this.keyOf.length * 2, dim = this.dim;
    const grow32 = <T extends Uint32Array | Int32Array | Uint8Array | Float32Array>(
      a: T,
      n: number,
    ): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a as any);
      return b;
    };
    this.keyOf = grow32(this.keyOf, cap);
    this.tag = grow32(this.tag, cap);
    this.dirty = grow32(this.dirty, cap);
    this.dirtyList = grow32(this.dirtyList, cap);
    this.vals = grow32(this.vals, cap * dim);
    this.delta = grow32(this.delta, cap * dim);
  }
}
