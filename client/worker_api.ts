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

export type { ToServer, ToWorker };

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
  /** For pulls: where the answer goes. */
  out: Float32Array | null;
  pos: Uint32Array | null;
  dim: number;
}

/** Most keys in one call; a larger batch is a RangeError (split it). */
export const BATCH_KEYS_MAX_DEFAULT = 1_000_000;

// Buffers of pull answers kept for reuse (see WorkerPs.#spareFor): at most this many and bytes.
const SPARE_BUFFERS_MAX = 4;
const SPARE_BYTES_MAX = 64 * 1024 * 1024;
// Smaller requests are allocated fresh (cheap); only large buffers are worth circulating.
const SPARE_BYTES_MIN = 64 * 1024;

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
  readonly #spares: ArrayBuffer[] = [];
  #sparesBytes = 0;
  #local = 0;
  #remote = 0;

  constructor(
    tables: SharedTable[],
    mode: PsMode,
    post: (msg: ToServer, transfer?: Transferable[]) => void,
    batch_keys_max = BATCH_KEYS_MAX_DEFAULT,
  ) {
    this.#tables = tables.map((t) => Table.attach(t));
    this.#infos = new Map(
      tables.map((t) => [t.name, { id: t.id, name: t.name, keys: t.keys, dim: t.dim }]),
    );
    this.#post = post;
    this.#localAccess = mode !== "classic_remote";
    this.#localize = mode === "lapse";
    this.#batchMax = batch_keys_max;
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
    if (p.out !== null) {
      // One bulk copy per run of consecutive positions (a remote-only call is one run).
      const vals = msg.vals!, out = p.out, pos = p.pos!, dim = p.dim, n = pos.length;
      let j = 0;
      while (j < n) {
        const first = pos[j];
        let end = j + 1;
        while (end < n && pos[end] === first + (end - j)) end++;
        out.set(vals.subarray(j * dim, end * dim), first * dim);
        j = end;
      }
      this.#keepSpare(vals.buffer);
    }
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
    if (!(buf instanceof ArrayBuffer) || buf.byteLength < SPARE_BYTES_MIN) return;
    const spares = this.#spares;
    if (spares.includes(buf)) return;
    spares.push(buf);
    this.#sparesBytes += buf.byteLength;
    spares.sort((a, b) => a.byteLength - b.byteLength);
    while (spares.length > SPARE_BUFFERS_MAX || this.#sparesBytes > SPARE_BYTES_MAX) {
      this.#sparesBytes -= spares.shift()!.byteLength;
    }
  }

  /** The smallest spare buffer of at least `bytes` bytes (taken), or null. */
  #spareFor(bytes: number): ArrayBuffer | null {
    if (bytes < SPARE_BYTES_MIN) return null;
    const spares = this.#spares;
    for (let i = 0; i < spares.length; i++) {
      if (spares[i].byteLength < bytes) continue;
      const buf = spares.splice(i, 1)[0];
      this.#sparesBytes -= buf.byteLength;
      return buf;
    }
    return null;
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
    let missing = 0;
    if (this.#localAccess) {
      const miss = this.#missing(n);
      for (let i = 0; i < n; i++) {
        if (!t.pullLocal(keys[i], out, i * dim)) miss[missing++] = i;
      }
      this.#local += n - missing;
      if (missing === 0) return undefined;
    } else {
      missing = n;
      const miss = this.#missing(n);
      for (let i = 0; i < n; i++) miss[i] = i;
    }
    this.#remote += missing;
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

  push(table: number, keys: Keys, deltas: Float32Array): Promise<void> | undefined {
    const t = this.#t(table), dim = t.dim, n = keys.length;
    this.#checkBatch(keys, t, deltas.length, "Push");
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
    // One bulk copy per run of consecutive missing keys (a remote-only call is one run).
    let j = 0;
    while (j < missing) {
      const first = miss[j];
      let end = j + 1;
      while (end < missing && miss[end] === first + (end - j)) end++;
      for (let r = j; r < end; r++) remoteKeys[r] = keys[miss[r]];
      vals.set(deltas.subarray(first * dim, (first + end - j) * dim), j * dim);
      j = end;
    }
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

  pullIfLocal(table: number, key: number, out: Float32Array, offset = 0): boolean {
    if (!this.#localAccess) return false;
    const ok = this.#t(table).pullLocal(key, out, offset);
    if (ok) this.#local++;
    return ok;
  }

  pushIfLocal(table: number, key: number, delta: Float32Array, offset = 0): boolean {
    if (!this.#localAccess) return false;
    const ok = this.#t(table).pushLocal(key, delta, offset);
    if (ok) this.#local++;
    return ok;
  }

  acquire(table: number, key: number): number {
    if (!this.#localAccess) return -1;
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
    const id = this.#nextId++;
    await this.#request({ op: "barrier", id }, null, null, 0);
  }

  /** A no-op outside the bounded-staleness mode (see ParameterServer.clock). */
  clock(): Promise<void> | undefined {
    return undefined;
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
