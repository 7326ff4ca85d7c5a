/**
 * The parameter store of one node: per table a slab of the values of the keys that are local
 * now, an index `key -> slot`, and a spinlock per key, all in SharedArrayBuffers so that the
 * server thread and the worker threads of a node share one copy of every value.
 *
 * Who may do what:
 * - any thread: read or update the value of a local key, under that key's lock
 *   ({@linkcode Table.pullLocal}, {@linkcode Table.pushLocal});
 * - the server thread only: insert and remove keys ({@linkcode Table.insert},
 *   {@linkcode Table.remove}), because slot allocation is not thread-safe and because the
 *   relocation protocol must see every change of "is k here" in its own order.
 *
 * @module
 */
import { TABLE_BYTES_MAX, TABLE_DIM_MAX, TABLE_KEYS_MAX, type TableSpec } from "../core/types.ts";
import { copyFloats as copyRows } from "./rows.ts";

/** What crosses to a worker thread so that it can attach to the same memory. */
export interface SharedTable {
  id: number;
  name: string;
  keys: number;
  dim: number;
  index: SharedArrayBuffer;
  locks: SharedArrayBuffer;
  values: SharedArrayBuffer;
  /** `[arrivals]`: see {@linkcode Table.arrivals}. */
  arrivals: SharedArrayBuffer;
}

/** Bytes reserved (not committed) per table at most; a bigger table is a config error. */
export { TABLE_BYTES_MAX };

const SLOTS_GROW_MIN = 1024;

/** One table's local part. Create with {@linkcode Table.create}, share with {@linkcode Table.attach}. */
export class Table {
  readonly id: number;
  readonly name: string;
  readonly keys: number;
  readonly dim: number;
  /** key -> slot, -1 = not here. Written only by the server thread, under the key's lock. */
  readonly index: Int32Array;
  /** 0 = free, 1 = held. */
  readonly locks: Int32Array;
  /**
   * A fixed-length view of the slab. Not a length-tracking view: V8 makes element access
   * through those 35-40x slower (measured). When the slab grows, a slot beyond this view is
   * published only after the growth, so readers compare and {@linkcode Table.refresh}.
   */
  values: Float32Array;
  /**
   * `[n]`, a seqlock over arrivals: {@linkcode Table.insert} adds 1 before it publishes a key's
   * slot and 1 after, so `n` is odd while an insert is under way. A reader that loaded `n` before
   * a batch of reads and finds it unchanged and even afterwards knows that no key arrived in
   * between, so no key of the batch was missed at one position and found at a later one (see
   * WorkerPs.pull: later positions of a missed key must be read after it, not before).
   */
  readonly arrivals: Int32Array;
  readonly shared: SharedTable;
  // Server-thread-only slot bookkeeping.
  #free: Int32Array = new Int32Array(0);
  #freeCount = 0;
  #slots = 0;
  #localCount = 0;

  private constructor(shared: SharedTable) {
    this.shared = shared;
    this.id = shared.id;
    this.name = shared.name;
    this.keys = shared.keys;
    this.dim = shared.dim;
    this.index = new Int32Array(shared.index);
    this.locks = new Int32Array(shared.locks);
    this.arrivals = new Int32Array(shared.arrivals);
    this.values = new Float32Array(shared.values, 0, shared.values.byteLength >> 2);
  }

  /** Re-creates {@linkcode Table.values} over the slab's current length (after growth). */
  refresh(): Float32Array {
    return this.values = new Float32Array(
      this.shared.values,
      0,
      this.shared.values.byteLength >> 2,
    );
  }

  /** Creates an empty table with room for `capacity` keys before it has to grow. */
  static create(id: number, spec: Pick<TableSpec, "name" | "keys" | "dim">, capacity: number) {
    const { name, keys, dim } = spec;
    if (!Number.isInteger(keys) || keys < 1 || keys > TABLE_KEYS_MAX) {
      throw new RangeError(`Table "${name}" has ${keys} keys: expected 1 .. 2^31-1`);
    }
    if (!Number.isInteger(dim) || dim < 1 || dim > TABLE_DIM_MAX) {
      throw new RangeError(`Table "${name}" has dim ${dim}: expected 1 .. 65536`);
    }
    const bytesMax = keys * dim * 4;
    if (bytesMax > TABLE_BYTES_MAX) {
      throw new RangeError(
        `Table "${name}" needs ${bytesMax} bytes (${keys} keys x ${dim} floats), more than the ` +
          `limit of ${TABLE_BYTES_MAX}: use fewer keys or a smaller dim`,
      );
    }
    const slots = Math.min(keys, Math.max(capacity, 1));
    const index = new SharedArrayBuffer(keys * 4);
    new Int32Array(index).fill(-1);
    const table = new Table({
      id,
      name,
      keys,
      dim,
      index,
      locks: new SharedArrayBuffer(keys * 4),
      arrivals: new SharedArrayBuffer(4),
      values: new SharedArrayBuffer(slots * dim * 4, { maxByteLength: bytesMax }),
    });
    table.#slots = slots;
    table.#free = new Int32Array(slots);
    for (let s = 0; s < slots; s++) table.#free[s] = slots - 1 - s;
    table.#freeCount = slots;
    return table;
  }

  /** A view of a table created on another thread (a worker's side). */
  static attach(shared: SharedTable): Table {
    return new Table(shared);
  }

  /** Number of keys local now (server thread's view). */
  get localCount(): number {
    return this.#localCount;
  }

  lock(key: number): void {
    if (!(key >= 0 && key < this.keys)) {
      throw new RangeError(
        `Key ${key} is out of range for table "${this.name}" (0 .. ${this.keys - 1})`,
      );
    }
    // compareExchange is sequentially consistent, so it also orders the value reads and
    // writes inside the critical section against other threads.
    if (Atomics.compareExchange(this.locks, key, 0, 1) !== 0) lockContended(this.locks, key);
  }

  unlock(key: number): void {
    // 2: a thread sleeps on the lock (see lockContended).
    if (Atomics.exchange(this.locks, key, 0) === 2) Atomics.notify(this.locks, key, 1);
  }

  /** True if the key is local now (a snapshot: it may move right after). */
  isLocal(key: number): boolean {
    if (!(key >= 0 && key < this.keys)) {
      throw new RangeError(
        `Key ${key} is out of range for table "${this.name}" (0 .. ${this.keys - 1})`,
      );
    }
    return Atomics.load(this.index, key) >= 0;
  }

  /** Copies a local key's value to `out` at `offset`; false (nothing copied) if not local. */
  pullLocal(key: number, out: Float32Array, offset: number): boolean {
    // A key that is not here (the common case for keys of a remote batch) costs no lock: the
    // answer is a snapshot either way, as under the lock (the key may arrive right after).
    if (!(key >= 0 && key < this.keys)) this.lock(key); // throws the RangeError
    if (Atomics.load(this.index, key) < 0) return false;
    this.lock(key);
    const slot = this.index[key];
    if (slot < 0) {
      this.unlock(key);
      return false;
    }
    const dim = this.dim, base = slot * dim;
    let values = this.values;
    if (base + dim > values.length) values = this.refresh();
    copyFloats(values, base, out, offset, dim);
    this.unlock(key);
    return true;
  }

  /**
   * Copies the values of `keys[from .. end)` to `out` at `offset` (packed, one row per key)
   * while they are local: stops at the first key that is not; returns how many were copied.
   * Keys whose slots are consecutive are copied as one run: their locks are taken with
   * try-locks (a busy one ends the run, nothing waits while holding a lock, so no deadlock with
   * a worker holding locks of its own), then one bulk copy. Each key's value is read under its
   * lock, as {@linkcode Table.pullLocal} reads it.
   */
  pullRun(keys: Uint32Array, from: number, end: number, out: Float32Array, offset: number): number {
    const dim = this.dim;
    let j = from;
    while (j < end) {
      const last = this.#lockRun(keys, j, end);
      if (last === j) break;
      const base = this.#runSlot * dim, n = (last - j) * dim;
      let values = this.values;
      if (base + n > values.length) values = this.refresh();
      copyFloats(values, base, out, offset + (j - from) * dim, n);
      for (let i = j; i < last; i++) this.unlock(keys[i]);
      j = last;
    }
    return j - from;
  }

  /** Adds `delta` at `offset` to a local key's value; false (nothing changed) if not local. */
  pushLocal(key: number, delta: Float32Array, offset: number): boolean {
    // A key that is not here (the common case for keys of a remote batch) costs no lock: the
    // answer is a snapshot either way, as under the lock (the key may arrive right after).
    if (!(key >= 0 && key < this.keys)) this.lock(key); // throws the RangeError
    if (Atomics.load(this.index, key) < 0) return false;
    this.lock(key);
    const slot = this.index[key];
    if (slot < 0) {
      this.unlock(key);
      return false;
    }
    const dim = this.dim, base = slot * dim;
    let values = this.values;
    if (base + dim > values.length) values = this.refresh();
    for (let i = 0; i < dim; i++) values[base + i] += delta[offset + i];
    this.unlock(key);
    return true;
  }

  /**
   * Adds the rows of `deltas` from `offset` (packed, one per key) to the values of
   * `keys[from .. end)` while they are local: stops at the first key that is not; returns how
   * many were updated. Runs of consecutive slots are locked with try-locks and added in one
   * loop, as {@linkcode Table.pullRun} reads them; each key is updated under its lock.
   */
  pushRun(keys: Uint32Array, from: number, end: number, deltas: Float32Array, offset: number) {
    const dim = this.dim;
    let j = from;
    while (j < end) {
      const last = this.#lockRun(keys, j, end);
      if (last === j) break;
      const base = this.#runSlot * dim, n = (last - j) * dim, at = offset + (j - from) * dim;
      let values = this.values;
      if (base + n > values.length) values = this.refresh();
      for (let i = 0; i < n; i++) values[base + i] += deltas[at + i];
      for (let i = j; i < last; i++) this.unlock(keys[i]);
      j = last;
    }
    return j - from;
  }

  /**
   * Locks the run of `keys[from ..]` (before `end`) that are local in consecutive slots, as
   * {@linkcode Table.pullRun} does, and returns their values: a view of the slab, `dim` floats
   * per key, valid until the slab grows (no insert in between). Null, with nothing locked, if
   * `keys[from]` is not local. The caller reads the view and then unlocks the run's keys with
   * {@linkcode Table.unlockRun}: this lets a reader copy the values once, where they go (e.g.
   * into a frame), instead of first into a buffer of its own.
   */
  lockRunValues(keys: Uint32Array, from: number, end: number): Float32Array | null {
    const last = this.#lockRun(keys, from, end);
    if (last === from) return null;
    const dim = this.dim, base = this.#runSlot * dim, n = (last - from) * dim;
    let values = this.values;
    if (base + n > values.length) values = this.refresh();
    return values.subarray(base, base + n);
  }

  /** Unlocks `keys[from .. end)` (a run {@linkcode Table.lockRunValues} locked). */
  unlockRun(keys: Uint32Array, from: number, end: number): void {
    for (let i = from; i < end; i++) this.unlock(keys[i]);
  }

  /** The first slot of the run {@linkcode Table.#lockRun} locked last. */
  #runSlot = -1;

  /**
   * Locks the run of `keys[j ..]` (before `end`) that are local in consecutive slots: the first
   * key with a waiting lock, the others with try-locks (a busy or out-of-place key ends the run).
   * Returns the run's end (its first slot in `#runSlot`), or `j` with nothing locked if
   * `keys[j]` is not local. The caller unlocks `keys[j .. end)`.
   */
  #lockRun(keys: Uint32Array, j: number, end: number): number {
    const index = this.index, locks = this.locks, first = keys[j];
    this.lock(first);
    const slot = index[first];
    if (slot < 0) {
      this.unlock(first);
      return j;
    }
    let last = j + 1;
    while (last < end) {
      const key = keys[last];
      // An out-of-range key ends the run; lock() throws for it when the run after starts.
      if (!(key < this.keys) || Atomics.compareExchange(locks, key, 0, 1) !== 0) break;
      if (index[key] !== slot + (last - j)) {
        this.unlock(key);
        break;
      }
      last++;
    }
    this.#runSlot = slot;
    return last;
  }

  /** Server thread: makes `key` local with the value at `src[offset..]`. */
  insert(key: number, src: Float32Array, offset: number): void {
    if (this.index[key] >= 0) {
      throw new Error(`Invariant: insert of key ${key} of table "${this.name}" that is local`);
    }
    if (this.#freeCount === 0) this.#grow();
    const slot = this.#free[--this.#freeCount];
    const dim = this.dim, base = slot * dim;
    let values = this.values;
    if (base + dim > values.length) values = this.refresh();
    for (let i = 0; i < dim; i++) values[base + i] = src[offset + i];
    // Odd before the slot is published, even after (see arrivals).
    Atomics.add(this.arrivals, 0, 1);
    this.lock(key);
    this.index[key] = slot;
    this.unlock(key);
    Atomics.add(this.arrivals, 0, 1);
    this.#localCount++;
  }

  /** Server thread: removes a local key, copying its value to `dst` at `offset`. */
  remove(key: number, dst: Float32Array, offset: number): void {
    this.lock(key);
    const slot = this.index[key];
    if (slot < 0) {
      this.unlock(key);
      throw new Error(`Invariant: remove of key ${key} of table "${this.name}" that is not local`);
    }
    const dim = this.dim, base = slot * dim;
    let values = this.values;
    if (base + dim > values.length) values = this.refresh();
    for (let i = 0; i < dim; i++) dst[offset + i] = values[base + i];
    this.index[key] = -1;
    this.unlock(key);
    this.#free[this.#freeCount++] = slot;
    this.#localCount--;
  }

  #grow(): void {
    const old = this.#slots;
    const slots = Math.min(this.keys, Math.max(old * 2, old + SLOTS_GROW_MIN));
    if (slots <= old) throw new Error(`Invariant: table "${this.name}" full at ${old} slots`);
    this.shared.values.grow(slots * this.dim * 4);
    this.refresh();
    const free = new Int32Array(slots);
    free.set(this.#free.subarray(0, this.#freeCount));
    for (let s = slots - 1; s >= old; s--) free[this.#freeCount++] = s;
    this.#free = free;
    this.#slots = slots;
  }
}

/** Spins on a busy key lock before sleeping on it. */
const LOCK_SPINS = 2000;
/** A sleeper re-checks after this long even without a wake-up (a safety net, not a poll). */
const LOCK_SLEEP_MS = 5;

/**
 * The slow path of `Table.lock`: the key's lock is held by another thread. A lock is held for a
 * few dozen floats, never across an await, so a short spin normally gets it. But a node runs
 * more threads than it may have cores (4 nodes x 2 threads on 2 cores in the benchmarks): if
 * the holder is descheduled, spinning would burn the rest of this thread's time slice (measured:
 * 3-4% of every thread's samples in a 4-node w2v job). So after the spin it sleeps in the kernel
 * (`Atomics.wait`) with the lock marked 2 ("a thread sleeps"), and `unlock` wakes one sleeper.
 * This is the classic three-state futex mutex (Drepper, "Futexes are tricky", mutex 2).
 */
function lockContended(locks: Int32Array, key: number): void {
  for (let i = 0; i < LOCK_SPINS; i++) {
    if (Atomics.load(locks, key) === 0 && Atomics.compareExchange(locks, key, 0, 1) === 0) return;
  }
  // Taken with 2, not 1: other sleepers may remain, and this thread's unlock must wake them.
  while (Atomics.exchange(locks, key, 2) !== 0) Atomics.wait(locks, key, 2, LOCK_SLEEP_MS);
}

/**
 * Up to this many floats a JS loop copies faster than `set` of a `subarray` (which allocates
 * a view, then memcpy): measured per key with its lock taken, 10,000 keys, from a
 * SharedArrayBuffer slab: dim 10 loop 26 ns vs set 59 ns; dim 100 loop 92 ns vs set 71 ns
 * (the loop costs about 0.75 ns per float, set about 55 ns plus 0.13 ns per float).
 */
const COPY_LOOP_FLOATS_MAX = 80;
/** The same for addresses that differ modulo 8 (measured: loop 66 ns, bounce 221 ns at 100). */
const COPY_LOOP_FLOATS_MAX_SKEWED = 256;

/**
 * `dst[to .. to+n) = src[from .. from+n)`, by loop or bulk copy, whichever is faster for n. A
 * bulk copy out of the slab (shared memory) to an address that differs from it modulo 8 (odd
 * `dim`, or `out` at an odd offset) goes through rows.ts's bounce buffer: V8 would copy it byte
 * by byte (a local pull of dim 1000 took 1.3 us instead of 0.23); up to 256 floats a loop is
 * faster than either.
 */
function copyFloats(src: Float32Array, from: number, dst: Float32Array, to: number, n: number) {
  if (n <= COPY_LOOP_FLOATS_MAX) {
    for (let i = 0; i < n; i++) dst[to + i] = src[from + i];
  } else if ((src.byteOffset + 4 * from - dst.byteOffset - 4 * to) % 8 === 0) {
    dst.set(src.subarray(from, from + n), to);
  } else if (n <= COPY_LOOP_FLOATS_MAX_SKEWED) {
    for (let i = 0; i < n; i++) dst[to + i] = src[from + i];
  } else {
    copyRows(src.subarray(from, from + n), dst, to);
  }
}

// --- deterministic initialisation -------------------------------------------------------

// In core/ so that the plain baseline (tasks/mf_plain.ts) starts from the very same values.
export { initValue } from "../core/init.ts";
