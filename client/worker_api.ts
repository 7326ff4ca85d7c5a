/**
 * The worker side of the parameter server: local keys are read and updated in shared memory
 * under their key lock, everything else goes to the node's server thread as one message per
 * call.
 *
 * @module
 */
import type { PsMode } from "../tasks/config.ts";
import { type SharedTable, Table } from "../server/store.ts";
import type { AccessCounters, Keys, ParameterServer, TableInfo } from "./api.ts";
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
      const vals = msg.vals!, out = p.out, pos = p.pos!, dim = p.dim;
      for (let j = 0; j < pos.length; j++) {
        const src = j * dim, dst = pos[j] * dim;
        for (let i = 0; i < dim; i++) out[dst + i] = vals[src + i];
      }
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

  #request(
    msg: ToServer,
    out: Float32Array | null,
    pos: Uint32Array | null,
    dim: number,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.set((msg as { id: number }).id, { resolve, reject, out, pos, dim });
      this.#post(msg);
    });
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
    const remoteKeys = new Uint32Array(missing);
    for (let j = 0; j < missing; j++) remoteKeys[j] = keys[pos[j]];
    const id = this.#nextId++;
    return this.#request({ op: "pull", id, tb: table, keys: remoteKeys }, out, pos, dim);
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
    const vals = new Float32Array(missing * dim);
    for (let j = 0; j < missing; j++) {
      const i = miss[j];
      remoteKeys[j] = keys[i];
      vals.set(deltas.subarray(i * dim, i * dim + dim), j * dim);
    }
    const id = this.#nextId++;
    return this.#request({ op: "push", id, tb: table, keys: remoteKeys, vals }, null, null, dim);
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
    return this.#request({ op: "localize", id, tb: table, keys: remoteKeys }, null, null, 0);
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
