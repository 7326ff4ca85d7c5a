/**
 * A deterministic in-process cluster of {@linkcode PsCore}s for protocol tests: no sockets, no
 * threads, no timers.
 *
 * The network is one FIFO queue per ordered pair of nodes (what TCP guarantees, and nothing
 * more). Every message is deep-copied when it is sent (the outbox reuses its views after `send`
 * returns) and checked for a well-formed shape. A seeded scheduler delivers the head of a
 * randomly chosen non-empty queue, so that across seeds every interleaving that per-pair FIFO
 * allows can come up; scripted tests deliver queue by queue instead ({@linkcode SimCluster.deliver}).
 *
 * Simulated workers call `workerPull` / `workerPush` / `workerLocalize` and get a
 * {@linkcode Ticket} that records the reply (exactly one, or the cluster throws) and the logical
 * times of issue and completion. With `threads`, they are worker threads instead: the real
 * {@linkcode WorkerPs} over their node's shared tables, which reads and updates local keys in
 * shared memory and posts the rest to its server thread; posts and replies are two more FIFO
 * queues per worker that the scheduler delivers like the network's (with the transfer semantics
 * of postMessage), and {@linkcode SimCluster.preempt} may let the server thread handle messages
 * between two of a worker's shared-memory accesses within one call, as a preempted worker thread
 * would (keys arrive and leave under its feet).
 *
 * @module
 */
import type { PsMode } from "../../core/types.ts";
import type { TableSpec } from "../../core/types.ts";
import {
  type DataMessage,
  Msg,
  msgName,
  OTHER_JOB,
  validateMessage,
} from "../../server/messages.ts";
import { PsCore } from "../../server/ps_core.ts";
import { Table } from "../../server/store.ts";
import type { ToServer, ToWorker } from "../../server/worker_protocol.ts";
import { WorkerPs } from "../../client/worker_api.ts";

/** A small, fast, seeded PRNG (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = (seed ^ 0x9e3779b9) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** Options of a simulated cluster. */
export interface SimOptions {
  nodes: number;
  tables: TableSpec[];
  mode?: PsMode;
  locationCaches?: boolean;
  placement?: "range" | "random";
  /** Seed of placement and initial values. */
  seed?: number;
  /** Seed of the scheduler of {@linkcode SimCluster.step}. */
  schedSeed?: number;
  /** Keep every sent message in {@linkcode SimCluster.log}. */
  record?: boolean;
  /** Stale mode: workers of the job over all nodes (default 1). */
  workers?: number;
  /** The id of the first job (see {@linkcode SimCluster.restart}); default {@linkcode SIM_JOB}. */
  job?: number;
  /** Workers are worker threads with a real WorkerPs (see the module doc); default false. */
  threads?: boolean;
}

/** A simulated worker thread: a real WorkerPs, and its two message queues. */
class SimThread {
  readonly ps: WorkerPs;
  /** Posted by the worker, not handled by the server thread yet (FIFO, as postMessage). */
  readonly toServer: ToServer[] = [];
  /** Replies of the server thread, not handled by the worker yet. */
  readonly toWorker: ToWorker[] = [];
  /** The worker's requests in flight, by WorkerPs request id. */
  readonly calls = new Map<number, Ticket>();
  /** The call being issued (its posts are registered under it). */
  current: Ticket | null = null;
  constructor(readonly node: number, readonly worker: number, core: PsCore, mode: PsMode) {
    this.ps = new WorkerPs(core.shared(), mode, (msg, transfer) => {
      if ("id" in msg && this.current !== null) this.calls.set(msg.id, this.current);
      // postMessage moves the transferred buffers: the sender's views are detached after it.
      this.toServer.push(structuredClone(msg, { transfer: transfer ?? [] }));
    });
  }
}

/** One message on the simulated network. */
export interface SimMsg {
  seq: number;
  from: number;
  to: number;
  /** The job of the core that sent it. */
  job: number;
  msg: Record<string, any>;
}

/** What a simulated worker gets for one request. */
export class Ticket {
  /** Logical time of completion, -1 while pending. */
  doneAt = -1;
  /** A copy of the pulled values (pull only). */
  vals: Float32Array | null = null;
  /** Stale mode, pulls: the clock the values are fresh to. */
  clock = -1;
  replies = 0;
  constructor(
    readonly kind: "pull" | "push" | "localize",
    readonly node: number,
    readonly worker: number,
    readonly id: number,
    readonly tb: number,
    readonly keys: Uint32Array,
    readonly issuedAt: number,
  ) {}
  get done(): boolean {
    return this.doneAt >= 0;
  }
  /** Row `i` of the pulled values. */
  row(i: number, dim: number): number[] {
    if (this.vals === null) {
      throw new Error(`ticket ${this.kind} has no values (done: ${this.done})`);
    }
    return Array.from(this.vals.subarray(i * dim, i * dim + dim));
  }
}

/** The job id of every simulated core. */
export const SIM_JOB = 1;

/** Deep copy of a message: typed arrays become compact copies (as a decoder would produce). */
function copyMsg(msg: Record<string, unknown>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const [k, v] of Object.entries(msg)) {
    if (ArrayBuffer.isView(v)) out[k] = (v as Float32Array).slice();
    else if (v !== null && typeof v === "object") out[k] = structuredClone(v);
    else out[k] = v;
  }
  return out;
}

/** A simulated cluster of `nodes` PsCores connected by per-pair FIFO queues. */
export class SimCluster {
  readonly n: number;
  readonly cores: PsCore[] = [];
  readonly specs: TableSpec[];
  readonly rng: Rng;
  /** Logical time: advanced by every delivery and every issued request. */
  now = 0;
  /** Every sent message, if `record` was set. */
  readonly log: SimMsg[] = [];
  /** Messages sent so far, by type name (e.g. `LOCALIZE`). */
  readonly sent: Record<string, number> = {};
  /** Called after every reply (after the ticket is updated). */
  onReply: ((t: Ticket) => void) | null = null;
  /** The job the cores run now (see {@linkcode SimCluster.restart}). */
  job: number;
  /**
   * Messages of an earlier job delivered after a restart, and the messages the receiver's
   * validator dropped as belonging to another job (the two must match).
   */
  staleDelivered = 0;
  dropped = 0;
  readonly #opts: SimOptions;
  readonly #queues: SimMsg[][];
  readonly #heads: number[];
  readonly #record: boolean;
  readonly #tickets = new Map<string, Ticket>();
  readonly #nextId: number[];
  /** TRANSFER entries in flight per table, per key. */
  readonly #flyingTransfers: Int32Array[];
  /** Worker threads (with `threads`), in creation order; cleared by a restart. */
  readonly #threads: SimThread[] = [];
  /**
   * With `threads`: called between two shared-memory accesses of a worker's call (a pull's or a
   * push's keys), where a real worker thread may be preempted while its server thread handles
   * messages. Deliver some (not to workers: the worker is busy) or nothing.
   */
  preempt: (() => void) | null = null;
  #seq = 0;
  #inFlight = 0;

  constructor(opts: SimOptions) {
    this.n = opts.nodes;
    this.specs = opts.tables;
    this.rng = new Rng(opts.schedSeed ?? 1);
    this.#record = opts.record ?? false;
    this.#queues = Array.from({ length: this.n * this.n }, () => []);
    this.#heads = new Array(this.n * this.n).fill(0);
    this.#nextId = new Array(this.n).fill(1);
    this.#flyingTransfers = opts.tables.map((t) => new Int32Array(t.keys));
    this.#opts = opts;
    this.job = opts.job ?? SIM_JOB;
    this.#createCores();
  }

  /** One fresh core per node for the current job (tables at their initial values). */
  #createCores(): void {
    const opts = this.#opts;
    this.cores.length = 0;
    for (let self = 0; self < this.n; self++) {
      const core = new PsCore({
        self,
        nodes: this.n,
        job: this.job,
        mode: opts.mode ?? "lapse",
        locationCaches: opts.locationCaches ?? false,
        placement: opts.placement ?? "range",
        seed: opts.seed ?? 7,
        send: (to, msg) => this.#enqueue(self, to, msg),
        reply: (worker, id, vals, clock) => this.#reply(self, worker, id, vals, clock),
        workers: opts.workers,
      });
      core.createTables(opts.tables);
      this.cores.push(core);
    }
  }

  // --- network ---------------------------------------------------------------------------

  #enqueue(from: number, to: number, raw: Record<string, unknown>): void {
    if (!Number.isInteger(to) || to < 0 || to >= this.n) {
      throw new Error(`sim: node ${from} sent to unknown node ${to}`);
    }
    if (to === from) throw new Error(`sim: node ${from} sent a message to itself`);
    const msg = copyMsg(raw);
    this.#validate(from, to, msg);
    const m: SimMsg = { seq: this.#seq++, from, to, job: this.job, msg };
    this.#queues[from * this.n + to].push(m);
    this.#inFlight++;
    const name = msgName(msg.t);
    this.sent[name] = (this.sent[name] ?? 0) + 1;
    if (this.#record) this.log.push(m);
    if (msg.t === Msg.TRANSFER) {
      const fly = this.#flyingTransfers[msg.table];
      for (const k of msg.keys as Uint32Array) fly[k]++;
    }
  }

  /**
   * Checks a sent message with the validator every node runs on receive (messages.ts), plus
   * one rule of the protocol that needs the receiver: a HANDOVER never names its receiver.
   */
  #validate(from: number, to: number, msg: Record<string, any>): void {
    const why = validateMessage(msg, {
      from: { node: from, nodes: this.n },
      job: { id: this.job, tables: this.specs },
    });
    if (why !== null) throw new Error(`sim: malformed ${msgName(msg.t)} from node ${from}: ${why}`);
    if (msg.t === Msg.HANDOVER && msg.dest === to) {
      throw new Error(`sim: HANDOVER from node ${from} hands the key over to its receiver ${to}`);
    }
  }

  /** Messages in flight from `from` to `to`, oldest first. */
  queue(from: number, to: number): SimMsg[] {
    const q = this.#queues[from * this.n + to];
    return q.slice(this.#heads[from * this.n + to]);
  }

  /** Number of messages in flight. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Messages in flight, e.g. `["LOCALIZE 1->0", "TRANSFER 2->1"]`, in send order. */
  flying(): string[] {
    const all: SimMsg[] = [];
    for (let f = 0; f < this.n; f++) {
      for (let t = 0; t < this.n; t++) all.push(...this.queue(f, t));
    }
    all.sort((a, b) => a.seq - b.seq);
    return all.map((m) => `${msgName(m.msg.t)} ${m.from}->${m.to}`);
  }

  /** TRANSFER entries for (tb, key) in flight. */
  transfersInFlight(tb: number, key: number): number {
    return this.#flyingTransfers[tb][key];
  }

  /**
   * Delivers the head of the queue `from -> to`. With `type`, asserts that it is a message of
   * that type (a scripted test states exactly what it expects on the wire).
   */
  deliver(from: number, to: number, type?: number): SimMsg {
    const qi = from * this.n + to;
    const q = this.#queues[qi];
    const head = this.#heads[qi];
    if (head >= q.length) {
      throw new Error(
        `sim: nothing to deliver ${from}->${to}` +
          (type !== undefined ? ` (expected ${msgName(type)})` : "") +
          `; in flight: [${this.flying().join(", ")}]`,
      );
    }
    const m = q[head];
    if (type !== undefined && m.msg.t !== type) {
      throw new Error(
        `sim: head of ${from}->${to} is ${msgName(m.msg.t)}, expected ${msgName(type)}`,
      );
    }
    this.#heads[qi] = head + 1;
    if (head + 1 === q.length) {
      q.length = 0;
      this.#heads[qi] = 0;
    }
    this.#inFlight--;
    this.now++;
    if (m.job !== this.job) {
      // A straggler of an aborted job reaches a node that runs the next job: the node's
      // validator (the same function the node runs) must call it another job's, and drop it.
      this.staleDelivered++;
      const why = validateMessage(m.msg, {
        from: { node: from, nodes: this.n },
        job: { id: this.job, tables: this.specs },
      });
      if (why === OTHER_JOB) this.dropped++;
      else throw new Error(`sim: a message of job ${m.job} passed job ${this.job}'s validator`);
      return m;
    }
    if (m.msg.t === Msg.TRANSFER) {
      const fly = this.#flyingTransfers[m.msg.table];
      for (const k of m.msg.keys as Uint32Array) fly[k]--;
    }
    this.cores[to].onMessage(from, m.msg as DataMessage);
    return m;
  }

  /**
   * Indices of the non-empty queues: `from * n + to` for the network's, then (with `threads`)
   * `n * n + 2 * t` for worker thread t's posts and `n * n + 2 * t + 1` for its replies, unless
   * `replies` is false.
   */
  readyQueues(replies = true): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#queues.length; i++) {
      if (this.#heads[i] < this.#queues[i].length) out.push(i);
    }
    const base = this.n * this.n, threads = this.#threads;
    for (let t = 0; t < threads.length; t++) {
      if (threads[t].toServer.length > 0) out.push(base + 2 * t);
      if (replies && threads[t].toWorker.length > 0) out.push(base + 2 * t + 1);
    }
    return out;
  }

  /**
   * Delivers the head of queue `qi` (an index from {@linkcode SimCluster.readyQueues}); returns
   * the network message, or null for a worker thread's queue.
   */
  deliverQueue(qi: number): SimMsg | null {
    const base = this.n * this.n;
    if (qi < base) return this.deliver(Math.floor(qi / this.n), qi % this.n);
    const th = this.#threads[(qi - base) >> 1];
    this.now++;
    if (((qi - base) & 1) === 0) this.#serverHandles(th, th.toServer.shift()!);
    else this.#workerHandles(th, th.toWorker.shift()!);
    return null;
  }

  /**
   * Scripted tests (with `threads`): the server thread of `node` handles the oldest message its
   * worker `worker` posted ("post"), or that worker reads the oldest reply to it ("reply").
   */
  deliverWorker(node: number, worker: number, what: "post" | "reply"): void {
    const t = this.#threads.findIndex((x) => x.node === node && x.worker === worker);
    const th = this.#threads[t];
    if (th === undefined || (what === "post" ? th.toServer : th.toWorker).length === 0) {
      throw new Error(`sim: no ${what} of worker ${worker} at node ${node} to deliver`);
    }
    this.deliverQueue(this.n * this.n + 2 * t + (what === "post" ? 0 : 1));
  }

  /** The server thread handles a worker's message, as node.ts does. */
  #serverHandles(th: SimThread, msg: ToServer): void {
    const core = this.cores[th.node];
    switch (msg.op) {
      case "pull":
        return core.workerPull(
          th.worker,
          msg.id,
          msg.tb,
          msg.keys,
          msg.need,
          msg.barriers,
          msg.into,
        );
      case "push":
        return core.workerPush(th.worker, msg.id, msg.tb, msg.keys, msg.vals);
      case "localize":
        return core.workerLocalize(th.worker, msg.id, msg.tb, msg.keys);
      default:
        throw new Error(`sim: worker message ${msg.op} is not simulated`);
    }
  }

  /** A worker thread handles its server thread's reply: the call completes. */
  #workerHandles(th: SimThread, msg: ToWorker): void {
    if (msg.op !== "reply") throw new Error(`sim: message ${msg.op} to a worker`);
    const t = th.calls.get(msg.id);
    if (t === undefined) throw new Error(`sim: reply to unknown request ${msg.id} of a worker`);
    th.calls.delete(msg.id);
    th.ps.onServerMessage(msg);
    t.replies++;
    t.doneAt = this.now;
    t.clock = msg.clock ?? -1;
    this.onReply?.(t);
  }

  /** The worker thread of `worker` at `node` (with `threads`), created on first use. */
  #thread(node: number, worker: number): SimThread {
    let th = this.#threads.find((x) => x.node === node && x.worker === worker);
    if (th === undefined) {
      th = new SimThread(node, worker, this.cores[node], this.#opts.mode ?? "lapse");
      this.#threads.push(th);
    }
    return th;
  }

  /**
   * A worker thread's call through its WorkerPs; {@linkcode SimCluster.preempt} runs before
   * every shared-memory access of the call's keys (not again while it runs: those are the
   * server thread's own accesses).
   */
  #threadCall(
    kind: Ticket["kind"],
    node: number,
    worker: number,
    tb: number,
    keys: Uint32Array,
    deltas: Float32Array | null,
  ): Ticket {
    const th = this.#thread(node, worker);
    this.now++;
    const t = new Ticket(kind, node, worker, -1, tb, keys, this.now);
    // Every other call pulls into shared memory: when all its keys are remote, the server
    // thread writes them in place (WorkerPs.pull's `into`).
    const floats = keys.length * this.specs[tb].dim;
    const out = kind !== "pull"
      ? null
      : this.now % 2 === 0
      ? new Float32Array(new SharedArrayBuffer(4 * floats))
      : new Float32Array(floats);
    const proto = Table.prototype, pullLocal = proto.pullLocal, pushLocal = proto.pushLocal;
    let busy = false;
    const between = () => {
      if (busy || this.preempt === null) return;
      busy = true;
      try {
        this.preempt();
      } finally {
        busy = false;
      }
    };
    proto.pullLocal = function (this: Table, key, o, offset) {
      between();
      return pullLocal.call(this, key, o, offset);
    };
    proto.pushLocal = function (this: Table, key, d, offset) {
      between();
      return pushLocal.call(this, key, d, offset);
    };
    th.current = t;
    let p: Promise<void> | undefined;
    try {
      if (kind === "pull") p = th.ps.pull(tb, keys, out!);
      else if (kind === "push") p = th.ps.push(tb, keys, deltas!);
      else p = th.ps.localize(tb, keys);
    } finally {
      proto.pullLocal = pullLocal;
      proto.pushLocal = pushLocal;
      th.current = null;
    }
    t.vals = out;
    // Completion is observed in #workerHandles, not through `p`: a reaction on it would queue a
    // microtask per call, and a synchronous run of thousands of seeds never lets them run.
    // (The simulated server thread never answers with an error, so nothing rejects.)
    if (p === undefined) {
      t.replies = 1;
      t.doneAt = this.now;
    }
    return t;
  }

  /** Delivers the head of a randomly chosen non-empty queue; false if all are empty. */
  step(): boolean {
    const ready = this.readyQueues();
    if (ready.length === 0) return false;
    this.deliverQueue(this.rng.pick(ready));
    return true;
  }

  /**
   * Delivers messages in scheduler order until no message is in flight; throws if that takes
   * more than `limit` deliveries (a livelock or a message storm). Returns the deliveries made.
   */
  run(limit = 100_000, check?: () => void): number {
    let steps = 0;
    while (this.step()) {
      check?.();
      if (++steps > limit) {
        throw new Error(
          `sim: not quiescent after ${limit} deliveries; in flight: ` +
            `[${this.flying().slice(0, 20).join(", ")}${this.inFlight > 20 ? ", ..." : ""}]`,
        );
      }
    }
    return steps;
  }

  // --- faults ----------------------------------------------------------------------------

  /**
   * The job is aborted everywhere and job `job` starts (a driver that gave up, or a job failed
   * by a fault and submitted again): fresh cores and tables on every node, the requests of the
   * old job forgotten. Messages of the old job still in flight stay queued: they arrive at
   * nodes that run the new job, which must drop them.
   */
  restart(job: number): void {
    if (job === this.job) throw new Error(`sim: restart needs a new job id, got ${job}`);
    this.job = job;
    this.#tickets.clear();
    // The job's worker threads end with it, with whatever they had posted or not yet read.
    this.#threads.length = 0;
    for (const fly of this.#flyingTransfers) fly.fill(0);
    this.#createCores();
  }

  /**
   * Node `node` crashed: its connections are gone, with every message in flight on them (TCP
   * delivers nothing of a broken connection to the application after the break). Returns the
   * number of messages lost.
   */
  dropLinks(node: number): number {
    let lost = 0;
    for (let other = 0; other < this.n; other++) {
      if (other === node) continue;
      for (const qi of [node * this.n + other, other * this.n + node]) {
        const q = this.#queues[qi];
        for (let i = this.#heads[qi]; i < q.length; i++) {
          const m = q[i];
          lost++;
          if (m.job === this.job && m.msg.t === Msg.TRANSFER) {
            const fly = this.#flyingTransfers[m.msg.table];
            for (const k of m.msg.keys as Uint32Array) fly[k]--;
          }
        }
        this.#inFlight -= q.length - this.#heads[qi];
        q.length = 0;
        this.#heads[qi] = 0;
      }
    }
    return lost;
  }

  // --- workers ---------------------------------------------------------------------------

  #ticketKey(node: number, worker: number, id: number): string {
    return `${node}/${worker}/${id}`;
  }

  #issue(kind: Ticket["kind"], node: number, worker: number, tb: number, keys: Uint32Array) {
    const id = this.#nextId[node]++;
    this.now++;
    const t = new Ticket(kind, node, worker, id, tb, keys, this.now);
    this.#tickets.set(this.#ticketKey(node, worker, id), t);
    return t;
  }

  #reply(
    node: number,
    worker: number,
    id: number,
    vals: Float32Array | null,
    clock = -1,
  ): void {
    if (this.#opts.threads) {
      const th = this.#thread(node, worker);
      const msg: ToWorker = { op: "reply", id, vals, clock };
      const transfer = vals === null ? [] : [vals.buffer as ArrayBuffer];
      th.toWorker.push(structuredClone(msg, { transfer }));
      return;
    }
    const key = this.#ticketKey(node, worker, id);
    const t = this.#tickets.get(key);
    if (t === undefined) {
      throw new Error(`sim: node ${node} replied to unknown request ${key}`);
    }
    t.replies++;
    if (t.replies > 1) throw new Error(`sim: request ${key} (${t.kind}) answered twice`);
    if (t.kind === "pull") {
      const want = t.keys.length * this.specs[t.tb].dim;
      if (vals === null || vals.length !== want) {
        throw new Error(`sim: pull ${key} answered with ${vals?.length} floats, want ${want}`);
      }
      t.vals = vals.slice();
    } else if (vals !== null) {
      throw new Error(`sim: ${t.kind} ${key} answered with values`);
    }
    t.doneAt = this.now;
    t.clock = clock;
    this.#tickets.delete(key);
    this.onReply?.(t);
  }

  /** Requests issued through the simulator and not answered yet. */
  get openTickets(): number {
    let n = this.#tickets.size;
    for (const th of this.#threads) n += th.calls.size + th.toServer.length + th.toWorker.length;
    return n;
  }

  /** A pull; stale mode: fresh to clock `need`, by a worker past `barriers` barriers. */
  pull(
    node: number,
    worker: number,
    tb: number,
    keys: ArrayLike<number>,
    need = 0,
    barriers = 0,
  ): Ticket {
    const k = Uint32Array.from(keys);
    if (this.#opts.threads) return this.#threadCall("pull", node, worker, tb, k, null);
    const t = this.#issue("pull", node, worker, tb, k);
    this.cores[node].workerPull(worker, t.id, tb, k, need, barriers);
    return t;
  }

  /** `deltas`: `dim` floats per key, or one number added to every float. */
  push(
    node: number,
    worker: number,
    tb: number,
    keys: ArrayLike<number>,
    deltas: ArrayLike<number> | number,
  ): Ticket {
    const k = Uint32Array.from(keys);
    const dim = this.specs[tb].dim;
    const d = typeof deltas === "number"
      ? new Float32Array(k.length * dim).fill(deltas)
      : Float32Array.from(deltas);
    if (this.#opts.threads) return this.#threadCall("push", node, worker, tb, k, d);
    const t = this.#issue("push", node, worker, tb, k);
    this.cores[node].workerPush(worker, t.id, tb, k, d);
    return t;
  }

  localize(node: number, worker: number, tb: number, keys: ArrayLike<number>): Ticket {
    const k = Uint32Array.from(keys);
    if (this.#opts.threads) return this.#threadCall("localize", node, worker, tb, k, null);
    const t = this.#issue("localize", node, worker, tb, k);
    this.cores[node].workerLocalize(worker, t.id, tb, k);
    return t;
  }

  // --- observation -----------------------------------------------------------------------

  home(tb: number, key: number): number {
    return this.cores[0].tables[tb].placement.home(key);
  }

  /** The directory entry at the key's home. */
  owner(tb: number, key: number): number {
    return this.cores[this.home(tb, key)].tables[tb].owner[key];
  }

  /** Nodes where the key is local now. */
  holders(tb: number, key: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.n; i++) if (this.cores[i].tables[tb].table.isLocal(key)) out.push(i);
    return out;
  }

  /** The value of a key at its single holder (throws unless exactly one node holds it). */
  value(tb: number, key: number): number[] {
    const h = this.holders(tb, key);
    if (h.length !== 1) throw new Error(`sim: key ${tb}/${key} held by [${h}]`);
    const dim = this.specs[tb].dim;
    const out = new Float32Array(dim);
    this.cores[h[0]].tables[tb].table.pullLocal(key, out, 0);
    return Array.from(out);
  }

  /**
   * Invariants that hold between any two deliveries: every key has exactly one copy (held by
   * one node, or in one TRANSFER in flight); the home's directory names a node that holds the
   * key or has it in transfer; no node both holds a key and waits for it; only the home has a
   * directory entry. Throws a descriptive error.
   */
  checkInvariants(): void {
    const n = this.n;
    for (let tb = 0; tb < this.specs.length; tb++) {
      const keys = this.specs[tb].keys;
      const fly = this.#flyingTransfers[tb];
      for (let key = 0; key < keys; key++) {
        let copies = fly[key];
        const home = this.cores[0].tables[tb].placement.home(key);
        for (let i = 0; i < n; i++) {
          const ts = this.cores[i].tables[tb];
          const local = ts.table.index[key] >= 0;
          if (local) {
            copies++;
            if (ts.transfers.has(key)) {
              throw new Error(`sim: node ${i} holds key ${tb}/${key} and awaits it`);
            }
          }
          if (i !== home && ts.owner[key] !== -1) {
            throw new Error(`sim: node ${i} has a directory entry for key ${tb}/${key}`);
          }
        }
        if (copies !== 1) {
          throw new Error(
            `sim: key ${tb}/${key} has ${copies} copies (holders [${this.holders(tb, key)}], ` +
              `${fly[key]} TRANSFER in flight)`,
          );
        }
        const o = this.cores[home].tables[tb].owner[key];
        if (o < 0 || o >= n) throw new Error(`sim: owner of ${tb}/${key} at home ${home} is ${o}`);
        const ots = this.cores[o].tables[tb];
        if (ots.table.index[key] < 0 && !ots.transfers.has(key)) {
          throw new Error(
            `sim: home ${home} names ${o} owner of ${tb}/${key}, which neither holds nor awaits it`,
          );
        }
      }
    }
  }

  /**
   * The end state of a drained cluster: nothing in flight, no pending request, no pending
   * transfer, no open ticket, and every key held by exactly one node that the home names.
   */
  checkSettled(): void {
    if (this.inFlight !== 0) throw new Error(`sim: in flight: [${this.flying().join(", ")}]`);
    for (const c of this.cores) {
      if (c.pendingRequests !== 0) {
        throw new Error(`sim: node ${c.self} has ${c.pendingRequests} pending requests`);
      }
      if (c.pendingTransfers !== 0) {
        throw new Error(`sim: node ${c.self} has ${c.pendingTransfers} pending transfers`);
      }
    }
    if (this.openTickets !== 0) throw new Error(`sim: ${this.openTickets} requests unanswered`);
    this.checkInvariants();
    for (let tb = 0; tb < this.specs.length; tb++) {
      let total = 0;
      for (const c of this.cores) total += c.tables[tb].table.localCount;
      if (total !== this.specs[tb].keys) {
        throw new Error(
          `sim: table ${tb} has ${total} local keys in all, want ${this.specs[tb].keys}`,
        );
      }
      for (let key = 0; key < this.specs[tb].keys; key++) {
        const h = this.holders(tb, key);
        if (h.length !== 1 || this.owner(tb, key) !== h[0]) {
          throw new Error(
            `sim: key ${tb}/${key} held by [${h}], home ${this.home(tb, key)} names ` +
              `${this.owner(tb, key)}`,
          );
        }
      }
    }
  }
}
