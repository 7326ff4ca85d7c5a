/**
 * The data plane of one node: serving, routing and forwarding pulls and pushes, and the dynamic
 * allocation protocol (DESIGN.md section 5). It runs on the server thread, owns no socket (it
 * sends through a {@linkcode SendFn}) and no worker (it answers through a callback), so that
 * every protocol path can be driven message by message in a test.
 *
 * Roles per key: the home node (fixed by the placement) keeps `owner[k]`; the owner holds the
 * only copy of the value. A key "in transfer to this node" has a {@linkcode Transfer} record
 * that queues operations until the value arrives.
 *
 * @module
 */
import type { PsMode } from "../core/types.ts";
import type { TableSpec } from "../core/types.ts";
import { assert, AssertionError } from "../core/errors.ts";
import { F32Rows, U32List } from "./grow.ts";
import {
  type ClockMessage,
  type DataMessage,
  type HandoverMessage,
  type LocalizeMessage,
  Msg,
  msgName,
  type PullMessage,
  type PullReplyMessage,
  type PushMessage,
  type PushReplyMessage,
  type TransferMessage,
} from "./messages.ts";
import { MESSAGE_BYTES_SPLIT, Outbox, type SendFn } from "./outbox.ts";
import { Placement } from "./placement.ts";
import { BufferPool } from "./buffer_pool.ts";
import { scatterRows } from "./rows.ts";
import { initValue, type SharedTable, Table } from "./store.ts";

const PULL = 0, PUSH = 1, LOCALIZE = 2;

/** A request of one of this node's workers, waiting for its keys. */
interface Request {
  kind: number;
  remaining: number;
  worker: number;
  id: number;
  /** Pulled values (pull only), `dim` floats per key of the request. */
  vals: Float32Array | null;
  /**
   * Push only: the worker's deltas array, sent back with the answer so that its buffer serves
   * the worker's next large request (a push-only phase would otherwise allocate, and
   * page-fault, fresh memory for every call).
   */
  spare: Float32Array | null;
  /**
   * Pull only: `vals` is the worker's own shared array (see workerPull's `into`), written in
   * place: the answer carries no values.
   */
  inPlace: boolean;
  dim: number;
  /** Stale mode: the least clock the answers are fresh to (see Outbox.stamp). */
  clock: number;
}

/**
 * A run of pulled values at least this large (bytes) is sent as its own message straight from
 * the store; smaller runs are batched (many small runs, e.g. keys in scattered slots, must not
 * become as many messages).
 */
export const DIRECT_REPLY_BYTES_MIN = 64 * 1024;

/** The clock of a worker that finished: it will push nothing more. */
export const CLOCK_IDLE = 0x3fffffff;

/** Per key in transfer to this node: what waits for the value. Recycled, not reallocated. */
class Transfer {
  passTo = -1;
  readonly waiters: number[] = [];
  /** Localizes issued here after `passTo` was set: they ask for the key again once it left. */
  readonly again: number[] = [];
  readonly opKind: number[] = [];
  readonly opOrigin: number[] = [];
  readonly opRid: number[] = [];
  readonly opPos: number[] = [];
  /** Push deltas of queued pushes, in queue order. */
  readonly opDelta = new F32Rows(64);
  reset(): void {
    this.passTo = -1;
    this.waiters.length = 0;
    this.again.length = 0;
    this.opKind.length = 0;
    this.opOrigin.length = 0;
    this.opRid.length = 0;
    this.opPos.length = 0;
    this.opDelta.length = 0;
  }
}

class TableState {
  readonly table: Table;
  readonly placement: Placement;
  /** The directory: owner of each key this node is home of (-1 for other keys). */
  readonly owner: Int32Array;
  /** Location hints (-1 = none), or null when location caches are off. */
  readonly cache: Int32Array | null;
  readonly transfers = new Map<number, Transfer>();
  constructor(table: Table, placement: Placement, owner: Int32Array, cache: Int32Array | null) {
    this.table = table;
    this.placement = placement;
    this.owner = owner;
    this.cache = cache;
  }
}

/** Options of {@linkcode PsCore}. */
export interface PsCoreOptions {
  self: number;
  nodes: number;
  /** The job's id: every message this core sends carries it (see messages.ts). */
  job: number;
  mode: PsMode;
  locationCaches: boolean;
  placement: "range" | "random";
  seed: number;
  send: SendFn;
  /**
   * Completes a worker's request: `vals` for a pull, null otherwise. `vals` (and the rest of
   * its buffer, which may be larger) is the worker's from now on: transfer its buffer. `clock`
   * (stale mode, pulls) is the clock the values are fresh to. `spare` (pushes): the request's
   * deltas array, given back with the answer so that its buffer serves the worker's next large
   * request (transfer it too; ignoring it is correct, only slower).
   */
  reply(
    worker: number,
    id: number,
    vals: Float32Array | null,
    clock: number,
    spare?: Float32Array,
  ): void;
  /** Stale mode: the number of workers of the job (all nodes); default 1. */
  workers?: number;
  /**
   * The job's frame limit (`ps.max_frame_bytes`): batches are sent in parts of at most about
   * half of it (and at most MESSAGE_BYTES_SPLIT). Default: no limit below that.
   */
  frameBytesMax?: number;
  /**
   * A message of node `from` that passed {@linkcode validateMessage} but does not fit this
   * core's state (an answer for an unknown request, a position beyond its request, a key that
   * was not asked for). The entry was dropped; the job cannot be trusted any more. Default:
   * throw an AssertionError (tests).
   */
  malformed?(from: number, reason: string): void;
}

/** Counters of the data plane of one node. */
export interface CoreStats {
  /** Keys moved away from this node by the relocation protocol. */
  transfersOut: number;
  /** Requests for keys this node did not hold, sent on to another node. */
  forwards: number;
  /** Operations that waited in a transfer queue. */
  queued: number;
}

/** The data plane and relocation protocol of one node. */
export class PsCore {
  readonly self: number;
  readonly nodes: number;
  readonly mode: PsMode;
  readonly tables: TableState[] = [];
  readonly stats: CoreStats = { transfersOut: 0, forwards: 0, queued: 0 };
  readonly #opts: PsCoreOptions;
  readonly #outbox: Outbox;
  readonly #requests = new Map<number, Request>();
  readonly #spare: Transfer[] = [];
  /** Buffers of finished worker requests, to answer pulls in (smallest first). */
  readonly #buffers = new BufferPool();
  #nextRid = 1;
  // Stale mode (bounded staleness). Every node keeps the clock up to which each worker of the
  // job has flushed its pushes (a CLOCK message from the worker's node, sent after the pushes:
  // TCP keeps each pair of nodes FIFO, so the pushes are applied here first). A pull that must
  // be fresh to clock c waits here until every worker has flushed up to c.
  readonly #flushed: Int32Array;
  readonly #idle: Uint8Array;
  /** For an idle worker: the barriers it had completed when it went idle. */
  readonly #idleAt: Int32Array;
  #minFlushed = 0;
  /** `[min flushed clock]`, shared with the worker threads for their reads of local keys. */
  readonly clockShared = new Int32Array(new SharedArrayBuffer(4));
  // Pulls held back until #minFlushed reaches their need (parallel lists, compacted in place).
  readonly #parkTb = new U32List();
  readonly #parkOrigin = new U32List();
  readonly #parkRid = new U32List();
  readonly #parkKey = new U32List();
  readonly #parkPos = new U32List();
  readonly #parkNeed = new U32List();
  readonly #parkBarriers = new U32List();

  constructor(opts: PsCoreOptions) {
    this.#opts = opts;
    this.self = opts.self;
    this.nodes = opts.nodes;
    this.mode = opts.mode;
    this.#outbox = new Outbox(
      opts.self,
      opts.nodes,
      opts.job,
      opts.send,
      Math.min(MESSAGE_BYTES_SPLIT, Math.floor((opts.frameBytesMax ?? Infinity) / 2)),
    );
    this.#flushed = new Int32Array(Math.max(1, opts.workers ?? 1));
    this.#idle = new Uint8Array(this.#flushed.length);
    this.#idleAt = new Int32Array(this.#flushed.length);
  }

  /** Creates the job's tables and initialises the keys this node is home of. */
  createTables(specs: TableSpec[]): void {
    assert(this.tables.length === 0, "tables are created once");
    const { self, nodes, seed } = this.#opts;
    specs.forEach((spec, id) => {
      const placement = new Placement(this.#opts.placement, spec.keys, nodes, seed + id);
      const table = Table.create(id, spec, placement.count(self));
      const owner = new Int32Array(spec.keys).fill(-1);
      const value = new Float32Array(spec.dim);
      for (let k = 0; k < spec.keys; k++) {
        if (placement.home(k) !== self) continue;
        owner[k] = self;
        initValue(spec.init, seed, id, k, spec.dim, value, 0);
        table.insert(k, value, 0);
      }
      const cache = this.#opts.locationCaches && this.mode === "lapse"
        ? new Int32Array(spec.keys).fill(-1)
        : null;
      this.tables.push(new TableState(table, placement, owner, cache));
    });
  }

  /** What worker threads need to attach to this node's tables. */
  shared(): SharedTable[] {
    return this.tables.map((t) => t.table.shared);
  }

  /** Requests still waiting for an answer (a drained node has none). */
  get pendingRequests(): number {
    return this.#requests.size;
  }

  /** Keys in transfer to this node. */
  get pendingTransfers(): number {
    let n = 0;
    for (const t of this.tables) n += t.transfers.size;
    return n;
  }

  #table(tb: number): TableState {
    const ts = this.tables[tb];
    if (ts === undefined) throw new RangeError(`Unknown table id ${tb}`);
    return ts;
  }

  #newRequest(
    kind: number,
    worker: number,
    id: number,
    n: number,
    dim: number,
    into: Float32Array | null = null,
  ): number {
    const rid = this.#nextRid;
    this.#nextRid = this.#nextRid >= 0xfffffff0 ? 1 : this.#nextRid + 1;
    this.#requests.set(rid, {
      kind,
      remaining: n,
      worker,
      id,
      vals: kind !== PULL ? null : into ?? this.#answerArray(n * dim),
      spare: null,
      inPlace: into !== null,
      dim,
      clock: CLOCK_IDLE,
    });
    return rid;
  }

  /**
   * Room for a pull's answer: a view of a recycled request buffer when one is large enough
   * (the smallest such), else a fresh array. Fresh memory is what a large pull must not pay
   * for every time: on first touch every page of it faults (milliseconds for a few MB), and
   * the answer leaves this thread with the reply, so it cannot simply be kept.
   */
  #answerArray(floats: number): Float32Array {
    const buf = this.#buffers.take(floats * 4);
    return buf === null ? new Float32Array(floats) : new Float32Array(buf, 0, floats);
  }

  /** Keeps the buffer of a consumed request array for later answers (see workerPull). */
  #recycle(array: ArrayBufferView): void {
    this.#buffers.give(array.buffer);
  }

  /** Counts `n` keys of request `rid` as done; answers the worker when all are. */
  #done(rid: number, n: number): void {
    const req = this.#requests.get(rid);
    assert(req !== undefined, () => `answer for unknown request ${rid}`);
    this.#complete(rid, req, n);
  }

  /** {@linkcode PsCore.#done} for a request already looked up. */
  #complete(rid: number, req: Request, n: number): void {
    req.remaining -= n;
    if (req.remaining > 0) return;
    this.#requests.delete(rid);
    if (req.inPlace) this.#opts.reply(req.worker, req.id, null, req.clock);
    else if (req.spare === null) this.#opts.reply(req.worker, req.id, req.vals, req.clock);
    else this.#opts.reply(req.worker, req.id, req.vals, req.clock, req.spare);
  }

  #deliverPull(rid: number, pos: number, src: Float32Array, offset: number): void {
    const req = this.#requests.get(rid);
    assert(req !== undefined, () => `pull answer for unknown request ${rid}`);
    const vals = req.vals!, dim = req.dim, at = pos * dim;
    for (let i = 0; i < dim; i++) vals[at + i] = src[offset + i];
    this.#done(rid, 1);
  }

  /** Where to send a request for `key` that is neither here nor in transfer here. */
  #route(ts: TableState, key: number, fresh: boolean): number {
    const self = this.self;
    const home = ts.placement.home(key);
    if (home === self) {
      const owner = ts.owner[key];
      assert(
        owner !== self && owner >= 0,
        () => `home ${self} of key ${key} owns it but neither holds it nor awaits it`,
      );
      return owner;
    }
    // Only a request of our own workers follows a hint; a forwarded one goes to home, which
    // knows the owner, so that a stale hint cannot make requests circle.
    if (fresh && ts.cache !== null) {
      const hint = ts.cache[key];
      if (hint >= 0 && hint !== self) return hint;
    }
    return home;
  }

  // --- requests of this node's workers ---------------------------------------------------

  // Ownership of request arrays: `keys` and `deltas` of the worker* methods come from a worker's
  // message (transferred, so nobody else holds them) and belong to this core once passed. Their
  // buffers, if large, are kept when the call returns and reused for the answers of later pulls,
  // which go to the worker; so memory circulates between a worker and its server thread instead
  // of being allocated (and page-faulted) afresh per call. WorkerPs sends the buffers of earlier
  // answers back this way: a pull's keys sit at the front of one. A caller that keeps using its
  // arrays must pass copies.

  /**
   * A worker's pull of keys that were not local when it looked. Takes ownership of `keys` (see
   * above); the answer is a view of a recycled buffer when one is large enough. `into` (lapse
   * and classic modes): the worker's own array over shared memory, `dim` floats per key in key
   * order, that the values are written into in place (one copy less, none after the answer);
   * the answer then carries no values.
   */
  workerPull(
    worker: number,
    id: number,
    tb: number,
    keys: Uint32Array,
    need = 0,
    barriers = 0,
    into?: Float32Array,
  ): void {
    const ts = this.#table(tb), dim = ts.table.dim;
    let dest: Float32Array | null = null;
    if (into !== undefined) {
      if (this.mode === "stale" || !(into.buffer instanceof SharedArrayBuffer)) {
        throw new RangeError("A pull in place needs a shared array and a mode other than stale");
      }
      if (into.length !== keys.length * dim) {
        throw new RangeError(
          `Pull in place of ${keys.length} keys (dim ${dim}) into ${into.length} floats`,
        );
      }
      dest = into;
    }
    const rid = this.#newRequest(PULL, worker, id, keys.length, dim, dest);
    if (keys.length === 0) return this.#done(rid, 0);
    if (this.mode === "stale") {
      for (let i = 0; i < keys.length; i++) {
        this.#stalePull(ts, tb, this.self, rid, keys[i], i, need, barriers);
      }
    } else {
      // Runs of keys that are neither here nor coming here and go to one node are batched in
      // bulk (one bucket look-up per run); any other key takes the general path.
      const n = keys.length, out = this.#outbox;
      let i = 0;
      while (i < n) {
        const end = this.#remoteRun(ts, keys, i, n);
        if (end === i) {
          this.#pull(ts, tb, this.self, rid, keys[i], i, true);
          i++;
          continue;
        }
        const dest = this.#runDest;
        while (i < end) i += out.pullRun(dest, tb, rid, keys, i, end - i);
      }
    }
    this.#outbox.flush();
    this.#recycle(keys);
  }

  /** The destination of the run found by the last {@linkcode PsCore.#remoteRun}. */
  #runDest = -1;

  /**
   * The end of the run of `keys[from ..)` that are neither local nor in transfer here and that
   * a fresh request routes to one node (set in `#runDest`); `from` if `keys[from]` is not such
   * a key.
   */
  #remoteRun(ts: TableState, keys: Uint32Array, from: number, n: number): number {
    const table = ts.table, transfers = ts.transfers;
    let end = from, dest = -1;
    while (end < n) {
      const key = keys[end];
      if (table.isLocal(key) || (transfers.size > 0 && transfers.has(key))) break;
      const d = this.#route(ts, key, true);
      if (dest < 0) dest = d;
      else if (d !== dest) break;
      end++;
    }
    this.#runDest = dest;
    return end;
  }

  /**
   * Stale mode: worker `worker` (of the job, 0-based over all nodes) flushed its pushes of the
   * clocks before `clock` (its pushes, sent before, are on their way ahead of this). `idleAt`
   * >= 0: the worker pushes nothing until its next clock message: it waits in the barrier that
   * follows its `idleAt` completed barriers (or, with CLOCK_IDLE, it finished). Tells every
   * node, this one included.
   */
  workerClock(worker: number, clock: number, idleAt = -1): void {
    if (this.mode !== "stale") throw new RangeError(`A clock message in mode ${this.mode}`);
    const why = this.#clockProblem(worker, clock, idleAt);
    if (why !== null) throw new RangeError(why);
    this.#outbox.flush();
    const msg: ClockMessage = { t: Msg.CLOCK, job: this.#opts.job, worker, clock, idleAt };
    for (let n = 0; n < this.nodes; n++) if (n !== this.self) this.#opts.send(n, msg);
    this.#onClock(worker, clock, idleAt);
    // Pulls this clock released may have been answered to other nodes: send them now, not
    // with whatever message comes next (maybe none).
    this.#outbox.flush();
  }

  /** Stale mode: the least clock every worker has flushed up to, as known here. */
  get minFlushed(): number {
    return this.#minFlushed;
  }

  /** Stale mode: pulls held back for slower workers' clocks. */
  get parkedPulls(): number {
    return this.#parkKey.length;
  }

  /** Why a clock of `worker` cannot be taken (null: it can). */
  #clockProblem(worker: number, clock: number, idleAt: number): string | null {
    const workers = this.#flushed.length;
    if (
      !(worker >= 0 && worker < workers) || !(clock >= 0 && clock <= CLOCK_IDLE) ||
      !(idleAt >= -1 && idleAt <= CLOCK_IDLE)
    ) {
      return `CLOCK for worker ${worker} at clock ${clock} (idle at ${idleAt}): expected ` +
        `worker 0 .. ${workers - 1}, clock 0 .. ${CLOCK_IDLE}`;
    }
    return null;
  }

  #onClock(worker: number, clock: number, idleAt: number): void {
    const workers = this.#flushed.length;
    this.#flushed[worker] = clock;
    this.#idle[worker] = idleAt >= 0 ? 1 : 0;
    this.#idleAt[worker] = idleAt;
    // What served values are fresh to: an idle worker counts with the clock it flushed (its
    // later pushes belong to that clock or later ones).
    let min = CLOCK_IDLE;
    for (let w = 0; w < workers; w++) if (this.#flushed[w] < min) min = this.#flushed[w];
    if (min !== this.#minFlushed) {
      // Replies batched so far were read before this clock: send them with the old stamp.
      this.#outbox.flush();
      this.#minFlushed = min;
      this.#outbox.stamp = min;
      Atomics.store(this.clockShared, 0, min);
    }
    if (this.#parkKey.length > 0) this.#serveParked();
  }

  /**
   * Whether a pull that needs every worker's pushes of the clocks before `need`, of a worker
   * that completed `barriers` barriers, may be served now. A worker idle in a barrier that the
   * reader has not passed yet holds it back no longer: its later pushes all belong to clocks
   * after the reader's (every worker leaves a barrier at the largest clock of all), and waiting
   * for it could wait forever (it waits for the reader at the barrier). Once the reader has
   * passed that barrier, the idle mark is old news and the worker's clock counts again.
   */
  #canServe(need: number, barriers: number): boolean {
    if (need <= this.#minFlushed) return true;
    const flushed = this.#flushed, idle = this.#idle, idleAt = this.#idleAt;
    for (let w = 0; w < flushed.length; w++) {
      if (flushed[w] >= need) continue;
      if (idle[w] === 1 && barriers <= idleAt[w]) continue;
      return false;
    }
    return true;
  }

  /** Serves the held-back pulls whose clock has come; keeps the rest in order. */
  #serveParked(): void {
    const n = this.#parkKey.length;
    const tb = this.#parkTb.data, origin = this.#parkOrigin.data, rid = this.#parkRid.data;
    const key = this.#parkKey.data, pos = this.#parkPos.data, need = this.#parkNeed.data;
    const bar = this.#parkBarriers.data;
    let kept = 0;
    for (let i = 0; i < n; i++) {
      if (this.#canServe(need[i], bar[i])) {
        this.#pull(this.#table(tb[i]), tb[i], origin[i], rid[i], key[i], pos[i], false);
        continue;
      }
      tb[kept] = tb[i];
      origin[kept] = origin[i];
      rid[kept] = rid[i];
      key[kept] = key[i];
      pos[kept] = pos[i];
      need[kept] = need[i];
      bar[kept] = bar[i];
      kept++;
    }
    this.#parkTb.length = this.#parkOrigin.length = this.#parkRid.length = kept;
    this.#parkKey.length = this.#parkPos.length = this.#parkNeed.length = kept;
    this.#parkBarriers.length = kept;
  }

  /**
   * Stale mode: a pull that must see every worker's pushes of the clocks before `need`. Keys
   * never move in this mode: a key not held here goes to its home, which holds it and serves
   * the pull once every worker has flushed up to `need`.
   */
  #stalePull(
    ts: TableState,
    tb: number,
    origin: number,
    rid: number,
    key: number,
    pos: number,
    need: number,
    barriers: number,
  ): void {
    if (!ts.table.isLocal(key)) {
      this.#outbox.pull(ts.placement.home(key), tb, origin, rid, key, pos, need, barriers);
      return;
    }
    if (this.#canServe(need, barriers)) {
      this.#pull(ts, tb, origin, rid, key, pos, false);
      return;
    }
    this.#parkTb.push(tb);
    this.#parkOrigin.push(origin);
    this.#parkRid.push(rid);
    this.#parkKey.push(key);
    this.#parkPos.push(pos);
    this.#parkNeed.push(need);
    this.#parkBarriers.push(barriers);
  }

  /** A worker's push of keys that were not local when it looked; takes ownership of both arrays. */
  workerPush(worker: number, id: number, tb: number, keys: Uint32Array, deltas: Float32Array) {
    const ts = this.#table(tb);
    const dim = ts.table.dim;
    if (deltas.length !== keys.length * dim) {
      throw new RangeError(`Push of ${keys.length} keys with ${deltas.length} floats (dim ${dim})`);
    }
    const rid = this.#newRequest(PUSH, worker, id, keys.length, dim);
    if (keys.length === 0) return this.#done(rid, 0);
    // As workerPull: runs of remote keys to one node in bulk, the rest key by key.
    const n = keys.length, out = this.#outbox;
    let i = 0;
    while (i < n) {
      const end = this.#remoteRun(ts, keys, i, n);
      if (end === i) {
        this.#push(ts, tb, this.self, rid, keys[i], i, deltas, i * dim, true);
        i++;
        continue;
      }
      const dest = this.#runDest;
      while (i < end) i += out.pushRun(dest, tb, rid, keys, i, end - i, deltas, dim);
    }
    this.#outbox.flush();
    this.#recycle(keys);
    // Sent (flush copied what it needed): the deltas go back to the worker with the answer.
    const req = this.#requests.get(rid);
    if (req !== undefined) req.spare = deltas;
    else this.#recycle(deltas);
  }

  /**
   * A worker's localize: answers when every key is local (or has passed through here). Takes
   * ownership of `keys`.
   */
  workerLocalize(worker: number, id: number, tb: number, keys: Uint32Array): void {
    const ts = this.#table(tb);
    const rid = this.#newRequest(LOCALIZE, worker, id, keys.length, ts.table.dim);
    if (this.mode !== "lapse") return this.#done(rid, keys.length);
    let ready = 0;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (ts.table.isLocal(key)) {
        ready++;
        continue;
      }
      const tr = ts.transfers.get(key);
      if (tr === undefined) this.#askFor(ts, tb, key).waiters.push(rid);
      else if (tr.passTo >= 0) tr.again.push(rid); // it will only pass through here
      else tr.waiters.push(rid);
    }
    this.#outbox.flush();
    this.#recycle(keys);
    // An empty request has nothing to wait for: it must be answered too.
    if (ready > 0 || keys.length === 0) this.#done(rid, ready);
  }

  /** Step 1: records "key in transfer to this node" and asks its home for it. */
  #askFor(ts: TableState, tb: number, key: number): Transfer {
    const tr = this.#spare.pop() ?? new Transfer();
    ts.transfers.set(key, tr);
    const home = ts.placement.home(key);
    if (home === this.self) this.#relocate(ts, tb, key, this.self);
    else this.#outbox.localize(home, tb, this.self, key);
    return tr;
  }

  // --- serving and routing one key -------------------------------------------------------

  #pull(
    ts: TableState,
    tb: number,
    origin: number,
    rid: number,
    key: number,
    pos: number,
    fresh: boolean,
  ) {
    const table = ts.table;
    if (table.isLocal(key)) {
      if (origin === this.self) {
        const req = this.#requests.get(rid)!;
        table.pullLocal(key, req.vals!, pos * table.dim);
        if (this.#minFlushed < req.clock) req.clock = this.#minFlushed;
        this.#done(rid, 1);
      } else {
        const at = this.#outbox.pullReply(origin, tb, rid, key, pos, table.dim);
        table.pullLocal(key, this.#outbox.buf, at);
      }
      return;
    }
    const tr = ts.transfers.get(key);
    if (tr !== undefined) {
      this.stats.queued++;
      tr.opKind.push(PULL);
      tr.opOrigin.push(origin);
      tr.opRid.push(rid);
      tr.opPos.push(pos);
      return;
    }
    const dest = this.#route(ts, key, fresh);
    if (!fresh) this.stats.forwards++;
    this.#outbox.pull(dest, tb, origin, rid, key, pos);
  }

  #push(
    ts: TableState,
    tb: number,
    origin: number,
    rid: number,
    key: number,
    pos: number,
    delta: Float32Array,
    offset: number,
    fresh: boolean,
  ) {
    const table = ts.table;
    if (table.pushLocal(key, delta, offset)) {
      if (origin === this.self) this.#done(rid, 1);
      else this.#outbox.pushReply(origin, tb, rid, key);
      return;
    }
    const tr = ts.transfers.get(key);
    if (tr !== undefined) {
      this.stats.queued++;
      tr.opKind.push(PUSH);
      tr.opOrigin.push(origin);
      tr.opRid.push(rid);
      tr.opPos.push(pos);
      tr.opDelta.push(delta, offset, table.dim);
      return;
    }
    const dest = this.#route(ts, key, fresh);
    if (!fresh) this.stats.forwards++;
    this.#outbox.push(dest, tb, origin, rid, key, pos, delta, offset, table.dim);
  }

  /** Home's step 2: the owner of `key` becomes `dest`; the value is sent or handed over. */
  #relocate(ts: TableState, tb: number, key: number, dest: number): void {
    const self = this.self;
    const old = ts.owner[key];
    assert(old >= 0, () => `localize of key ${key} at node ${self}, not its home`);
    assert(old !== dest, () => `node ${dest} localizes key ${key} it already owns`);
    ts.owner[key] = dest;
    if (old === self) this.#giveAway(ts, tb, key, dest);
    else this.#outbox.handover(old, tb, dest, key);
  }

  /** Sends a local key to `dest`, or, if it is still coming here, passes it on on arrival. */
  #giveAway(ts: TableState, tb: number, key: number, dest: number): void {
    if (ts.cache !== null) ts.cache[key] = dest;
    const table = ts.table;
    if (table.isLocal(key)) {
      const at = this.#outbox.transfer(dest, tb, key, table.dim);
      table.remove(key, this.#outbox.buf, at);
      this.stats.transfersOut++;
      return;
    }
    const tr = ts.transfers.get(key);
    assert(
      tr !== undefined,
      () => `node ${this.self} asked to give away key ${key} it neither holds nor awaits`,
    );
    assert(tr.passTo === -1, () => `key ${key} passed on twice from node ${this.self}`);
    tr.passTo = dest;
  }

  // --- messages from other nodes ---------------------------------------------------------

  /**
   * Handles one data-plane message of this job, already checked by `validateMessage` (table
   * and keys exist, array lengths match); what only this core's state can tell (unknown
   * requests, positions beyond a request, keys not asked for) is checked here: such entries
   * are dropped and reported through `malformed`, never thrown.
   *
   * Memory rule: the typed arrays of `msg` may be views of a connection's receive buffer,
   * valid only until this returns (see `Connection.onMessage`). Every handler therefore copies
   * what it keeps, synchronously: keys and values into the outbox, the store or a transfer
   * queue. A TRANSFER's values are modified in place (queued pushes are added to
   * `msg.values` before the value is inserted or passed on), which the rule allows. Nothing
   * here awaits.
   */
  onMessage(from: number, msg: DataMessage): void {
    switch (msg.t) {
      case Msg.PULL:
        this.#onPull(msg);
        break;
      case Msg.PUSH:
        this.#onPush(msg);
        break;
      case Msg.PULL_R:
        this.#onPullReply(from, msg);
        break;
      case Msg.PUSH_R:
        this.#onPushReply(from, msg);
        break;
      case Msg.LOCALIZE:
        this.#onLocalize(msg);
        break;
      case Msg.HANDOVER:
        this.#onHandover(msg);
        break;
      case Msg.TRANSFER:
        this.#onTransfer(from, msg);
        break;
      case Msg.CLOCK: {
        const why = this.mode !== "stale"
          ? `a clock message in mode ${this.mode}`
          : this.#clockProblem(msg.worker, msg.clock, msg.idleAt);
        if (why !== null) this.#malformed(from, msg, why);
        else this.#onClock(msg.worker, msg.clock, msg.idleAt);
        break;
      }
    }
    this.#outbox.flush();
  }

  #malformed(from: number, msg: DataMessage, reason: string): void {
    const text = msg.t === Msg.CLOCK
      ? `CLOCK: ${reason}`
      : `${msgName(msg.t)} of table ${msg.table}: ${reason}`;
    if (this.#opts.malformed) this.#opts.malformed(from, text);
    else throw new AssertionError(`node ${this.self} got from node ${from} a ${text}`);
  }

  #onPull(msg: PullMessage): void {
    const tb = msg.table, ts = this.tables[tb], o = msg.origin;
    const r = msg.requests, k = msg.keys, p = msg.positions;
    if (this.mode === "stale") {
      const need = msg.need, barriers = msg.barriers;
      for (let i = 0; i < k.length; i++) {
        this.#stalePull(ts, tb, o, r[i], k[i], p[i], need, barriers);
      }
      return;
    }
    // Runs of keys held here in consecutive slots are read in bulk, under their locks: a long
    // run goes out at once as its own message, copied from the store straight into the frame
    // (one copy); shorter ones into the batch for the requester. The first key of a run that
    // is not here takes the general path.
    const n = k.length, table = ts.table, dim = table.dim, out = this.#outbox;
    const max = out.pullRepliesMax(dim);
    let i = 0;
    while (i < n) {
      if (o !== this.self) {
        const vals = table.lockRunValues(k, i, Math.min(n, i + max));
        if (vals !== null) {
          const got = vals.length / dim;
          try {
            if (vals.byteLength >= DIRECT_REPLY_BYTES_MIN) {
              out.pullRepliesNow(o, tb, r, k, p, i, got, vals);
            } else {
              for (let j = 0; j < got;) {
                const room = out.pullReplyRoom(o, tb, got - j, dim);
                out.buf.set(vals.subarray(j * dim, (j + room) * dim), out.roomAt);
                out.commitPullReplies(r, k, p, i + j, room, dim);
                j += room;
              }
            }
          } finally {
            table.unlockRun(k, i, i + got);
          }
          i += got;
          continue;
        }
      }
      this.#pull(ts, tb, o, r[i], k[i], p[i], false);
      i++;
    }
  }

  #onPush(msg: PushMessage): void {
    const tb = msg.table, ts = this.tables[tb], o = msg.origin, dim = ts.table.dim;
    const r = msg.requests, k = msg.keys, p = msg.positions, v = msg.values;
    // As #onPull: runs of keys held here are updated in bulk (Table.pushRun) and acknowledged
    // in bulk; the first key of a run that is not here takes the general path.
    const n = k.length, table = ts.table, self = this.self, out = this.#outbox;
    let i = 0;
    while (i < n) {
      const got = table.pushRun(k, i, n, v, i * dim);
      if (got > 0) {
        if (o !== self) out.pushReplies(o, tb, r, k, i, got);
        else for (let j = i; j < i + got; j++) this.#done(r[j], 1);
        i += got;
        if (i === n) break;
      }
      this.#push(ts, tb, o, r[i], k[i], p[i], v, i * dim, false);
      i++;
    }
  }

  // Replies: the entries of one request arrive together and mostly in position order (one
  // request's keys at one holder), so each run of entries of one request is one request
  // lookup, one completion count and, per run of consecutive positions, one bulk copy.

  #onPullReply(from: number, msg: PullReplyMessage): void {
    const ts = this.tables[msg.table], dim = ts.table.dim, h = msg.holder;
    const r = msg.requests, k = msg.keys, p = msg.positions, v = msg.values, n = k.length;
    const cache = ts.cache;
    if (cache !== null) { for (let i = 0; i < n; i++) cache[k[i]] = h; }
    let i = 0;
    while (i < n) {
      const rid = r[i];
      let end = i + 1;
      while (end < n && r[end] === rid) end++;
      const req = this.#requests.get(rid);
      if (req === undefined || req.vals === null) {
        this.#malformed(from, msg, `answer for unknown pull request ${rid}`);
      } else if (!positionsFit(p, i, end, req.vals.length / dim)) {
        this.#malformed(from, msg, `position beyond pull request ${rid} of ${req.remaining} keys`);
      } else {
        if (msg.clock < req.clock) req.clock = msg.clock;
        scatterRows(v, req.vals, p, i, end, dim);
        this.#complete(rid, req, end - i);
      }
      i = end;
    }
  }

  #onPushReply(from: number, msg: PushReplyMessage): void {
    const ts = this.tables[msg.table], h = msg.holder;
    const r = msg.requests, k = msg.keys, n = k.length;
    const cache = ts.cache;
    if (cache !== null) { for (let i = 0; i < n; i++) cache[k[i]] = h; }
    let i = 0;
    while (i < n) {
      const rid = r[i];
      let end = i + 1;
      while (end < n && r[end] === rid) end++;
      const req = this.#requests.get(rid);
      if (req === undefined || req.kind !== PUSH) {
        this.#malformed(from, msg, `answer for unknown push request ${rid}`);
      } else this.#complete(rid, req, end - i);
      i = end;
    }
  }

  #onLocalize(msg: LocalizeMessage): void {
    const tb = msg.table, ts = this.tables[tb], d = msg.dest, k = msg.keys;
    for (let i = 0; i < k.length; i++) this.#relocate(ts, tb, k[i], d);
  }

  #onHandover(msg: HandoverMessage): void {
    const tb = msg.table, ts = this.tables[tb], d = msg.dest, k = msg.keys;
    for (let i = 0; i < k.length; i++) this.#giveAway(ts, tb, k[i], d);
  }

  #onTransfer(from: number, msg: TransferMessage): void {
    const tb = msg.table, ts = this.tables[tb], table = ts.table, dim = table.dim;
    const k = msg.keys, v = msg.values, self = this.self;
    for (let i = 0; i < k.length; i++) {
      const key = k[i], off = i * dim;
      const tr = ts.transfers.get(key);
      if (tr === undefined) {
        this.#malformed(from, msg, `key ${key} that node ${self} did not ask for`);
        continue;
      }
      // Step 4: the queued operations, in arrival order, on the value before anything else.
      let deltaAt = 0;
      for (let q = 0; q < tr.opKind.length; q++) {
        const origin = tr.opOrigin[q], rid = tr.opRid[q];
        if (tr.opKind[q] === PUSH) {
          const d = tr.opDelta.data;
          for (let j = 0; j < dim; j++) v[off + j] += d[deltaAt + j];
          deltaAt += dim;
          if (origin === self) this.#done(rid, 1);
          else this.#outbox.pushReply(origin, tb, rid, key);
        } else if (origin === self) {
          this.#deliverPull(rid, tr.opPos[q], v, off);
        } else {
          const at = this.#outbox.pullReply(origin, tb, rid, key, tr.opPos[q], dim);
          const buf = this.#outbox.buf;
          for (let j = 0; j < dim; j++) buf[at + j] = v[off + j];
        }
      }
      if (tr.passTo >= 0) {
        const at = this.#outbox.transfer(tr.passTo, tb, key, dim);
        const buf = this.#outbox.buf;
        for (let j = 0; j < dim; j++) buf[at + j] = v[off + j];
        if (ts.cache !== null) ts.cache[key] = tr.passTo;
        this.stats.transfersOut++;
      } else {
        table.insert(key, v, off);
      }
      ts.transfers.delete(key);
      const waiters = tr.waiters;
      for (let w = 0; w < waiters.length; w++) this.#done(waiters[w], 1);
      if (tr.again.length > 0) {
        const next = this.#askFor(ts, tb, key);
        for (let w = 0; w < tr.again.length; w++) next.waiters.push(tr.again[w]);
      }
      tr.reset();
      this.#spare.push(tr);
    }
  }
}

/** True if every position in `pos[from .. end)` is below `limit`. */
function positionsFit(pos: Uint32Array, from: number, end: number, limit: number): boolean {
  for (let i = from; i < end; i++) if (pos[i] >= limit) return false;
  return true;
}
