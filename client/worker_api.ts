/**
 * The worker side of the parameter server: local keys are read and updated in shared memory
 * under their key lock, everything else goes to the node's server thread as one message per
 * call.
 *
 * @module
 */
import type { PsMode } from "../core/types.ts";
import { type SharedTable, Table } from "../server/store.ts";
import type { AccessCounters, Keys, ParameterServer, TableInfo } from "../core/parameter_server.ts";
import type { ToServer, ToWorker } from "../server/worker_protocol.ts";
import { CacheTable } from "./stale_cache.ts";
import { BufferPool } from "../server/buffer_pool.ts";
import { gatherRows, scatterRows } from "../server/rows.ts";

export type { ToServer, ToWorker };

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
  /** For pulls: where the answer goes. */
  out: Float32Array | null;
  pos: Uint32Array | null;
  dim: number;
  /** Stale mode, pulls: the table and keys asked for (their answers go into the cache). */
  staleTable?: number;
  staleKeys?: Uint32Array;
}

/** The clock of a worker that finished (see PsCore's CLOCK_IDLE). */
const CLOCK_IDLE = 0x3fffffff;

/** Settings of the bounded-staleness mode (`ps.mode: stale`). */
export interface StaleOptions {
  /** `ps.staleness`: clocks a cached value may be old. */
  staleness: number;
  /** The node's Int32Array `[least clock every worker has flushed up to]`. */
  clocks: SharedArrayBuffer;
}

/** Most keys in one call; a larger batch is a RangeError (split it). */
export const BATCH_KEYS_MAX_DEFAULT = 1_000_000;

/** The {@linkcode ParameterServer} of one worker thread. */
export class WorkerPs implements ParameterServer {
  readonly #tables: Table[];
  readonly #infos: Map<string, TableInfo>;
  readonly #post: (msg: ToServer, transfer?: Transferable[]) => void;
  readonly #pending = new Map<number, Pending>();
  readonly #localAccess: boolean;
  readonly #localize: boolean;
  readonly #batchMax: number;
  #nextId = 1;
  #missPos = new Uint32Array(1024);
  /**
   * Buffers of pull answers, free once copied out, smallest first. A large request takes one
   * instead of fresh memory and transfers it to the server thread, which reuses request
   * buffers for later answers (PsCore.workerPull): the memory of large pulls and pushes
   * circulates instead of being allocated, page-faulted and collected per call.
   */
  readonly #spares = new BufferPool();
  #local = 0;
  #remote = 0;
  // Stale mode: this worker's clock, the caches (one per table), the node's flushed clock.
  readonly #caches: CacheTable[] | null = null;
  readonly #staleness: number = 0;
  readonly #clocks: Int32Array | null = null;
  #clock = 0;
  /** Barriers completed (stale mode: tells a worker's idleness in a barrier from old news). */
  #barriers = 0;
  /** The request id of the running barrier and the clock of its answer (stale mode). */
  #barrierId = -1;
  #barrierClock = 0;

  constructor(
    tables: SharedTable[],
    mode: PsMode,
    post: (msg: ToServer, transfer?: Transferable[]) => void,
    batchKeysMax = BATCH_KEYS_MAX_DEFAULT,
    stale?: StaleOptions,
  ) {
    this.#tables = tables.map((t) => Table.attach(t));
    this.#infos = new Map(
      tables.map((t) => [t.name, { id: t.id, name: t.name, keys: t.keys, dim: t.dim }]),
    );
    this.#post = post;
    this.#localAccess = mode !== "classic_remote";
    this.#localize = mode === "lapse";
    this.#batchMax = batchKeysMax;
    if (mode === "stale") {
      if (stale === undefined) throw new TypeError("ps.mode stale needs the staleness settings");
      this.#caches = this.#tables.map((t) => new CacheTable(t.keys, t.dim));
      this.#staleness = stale.staleness;
      this.#clocks = new Int32Array(stale.clocks);
    }
  }

  /** This worker's clock: how often it called `clock()` (stale mode; 0 otherwise). */
  get currentClock(): number {
    return this.#clock;
  }

  /** Handles a message of the server thread; wire it to the worker's `onmessage`. */
  onServerMessage(msg: ToWorker): void {
    const p = this.#pending.get(msg.id);
    if (p === undefined) throw new Error(`Invariant: reply for unknown request ${msg.id}`);
    this.#pending.delete(msg.id);
    if (msg.op === "error") {
      p.reject(new Error(msg.message));
      return;
    }
    if (p.staleKeys !== undefined) {
      this.#staleReply(p, msg.vals!, msg.clock ?? 0);
      this.#keepSpare(msg.vals!.buffer);
    } else if (msg.id === this.#barrierId) {
      this.#barrierClock = msg.clock ?? 0;
    } else if (p.out !== null) {
      // One bulk copy per run of consecutive positions (a remote-only call is one run).
      const vals = msg.vals!, pos = p.pos!;
      scatterRows(vals, p.out, pos, 0, pos.length, p.dim);
      this.#keepSpare(vals.buffer);
    }
    // A push's deltas, given back: their buffer serves a later large request.
    if (msg.spare !== undefined) this.#keepSpare(msg.spare.buffer);
    p.resolve();
  }

  table(name: string): TableInfo {
    const info = this.#infos.get(name);
    if (info === undefined) {
      throw new RangeError(
        `Unknown table "${name}": this job has ${
          [...this.#infos.keys()].map((n) => `"${n}"`).join(", ")
        }`,
      );
    }
    return info;
  }

  #t(table: number): Table {
    const t = this.#tables[table];
    if (t === undefined) {
      throw new RangeError(`Unknown table id ${table}: expected 0 .. ${this.#tables.length - 1}`);
    }
    return t;
  }

  #checkBatch(keys: Keys, t: Table, floats: number, what: string): void {
    if (keys.length > this.#batchMax) {
      throw new RangeError(
        `${what} of ${keys.length} keys is above ps.batch_keys_max (${this.#batchMax}): split the batch`,
      );
    }
    if (floats !== keys.length * t.dim) {
      throw new RangeError(
        `${what} of ${keys.length} keys of table "${t.name}" needs ${
          keys.length * t.dim
        } floats, got ${floats}`,
      );
    }
  }

  /**
   * Posts `msg` and registers its answer. `transfer` lists the buffers of arrays that were
   * allocated for this message alone: they move to the server thread instead of being copied.
   */
  #request(
    msg: ToServer,
    out: Float32Array | null,
    pos: Uint32Array | null,
    dim: number,
    transfer?: Transferable[],
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.set((msg as { id: number }).id, { resolve, reject, out, pos, dim });
      if (transfer) this.#post(msg, transfer);
      else this.#post(msg);
    });
  }

  /** Keeps an answer's buffer for a later request (bounded; small ones are not worth it). */
  #keepSpare(buf: ArrayBufferLike): void {
    this.#spares.give(buf);
  }

  /** The smallest spare buffer of at least `bytes` bytes (taken), or null. */
  #spareFor(bytes: number): ArrayBuffer | null {
    return this.#spares.take(bytes);
  }

  #missing(n: number): Uint32Array {
    if (this.#missPos.length < n) {
      this.#missPos = new Uint32Array(Math.max(n, this.#missPos.length * 2));
    }
    return this.#missPos;
  }

  pull(table: number, keys: Keys, out: Float32Array): Promise<void> | undefined {
    const t = this.#t(table), dim = t.dim, n = keys.length;
    this.#checkBatch(keys, t, Math.min(out.length, n * dim), "Pull");
    if (this.#caches !== null) return this.#stalePull(table, t, keys, out);
    let missing = 0;
    if (this.#localAccess) {
      const miss = this.#missing(n);
      // A key that arrived during the loop may have been missed at one position and read at a
      // later one: see #missAfter. The seqlock (Table.arrivals) tells, at two atomic loads per
      // call, whether any key arrived meanwhile. A single key cannot (its call is the hot path
      // of per-key loops: it skips the loads).
      const arrivals = t.arrivals, before = n > 1 ? Atomics.load(arrivals, 0) : 0;
      for (let i = 0; i < n; i++) {
        if (!t.pullLocal(keys[i], out, i * dim)) miss[missing++] = i;
      }
      if (missing === 0) {
        this.#local += n;
        return undefined;
      }
      if (n > 1 && ((before & 1) !== 0 || Atomics.load(arrivals, 0) !== before)) {
        missing = this.#missAfter(keys, n, missing);
      }
      this.#local += n - missing;
    } else {
      missing = n;
      const miss = this.#missing(n);
      for (let i = 0; i < n; i++) miss[i] = i;
    }
    this.#remote += missing;
    if (missing === n && out.buffer instanceof SharedArrayBuffer) {
      // Every key is remote and `out` is shared memory: the server thread writes the values
      // there itself (no answer array, no copy after the answer).
      const remoteKeys = new Uint32Array(n);
      remoteKeys.set(keys);
      const id = this.#nextId++;
      const into = out.subarray(0, n * dim);
      return this.#request({ op: "pull", id, tb: table, keys: remoteKeys, into }, null, null, dim, [
        remoteKeys.buffer,
      ]);
    }
    const pos = this.#missPos.slice(0, missing);
    // The keys travel at the front of a spare buffer as large as the answer, if there is one:
    // the server thread answers a later pull in it (see #spares).
    const spare = this.#spareFor(missing * dim * 4);
    const remoteKeys = spare === null
      ? new Uint32Array(missing)
      : new Uint32Array(spare, 0, missing);
    for (let j = 0; j < missing; j++) remoteKeys[j] = keys[pos[j]];
    const id = this.#nextId++;
    return this.#request({ op: "pull", id, tb: table, keys: remoteKeys }, out, pos, dim, [
      remoteKeys.buffer,
    ]);
  }

  /**
   * Some key arrived while {@linkcode WorkerPs.pull} read `keys[0 .. n)` locally, `missing`
   * positions of which (in `#missPos`, ascending) go to the server thread. A key missed at
   * position i and found at a later j was read locally before the server thread reads it for i:
   * j would hold an older value than i (a read "going backwards" within one call, as pscheck
   * saw about once in 100 loaded runs). So every position after a key's first miss joins the
   * misses: the server thread then reads all of them in position order, at one place. Returns
   * the new count. Rare (an insert during the loop), so it may allocate.
   */
  #missAfter(keys: Keys, n: number, missing: number): number {
    const miss = this.#missPos;
    const first = new Map<number, number>();
    for (let j = 0; j < missing; j++) {
      const key = keys[miss[j]];
      if (!first.has(key)) first.set(key, miss[j]);
    }
    const next = new Uint32Array(n);
    let m = 0;
    for (let i = 0, j = 0; i < n; i++) {
      if (j < missing && miss[j] === i) {
        next[m++] = i;
        j++;
        continue;
      }
      const f = first.get(keys[i]);
      if (f !== undefined && f < i) next[m++] = i;
    }
    miss.set(next.subarray(0, m));
    return m;
  }

  push(table: number, keys: Keys, deltas: Float32Array): Promise<void> | undefined {
    const t = this.#t(table), dim = t.dim, n = keys.length;
    this.#checkBatch(keys, t, deltas.length, "Push");
    if (this.#caches !== null) {
      // Into this worker's cache and buffer; clock() sends them.
      const c = this.#caches[table];
      for (let i = 0; i < n; i++) c.addDelta(c.slot(keys[i]), deltas, i * dim);
      this.#local += n;
      return undefined;
    }
    let missing = 0;
    const miss = this.#missing(n);
    if (this.#localAccess) {
      for (let i = 0; i < n; i++) {
        if (!t.pushLocal(keys[i], deltas, i * dim)) miss[missing++] = i;
      }
      this.#local += n - missing;
      if (missing === 0) return undefined;
    } else {
      for (let i = 0; i < n; i++) miss[i] = i;
      missing = n;
    }
    this.#remote += missing;
    const remoteKeys = new Uint32Array(missing);
    const spare = this.#spareFor(missing * dim * 4);
    const vals = spare === null
      ? new Float32Array(missing * dim)
      : new Float32Array(spare, 0, missing * dim);
    for (let j = 0; j < missing; j++) remoteKeys[j] = keys[miss[j]];
    // One bulk copy per run of consecutive missing keys (a remote-only call is one run).
    gatherRows(deltas, vals, miss, 0, missing, dim);
    const id = this.#nextId++;
    return this.#request(
      { op: "push", id, tb: table, keys: remoteKeys, vals },
      null,
      null,
      dim,
      [remoteKeys.buffer, vals.buffer],
    );
  }

  localize(table: number, keys: Keys): Promise<void> | undefined {
    const t = this.#t(table);
    if (!this.#localize) return undefined;
    this.#checkBatch(keys, t, keys.length * t.dim, "Localize");
    let missing = 0;
    const miss = this.#missing(keys.length);
    for (let i = 0; i < keys.length; i++) {
      if (!t.isLocal(keys[i])) miss[missing++] = i;
    }
    if (missing === 0) return undefined;
    const remoteKeys = new Uint32Array(missing);
    for (let j = 0; j < missing; j++) remoteKeys[j] = keys[miss[j]];
    const id = this.#nextId++;
    return this.#request({ op: "localize", id, tb: table, keys: remoteKeys }, null, null, 0, [
      remoteKeys.buffer,
    ]);
  }

  // Stale mode: every access goes through the worker's cache, so the shared-memory fast paths
  // say "not local" and callers take pull/push.

  pullIfLocal(table: number, key: number, out: Float32Array, offset = 0): boolean {
    if (!this.#localAccess || this.#caches !== null) return false;
    const ok = this.#t(table).pullLocal(key, out, offset);
    if (ok) this.#local++;
    return ok;
  }

  pushIfLocal(table: number, key: number, delta: Float32Array, offset = 0): boolean {
    if (!this.#localAccess || this.#caches !== null) return false;
    const ok = this.#t(table).pushLocal(key, delta, offset);
    if (ok) this.#local++;
    return ok;
  }

  acquire(table: number, key: number): number {
    if (!this.#localAccess || this.#caches !== null) return -1;
    const t = this.#tables[table];
    t.lock(key);
    const slot = t.index[key];
    if (slot < 0) {
      t.unlock(key);
      return -1;
    }
    this.#local++;
    const at = slot * t.dim;
    // The slot may be beyond this thread's view if the slab grew: values() must cover it.
    if (at + t.dim > t.values.length) t.refresh();
    return at;
  }

  release(table: number, key: number): void {
    this.#tables[table].unlock(key);
  }

  values(table: number): Float32Array {
    return this.#t(table).values;
  }

  isLocal(table: number, key: number): boolean {
    return this.#t(table).isLocal(key);
  }

  async barrier(): Promise<void> {
    // Everything this worker issued is complete before it counts as arrived, so that after
    // the barrier every worker sees every other worker's pushes.
    await this.wait();
    if (this.#caches === null) {
      const id = this.#nextId++;
      await this.#request({ op: "barrier", id }, null, null, 0);
      return;
    }
    // Stale mode: the buffered pushes go out (and are applied) first. While in the barrier
    // this worker is idle: it holds back no pull of a worker that has not passed this barrier
    // (it pushes nothing), so that a worker with more clocks before the barrier cannot wait
    // for it forever (see PsCore's #canServe). Afterwards every worker
    // continues from the largest clock of all: it pushes nothing for the clocks it skips, so
    // values read meanwhile, fresh to its clock at the barrier, miss none of its updates. The
    // cache is dropped: after a barrier every value is fresh.
    this.#flush();
    await this.wait();
    this.#post({ op: "clock", clock: this.#clock, idleAt: this.#barriers });
    const id = this.#barrierId = this.#nextId++;
    await this.#request({ op: "barrier", id, clock: this.#clock }, null, null, 0);
    this.#clock = Math.max(this.#clock, this.#barrierClock);
    this.#barriers++;
    this.#post({ op: "clock", clock: this.#clock });
    for (const c of this.#caches) c.invalidate();
  }

  /**
   * Waits in a checkpoint (see TaskContext.checkpoint): everything this worker issued is
   * complete first, then the node writes its part once every worker of the cluster is here.
   */
  async checkpointBarrier(epoch: number, state: unknown): Promise<void> {
    await this.wait();
    const id = this.#nextId++;
    await this.#request({ op: "checkpoint", id, epoch, state }, null, null, 0);
  }

  /**
   * Stale mode: flushes the buffered pushes and ends this worker's clock (after its
   * outstanding pulls, whose answers must not miss the flushed pushes). A no-op otherwise.
   */
  clock(): Promise<void> | undefined {
    if (this.#caches === null) return undefined;
    if (this.#pending.size > 0) return this.wait().then(() => this.#tick());
    this.#tick();
    return undefined;
  }

  /**
   * The worker's training loop is over: stale mode flushes what is buffered and stops holding
   * back anybody's pulls; then everything outstanding is awaited.
   */
  async finish(): Promise<void> {
    await this.wait();
    if (this.#caches === null) return;
    this.#flush();
    await this.wait();
    this.#post({ op: "clock", clock: CLOCK_IDLE, idleAt: CLOCK_IDLE });
  }

  #tick(): void {
    this.#flush();
    this.#clock++;
    // Posted after the pushes: the node tells the others after it has sent them.
    this.#post({ op: "clock", clock: this.#clock });
  }

  /** Sends the buffered pushes: local keys straight into shared memory, others batched. */
  #flush(): void {
    const caches = this.#caches!;
    for (let tb = 0; tb < caches.length; tb++) {
      const c = caches[tb], t = this.#tables[tb], dim = t.dim, n = c.dirtyCount;
      if (n === 0) continue;
      let keys = new Uint32Array(Math.min(n, this.#batchMax));
      let vals = new Float32Array(keys.length * dim);
      let m = 0;
      const send = () => {
        const id = this.#nextId++;
        const k = keys.subarray(0, m), v = vals.subarray(0, m * dim);
        this.#request({ op: "push", id, tb, keys: k, vals: v }, null, null, dim, [
          keys.buffer,
          vals.buffer,
        ]).catch(() => {}); // failures surface in wait()
        keys = new Uint32Array(Math.min(n, this.#batchMax));
        vals = new Float32Array(keys.length * dim);
        m = 0;
      };
      for (let i = 0; i < n; i++) {
        const s = c.dirtyList[i], key = c.keyOf[s];
        if (this.#localAccess && t.pushLocal(key, c.delta, s * dim)) continue;
        keys[m] = key;
        vals.set(c.delta.subarray(s * dim, s * dim + dim), m * dim);
        if (++m === keys.length) send();
      }
      if (m > 0) send();
      c.clearDirty();
    }
  }

  /**
   * Stale mode pull: from the cache while the value is fresh to at least `clock - staleness`;
   * a local key straight from shared memory when every worker has flushed that far; the rest
   * from the server thread, which holds it back at the key's owner until they have.
   */
  #stalePull(
    table: number,
    t: Table,
    keys: Keys,
    out: Float32Array,
  ): Promise<void> | undefined {
    const c = this.#caches![table], dim = t.dim, n = keys.length, clock = this.#clock;
    const need = Math.max(0, clock - this.#staleness);
    const miss = this.#missing(n);
    let missing = 0;
    for (let i = 0; i < n; i++) {
      const key = keys[i];
      let s = c.slotOf[key];
      if (s < 0 || c.tag[s] < need) {
        const flushed = Atomics.load(this.#clocks!, 0);
        if (!this.#localAccess || flushed < need || !t.isLocal(key)) {
          miss[missing++] = i;
          continue;
        }
        // Shared memory into out, out plus the buffered delta into the cache, and back.
        if (s < 0) s = c.slot(key);
        if (!t.pullLocal(key, out, i * dim)) {
          miss[missing++] = i;
          continue;
        }
        c.fill(s, out, i * dim, Math.min(flushed, clock));
      }
      const at = s * dim, o = i * dim, v = c.vals;
      for (let f = 0; f < dim; f++) out[o + f] = v[at + f];
    }
    this.#local += n - missing;
    if (missing === 0) return undefined;
    this.#remote += missing;
    const pos = miss.slice(0, missing);
    const spare = this.#spareFor(missing * dim * 4);
    const remoteKeys = spare === null
      ? new Uint32Array(missing)
      : new Uint32Array(spare, 0, missing);
    const staleKeys = new Uint32Array(missing);
    for (let j = 0; j < missing; j++) staleKeys[j] = remoteKeys[j] = keys[pos[j]];
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, {
        resolve,
        reject,
        out,
        pos,
        dim,
        staleTable: table,
        staleKeys,
      });
      this.#post({ op: "pull", id, tb: table, keys: remoteKeys, need, barriers: this.#barriers }, [
        remoteKeys.buffer,
      ]);
    });
  }

  /** A stale-mode pull's answer: into the cache (plus the buffered deltas) and `out`. */
  #staleReply(p: Pending, vals: Float32Array, clock: number): void {
    const c = this.#caches![p.staleTable!], keys = p.staleKeys!, pos = p.pos!, out = p.out!;
    const dim = p.dim, tag = Math.min(clock, this.#clock);
    for (let j = 0; j < keys.length; j++) {
      const s = c.slot(keys[j]);
      c.fill(s, vals, j * dim, tag);
      const at = s * dim, o = pos[j] * dim, v = c.vals;
      for (let f = 0; f < dim; f++) out[o + f] = v[at + f];
    }
  }

  async wait(): Promise<void> {
    while (this.#pending.size > 0) {
      const promises: Promise<void>[] = [];
      for (const id of this.#pending.keys()) promises.push(this.#waitFor(id));
      await Promise.all(promises);
    }
  }

  #waitFor(id: number): Promise<void> {
    const p = this.#pending.get(id)!;
    return new Promise<void>((resolve, reject) => {
      const { resolve: r0, reject: j0 } = p;
      p.resolve = () => {
        r0();
        resolve();
      };
      p.reject = (e) => {
        j0(e);
        reject(e);
      };
    });
  }

  takeCounters(): AccessCounters {
    const c = { local: this.#local, remote: this.#remote };
    this.#local = 0;
    this.#remote = 0;
    return c;
  }

  /** Requests in flight (tests and the worker entry's drain check). */
  get pending(): number {
    return this.#pending.size;
  }
}
