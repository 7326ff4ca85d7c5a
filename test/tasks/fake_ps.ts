/**
 * An in-memory fake of the parameter server for task tests: one process, several simulated
 * nodes and workers, no threads and no sockets.
 *
 * Every key has one owner node. A worker's `pull`/`push` of keys owned by its node complete
 * synchronously and return `undefined`; otherwise they return a Promise and take effect in a
 * later microtask (so a task that reuses a buffer it handed to an un-awaited push gets wrong
 * values, as it would with a real PS). `localize` moves keys to the worker's node (a no-op in
 * the classic modes). `barrier` waits for all workers of the fake cluster.
 */
import type {
  AccessCounters,
  Keys,
  ParameterServer,
  TableInfo,
} from "../../core/parameter_server.ts";
import type { JobConfig } from "../../core/types.ts";
import type { TableSpec } from "../../core/types.ts";
import type { TaskContext, TaskDefinition } from "../../core/task.ts";
import { blockOf } from "../../data/mf_data.ts";
import { hash32, Rng } from "../../core/rng.ts";

interface FakeTable {
  info: TableInfo;
  values: Float32Array;
  owner: Int32Array;
}

/** The shared state of a fake cluster: tables, key owners, the barrier. */
export class FakeCluster {
  readonly tables: FakeTable[] = [];
  readonly byName = new Map<string, FakeTable>();
  private arrived = 0;
  private waiting: (() => void)[] = [];
  /** Barriers passed so far. */
  barriers = 0;

  constructor(
    specs: TableSpec[],
    readonly nodes: number,
    readonly workers: number,
    readonly mode: "lapse" | "classic" = "lapse",
    placement: "range" | "random" = "range",
    seed = 1,
  ) {
    specs.forEach((s, id) => {
      const values = new Float32Array(s.keys * s.dim);
      const rng = new Rng(hash32(seed, id));
      const init = s.init;
      const random = init.kind === "uniform" || init.kind === "normal"
        ? Math.min(s.dim, init.floats ?? s.dim)
        : s.dim;
      for (let i = 0; i < values.length; i++) {
        if (i % s.dim >= random) continue; // zero
        if (init.kind === "uniform") values[i] = (2 * rng.nextFloat() - 1) * init.scale;
        else if (init.kind === "normal") values[i] = init.std * rng.nextGaussian();
        else if (init.kind === "constant") values[i] = init.value;
      }
      const owner = new Int32Array(s.keys);
      for (let k = 0; k < s.keys; k++) {
        owner[k] = placement === "range" ? blockOf(k, s.keys, nodes) : hash32(seed, id, k) % nodes;
      }
      const t = { info: { id, name: s.name, keys: s.keys, dim: s.dim }, values, owner };
      this.tables.push(t);
      this.byName.set(s.name, t);
    });
  }

  /** Resolves when all `workers` workers have called it. */
  barrier(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (++this.arrived === this.workers) {
        const w = this.waiting;
        this.waiting = [];
        this.arrived = 0;
        this.barriers++;
        for (const r of w) r();
      }
    });
  }
}

/** One worker's view of a {@linkcode FakeCluster}. */
export class FakePs implements ParameterServer {
  private local = 0;
  private remote = 0;
  private pending: Promise<void>[] = [];
  /** Keys moved by localize (counted per key). */
  localized = 0;
  /** pull/push calls that were not all local (each one a message on a real PS). */
  remoteCalls = 0;
  /** Tables of which this worker holds an acquired key (the rules of acquire are checked). */
  private held = new Set<number>();

  constructor(readonly cluster: FakeCluster, readonly node: number) {}

  private t(table: number): FakeTable {
    const t = this.cluster.tables[table];
    if (!t) throw new RangeError(`no table ${table}`);
    return t;
  }

  table(name: string): TableInfo {
    const t = this.cluster.byName.get(name);
    if (!t) {
      throw new RangeError(
        `no table ${name}; known: ${[...this.cluster.byName.keys()].join(", ")}`,
      );
    }
    return t.info;
  }

  private allLocal(t: FakeTable, keys: Keys): boolean {
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] >= t.info.keys) throw new RangeError(`key ${keys[i]} out of range`);
      if (t.owner[keys[i]] !== this.node) return false;
    }
    return true;
  }

  /** Counts a call with remote keys: like the real PS, its local keys as local accesses. */
  private countMixed(t: FakeTable, keys: Keys): void {
    let here = 0;
    for (let i = 0; i < keys.length; i++) if (t.owner[keys[i]] === this.node) here++;
    this.local += here;
    this.remote += keys.length - here;
    this.remoteCalls++;
  }

  private copyOut(t: FakeTable, keys: Keys, out: Float32Array): void {
    const d = t.info.dim;
    if (out.length < keys.length * d) throw new RangeError(`pull: out too short`);
    for (let i = 0; i < keys.length; i++) {
      out.set(t.values.subarray(keys[i] * d, keys[i] * d + d), i * d);
    }
  }

  private add(t: FakeTable, keys: Keys, deltas: Float32Array): void {
    const d = t.info.dim, v = t.values;
    for (let i = 0; i < keys.length; i++) {
      const o = keys[i] * d;
      for (let f = 0; f < d; f++) v[o + f] += deltas[i * d + f];
    }
  }

  private later(fn: () => void): Promise<void> {
    const p = Promise.resolve().then(fn);
    this.pending.push(p);
    return p;
  }

  pull(table: number, keys: Keys, out: Float32Array): Promise<void> | undefined {
    const t = this.t(table);
    if (this.allLocal(t, keys)) {
      this.local += keys.length;
      this.copyOut(t, keys, out);
      return undefined;
    }
    this.countMixed(t, keys);
    const ks = keys.slice(); // the real PS reads keys during the call only
    return this.later(() => this.copyOut(t, ks, out));
  }

  push(table: number, keys: Keys, deltas: Float32Array): Promise<void> | undefined {
    const t = this.t(table);
    if (this.allLocal(t, keys)) {
      this.local += keys.length;
      this.add(t, keys, deltas);
      return undefined;
    }
    this.countMixed(t, keys);
    // The real PS copies keys and deltas during the call (the caller may reuse them at once).
    const ks = keys.slice(), ds = deltas.slice();
    return this.later(() => this.add(t, ks, ds));
  }

  localize(table: number, keys: Keys): Promise<void> | undefined {
    const t = this.t(table);
    if (this.cluster.mode === "classic" || this.allLocal(t, keys)) return undefined;
    const ks = keys.slice();
    return this.later(() => {
      for (let i = 0; i < ks.length; i++) {
        if (t.owner[ks[i]] !== this.node) this.localized++;
        t.owner[ks[i]] = this.node;
      }
    });
  }

  pullIfLocal(table: number, key: number, out: Float32Array, offset = 0): boolean {
    const t = this.t(table);
    if (t.owner[key] !== this.node) return false;
    this.local++;
    const d = t.info.dim;
    out.set(t.values.subarray(key * d, key * d + d), offset);
    return true;
  }

  pushIfLocal(table: number, key: number, delta: Float32Array, offset = 0): boolean {
    const t = this.t(table);
    if (t.owner[key] !== this.node) return false;
    this.local++;
    const d = t.info.dim, v = t.values, o = key * d;
    for (let f = 0; f < d; f++) v[o + f] += delta[offset + f];
    return true;
  }

  acquire(table: number, key: number): number {
    const t = this.t(table);
    if (t.owner[key] !== this.node) return -1;
    if (this.held.has(table)) throw new Error(`acquire: already holding a key of table ${table}`);
    for (const h of this.held) {
      if (h > table) throw new Error(`acquire: table ${table} after table ${h} (id order)`);
    }
    this.held.add(table);
    this.local++;
    return key * t.info.dim;
  }

  release(table: number, _key: number): void {
    if (!this.held.delete(table)) throw new Error(`release: no key of table ${table} held`);
  }

  values(table: number): Float32Array {
    return this.t(table).values;
  }

  isLocal(table: number, key: number): boolean {
    return this.t(table).owner[key] === this.node;
  }

  async barrier(): Promise<void> {
    if (this.held.size > 0) throw new Error(`barrier while holding acquired keys`);
    await this.wait();
    await this.cluster.barrier();
  }

  /** A no-op outside the bounded-staleness mode (see ParameterServer.clock). */
  clock(): Promise<void> | undefined {
    return undefined;
  }

  async wait(): Promise<void> {
    while (this.pending.length > 0) {
      const p = this.pending;
      this.pending = [];
      await Promise.all(p);
    }
  }

  takeCounters(): AccessCounters {
    const c = { local: this.local, remote: this.remote };
    this.local = 0;
    this.remote = 0;
    return c;
  }
}

/** What {@linkcode runFakeJob} observed. */
export interface FakeJobResult {
  /** Per epoch: the sums of all workers, and `summarize` of them. */
  sums: Record<string, number>[];
  metrics: Record<string, number>[];
  /** Summed `epochPoints` and `progress` of all workers. */
  epochPoints: number;
  progress: number;
  counters: AccessCounters;
  cluster: FakeCluster;
  workers: FakePs[];
  logs: string[];
}

/** Runs `task` on a fake cluster of `nodes` x `workers_per_node` workers (from the config). */
export async function runFakeJob(
  task: TaskDefinition,
  config: JobConfig,
  mode: "lapse" | "classic" = config.ps.mode === "lapse" ? "lapse" : "classic",
): Promise<FakeJobResult> {
  const { nodes, workers_per_node } = config.cluster;
  const workers = nodes * workers_per_node;
  const cluster = new FakeCluster(
    task.tables(config),
    nodes,
    workers,
    mode,
    config.ps.placement,
    config.seed,
  );
  const sums: Record<string, number>[] = [];
  const logs: string[] = [];
  let epochPoints = 0, progress = 0;
  const pss: FakePs[] = [];
  const runs: Promise<void>[] = [];
  for (let w = 0; w < workers; w++) {
    const node = Math.floor(w / workers_per_node);
    const ps = new FakePs(cluster, node);
    pss.push(ps);
    const ctx: TaskContext = {
      ps,
      config,
      worker: w,
      workers,
      node,
      nodes,
      seed: config.seed,
      progress: (n) => {
        progress += n;
      },
      epochEnd: (epoch, s) => {
        const acc = sums[epoch] ??= {};
        // As the nodes (server/node.ts addSums): keys ending in `_max` take the maximum.
        for (const [k, v] of Object.entries(s)) {
          acc[k] = k.endsWith("_max") ? Math.max(acc[k] ?? -Infinity, v) : (acc[k] ?? 0) + v;
        }
      },
      epochPoints: (n) => {
        epochPoints += n;
      },
      log: (m) => {
        logs.push(m);
      },
    };
    runs.push(task.run(ctx));
  }
  await Promise.all(runs);
  const counters = { local: 0, remote: 0 };
  for (const ps of pss) {
    const c = ps.takeCounters();
    counters.local += c.local;
    counters.remote += c.remote;
  }
  return {
    sums,
    metrics: sums.map((s) => task.summarize(s)),
    epochPoints,
    progress,
    counters,
    cluster,
    workers: pss,
    logs,
  };
}
