/**
 * The worker API: what a task's training loop calls to read and update parameters.
 *
 * Every operation takes a numeric table id (from {@linkcode ParameterServer.table}), keys as a
 * `Uint32Array` or `Int32Array`, and values as one flat `Float32Array` in key order
 * (`keys.length * dim` floats).
 *
 * An operation whose keys are all local to this node completes synchronously and returns
 * `undefined` without allocating anything. Otherwise it returns a Promise that resolves when the
 * operation is complete (for `pull`: when `out` is filled). Awaiting a push or a localize is
 * optional; {@linkcode ParameterServer.wait} waits for everything this worker has outstanding.
 *
 * @module
 */

/** Keys of one table, as unsigned or signed 32-bit integers. */
export type Keys = Uint32Array | Int32Array;

/** What `ps.table(name)` returns: the numeric id used by every operation, and the shape. */
export interface TableInfo {
  readonly id: number;
  readonly name: string;
  readonly keys: number;
  readonly dim: number;
}

/** Counters of one worker, reset by {@linkcode ParameterServer.takeCounters}. */
export interface AccessCounters {
  /** Key accesses (pull or push of one key) served from this node's memory. */
  local: number;
  /** Key accesses that went through the server thread (remote or in transfer). */
  remote: number;
}

/** The parameter server as seen from a worker thread. */
export interface ParameterServer {
  /** Looks a table up by name; throws a `RangeError` naming the known tables if absent. */
  table(name: string): TableInfo;
  /**
   * Copies the values of `keys` into `out` (key order, `dim` floats each). `keys` is read during
   * the call only; `out` is written until the returned Promise resolves. A large batch whose
   * keys are all remote is faster with `out` over a `SharedArrayBuffer`: the node's server
   * thread then writes the values straight into it (one copy of every value less; 4 MB in
   * `lapse bench localize`: about 2.0 ms instead of 3).
   */
  pull(table: number, keys: Keys, out: Float32Array): Promise<void> | undefined;
  /**
   * Adds `deltas` (key order, `dim` floats each) to the values of `keys`. Both arrays are read
   * during the call only (non-local parts are copied into the request), so the caller may reuse
   * them at once, even before the returned Promise resolves.
   */
  push(table: number, keys: Keys, deltas: Float32Array): Promise<void> | undefined;
  /**
   * Asks for `keys` to be moved to this node. Resolves when they are local (or immediately
   * when they already are, returning `undefined`). A no-op in the classic modes.
   */
  localize(table: number, keys: Keys): Promise<void> | undefined;
  /** Copies one key's value into `out` at `offset` if the key is local now; never blocks. */
  pullIfLocal(table: number, key: number, out: Float32Array, offset?: number): boolean;
  /** Adds one key's delta (from `delta` at `offset`) if the key is local now; never blocks. */
  pushIfLocal(table: number, key: number, delta: Float32Array, offset?: number): boolean;
  /**
   * Zero-copy access for the hottest loops: if `key` is local, locks it and returns the offset
   * of its `dim` floats in {@linkcode ParameterServer.values}`(table)`; read and update them in
   * place, then {@linkcode ParameterServer.release} the key. Returns -1 (holding nothing) if the
   * key is not local. Rules: never hold a key across an `await`; hold at most one key per table
   * and acquire in increasing table id order (the server thread holds one lock at a time, so
   * these rules exclude deadlock). An update made this way is atomic for the key.
   *
   * @example
   * ```ts ignore
   * const at = ps.acquire(tW, i);
   * if (at >= 0) {
   *   const w = ps.values(tW);
   *   for (let f = 0; f < dim; f++) w[at + f] *= 0.5;
   *   ps.release(tW, i);
   * }
   * ```
   */
  acquire(table: number, key: number): number;
  /** Unlocks a key locked by {@linkcode ParameterServer.acquire}. */
  release(table: number, key: number): void;
  /**
   * The value slab of `table` on this node (see {@linkcode ParameterServer.acquire}). Fetch it
   * after `acquire`: the slab grows as keys arrive, and an older array may not cover the offset.
   */
  values(table: number): Float32Array;
  /** True if `key` of `table` is held by this node right now. */
  isLocal(table: number, key: number): boolean;
  /** Waits for all workers of the job. */
  barrier(): Promise<void>;
  /** Waits for every operation this worker issued and has not awaited. */
  wait(): Promise<void>;
  /**
   * Ends this worker's current clock. Tasks call it at natural points (a subepoch, every
   * `clock_every` data points). It matters only in the bounded-staleness mode (`ps.mode:
   * stale`), where it flushes the worker's buffered pushes; in every other mode it is a no-op
   * that returns `undefined`.
   */
  clock(): Promise<void> | undefined;
  /** Access counters since the last call; resets them. */
  takeCounters(): AccessCounters;
}
