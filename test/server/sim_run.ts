/**
 * Randomized simulation of the relocation protocol: every seed draws a cluster (2-5 nodes,
 * tables, mode, location caches, placement), a workload of simulated workers (synchronous and
 * asynchronous pulls, some asking for a key twice, pushes and localizes), whether the workers
 * are worker threads (the real WorkerPs over shared tables, whose node may move keys between two
 * of its reads of one call) or calls on the server thread, a scheduler, and a fault, and runs it in the
 * deterministic in-process network of `sim_network.ts`, checking the invariants after every
 * delivery and the results at the end. A failure prints its seed; the seed replays it exactly.
 *
 * ```sh
 * deno task sim --seeds 500            # seeds 1..500
 * deno task sim --seeds 1 --from 4711  # replay seed 4711 (prints its scenario)
 * ```
 *
 * Schedulers: `random` (the head of a random non-empty queue), `favour` (one queue, changed now
 * and then, is served nine times out of ten: the others lag far behind), `starve` (one queue is
 * served only when nothing else can move). Faults: `abort` (the driver gives up mid-job: every
 * node drops the job, messages of it still in flight arrive at the next job, which must drop
 * them), `crash` (a node dies mid-job: its connections lose what was in flight, the job fails,
 * the node restarts and the job is submitted again).
 *
 * Checks: the invariants of {@linkcode SimCluster.checkInvariants} after every delivery; every
 * request answered exactly once; a synchronous worker's pulls never go backwards and include
 * its own pushes; at the end every key's value is exactly the number of pushes to it, nothing
 * is pending, and every stale message of an aborted job was dropped.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { PsMode, TableSpec } from "../../core/types.ts";
import { Rng, SimCluster, type Ticket } from "./sim_network.ts";

/** What one seed ran and how it ended. */
export interface SeedResult {
  seed: number;
  /** One line: the drawn cluster, workload, scheduler and fault. */
  scenario: string;
  /** The failure, or null. */
  error: string | null;
  /** Messages delivered. */
  deliveries: number;
  /** Stale messages of an aborted job dropped by the next one. */
  dropped: number;
}

type Scheduler = "random" | "favour" | "starve";
type Fault = "none" | "abort" | "crash";

interface Op {
  kind: "pull" | "push" | "localize";
  tb: number;
  keys: number[];
}

interface SimWorker {
  node: number;
  worker: number;
  /** Waits for each request before the next (else up to 4 outstanding). */
  sync: boolean;
  ops: Op[];
  pc: number;
  pending: Set<Ticket>;
  /** Per "tb/key": the last value this worker pulled, and its pushes so far. */
  seen: Map<string, number>;
  pushed: Map<string, number>;
}

/** Runs one seed; never throws (a failure is in `error`). */
export function runSeed(seed: number): SeedResult {
  const r = new Rng(seed);
  const nodes = 2 + r.int(4);
  const mode: PsMode = r.pick(["lapse", "lapse", "lapse", "classic", "classic_remote"] as const);
  const locationCaches = r.chance(0.5);
  const placement = r.pick(["range", "random"] as const);
  const tables: TableSpec[] = Array.from({ length: 1 + r.int(2) }, (_, i) => ({
    name: `T${i}`,
    keys: 3 + r.int(22),
    dim: 1 + r.int(3),
    init: { kind: "zero" as const },
  }));
  const workersPerNode = 1 + r.int(2);
  const opsPerWorker = 10 + r.int(40);
  const scheduler: Scheduler = r.pick(["random", "favour", "starve"] as const);
  const fault: Fault = r.pick(["none", "none", "abort", "crash"] as const);
  const deliverProb = 0.3 + 0.5 * r.next();
  const faultAt = 5 + r.int(nodes * workersPerNode * opsPerWorker);
  const threads = r.chance(0.5);
  const preemptProb = 0.2 + 0.6 * r.next();
  const scenario = `seed ${seed}: ${nodes} nodes x ${workersPerNode} workers, ${mode}, ` +
    `caches ${locationCaches ? "on" : "off"}, ${placement} placement, tables ` +
    `${tables.map((t) => `${t.keys}x${t.dim}`).join(",")}, ${opsPerWorker} ops/worker, ` +
    `scheduler ${scheduler}, fault ${fault}${fault === "none" ? "" : ` at step ${faultAt}`}, ` +
    (threads ? "worker threads" : "workers on the server thread");

  let job = 1;
  const sim = new SimCluster({
    nodes,
    tables,
    mode,
    locationCaches,
    placement,
    seed,
    schedSeed: seed * 7919 + 1,
    job,
    threads,
  });
  let workers: SimWorker[] = [];
  /** Pushes issued per "tb/key" in the current job (each adds 1 to every float). */
  let issued = new Map<string, number>();
  const makeWorkers = () => {
    workers = [];
    issued = new Map();
    for (let node = 0; node < nodes; node++) {
      for (let w = 0; w < workersPerNode; w++) {
        const ops: Op[] = [];
        for (let i = 0; i < opsPerWorker; i++) {
          const tb = r.int(tables.length);
          const n = 1 + r.int(Math.min(4, tables[tb].keys));
          const keys = new Set<number>();
          while (keys.size < n) keys.add(r.int(tables[tb].keys));
          const x = r.next();
          const kind = x < 0.4 ? "pull" : x < 0.75 ? "push" : "localize";
          const list = [...keys];
          // A pull may ask for a key twice: its positions must read it in position order.
          if (kind === "pull" && r.chance(0.5)) list.push(list[r.int(list.length)]);
          ops.push({ kind, tb, keys: list });
        }
        workers.push({
          node,
          worker: w,
          sync: r.chance(0.6),
          ops,
          pc: 0,
          pending: new Set(),
          seen: new Map(),
          pushed: new Map(),
        });
      }
    }
  };
  makeWorkers();
  const fail = (why: string): never => {
    throw new Error(why);
  };
  const onReply = (w: SimWorker, t: Ticket) => {
    w.pending.delete(t);
    if (t.kind !== "pull") return;
    const dim = tables[t.tb].dim;
    for (let i = 0; i < t.keys.length; i++) {
      const id = `${t.tb}/${t.keys[i]}`;
      const row = t.row(i, dim);
      const v = row[0];
      if (row.some((x) => x !== v)) fail(`pull of ${id} by ${w.node}/${w.worker}: [${row}]`);
      if (!Number.isInteger(v) || v < 0 || v > (issued.get(id) ?? 0)) {
        fail(`pull of ${id} by ${w.node}/${w.worker} = ${v}, ${issued.get(id) ?? 0} pushes issued`);
      }
      if (w.sync) {
        const own = w.pushed.get(id) ?? 0, last = w.seen.get(id) ?? 0;
        if (v < own) fail(`sync pull of ${id} by ${w.node}/${w.worker} = ${v} < own pushes ${own}`);
        if (v < last) fail(`sync pull of ${id} by ${w.node}/${w.worker} went back ${last} -> ${v}`);
        w.seen.set(id, v);
      }
    }
  };
  const issue = (w: SimWorker) => {
    const op = w.ops[w.pc++];
    let t: Ticket;
    if (op.kind === "pull") t = sim.pull(w.node, w.worker, op.tb, op.keys);
    else if (op.kind === "localize") t = sim.localize(w.node, w.worker, op.tb, op.keys);
    else {
      for (const k of op.keys) {
        const id = `${op.tb}/${k}`;
        issued.set(id, (issued.get(id) ?? 0) + 1);
        w.pushed.set(id, (w.pushed.get(id) ?? 0) + 1);
      }
      t = sim.push(w.node, w.worker, op.tb, op.keys, 1);
    }
    if (t.done) onReply(w, t);
    else w.pending.add(t);
  };
  const byTicket = (t: Ticket) =>
    workers.find((w) => w.node === t.node && w.worker === t.worker && w.pending.has(t));
  sim.onReply = (t) => {
    const w = byTicket(t);
    if (w !== undefined) onReply(w, t);
  };

  // The scheduler's favourite / victim queue (an index of sim.readyQueues()).
  let special = -1;
  const pickQueue = (ready: number[]): number => {
    if (scheduler === "random") return r.pick(ready);
    if (special < 0 || r.chance(0.02)) special = r.int(nodes * nodes);
    if (scheduler === "favour") {
      return ready.includes(special) && r.chance(0.9) ? special : r.pick(ready);
    }
    const others = ready.filter((q) => q !== special);
    return others.length > 0 ? r.pick(others) : special;
  };

  let deliveries = 0, steps = 0, faulted = false;
  // Worker threads: the server thread may handle messages between two shared-memory accesses
  // of one call (keys arrive and leave while a worker reads its batch).
  if (threads) {
    sim.preempt = () => {
      if (!r.chance(preemptProb)) return;
      for (let m = 1 + r.int(3); m > 0; m--) {
        const ready = sim.readyQueues(false);
        if (ready.length === 0) return;
        sim.deliverQueue(pickQueue(ready));
        deliveries++;
        sim.checkInvariants();
      }
    };
  }
  try {
    for (;;) {
      steps++;
      if (!faulted && fault !== "none" && steps === faultAt) {
        faulted = true;
        if (fault === "crash") sim.dropLinks(r.int(nodes));
        sim.restart(++job);
        makeWorkers();
      }
      const ready = sim.readyQueues();
      const canIssue = workers.filter((w) =>
        w.pc < w.ops.length && (w.sync ? w.pending.size === 0 : w.pending.size < 4)
      );
      if (ready.length === 0 && canIssue.length === 0) break;
      if (ready.length > 0 && (canIssue.length === 0 || r.chance(deliverProb))) {
        sim.deliverQueue(pickQueue(ready));
        deliveries++;
        sim.checkInvariants();
      } else {
        issue(r.pick(canIssue));
      }
      if (steps > 1_000_000) fail("no end after 1,000,000 steps");
    }
    for (const w of workers) {
      if (w.pending.size > 0) fail(`worker ${w.node}/${w.worker} has unanswered requests`);
    }
    sim.checkSettled();
    for (let tb = 0; tb < tables.length; tb++) {
      for (let key = 0; key < tables[tb].keys; key++) {
        const want = issued.get(`${tb}/${key}`) ?? 0;
        const got = sim.value(tb, key);
        if (got.some((x) => x !== want)) fail(`key ${tb}/${key} ended at [${got}], want ${want}`);
      }
    }
    if (faulted && sim.staleDelivered !== sim.dropped) {
      fail(`${sim.staleDelivered} stale messages arrived, ${sim.dropped} were dropped`);
    }
    return { seed, scenario, error: null, deliveries, dropped: sim.dropped };
  } catch (e) {
    return {
      seed,
      scenario,
      error: `${(e as Error).message} (step ${steps})`,
      deliveries,
      dropped: sim.dropped,
    };
  }
}

/** Runs seeds `from .. from+seeds-1`; returns the failures. */
export function runSeeds(from: number, seeds: number, onResult?: (r: SeedResult) => void) {
  const failures: SeedResult[] = [];
  for (let s = from; s < from + seeds; s++) {
    const res = runSeed(s);
    onResult?.(res);
    if (res.error !== null) failures.push(res);
  }
  return failures;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seeds: { type: "string", default: "100" },
      from: { type: "string", default: "1" },
      verbose: { type: "boolean", short: "v" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(
      "usage: deno task sim [--seeds N] [--from S] [-v]\n" +
        "Runs seeds S..S+N-1 of the randomized protocol simulation (test/server/sim_run.ts);\n" +
        "prints every failing seed with its scenario. --seeds 1 --from S replays seed S.",
    );
    Deno.exit(0);
  }
  const seeds = Number(values.seeds), from = Number(values.from);
  if (!Number.isInteger(seeds) || seeds < 1 || !Number.isInteger(from)) {
    console.error("error: --seeds N (N >= 1) and --from S take integers");
    Deno.exit(2);
  }
  const t0 = performance.now();
  let deliveries = 0, dropped = 0;
  const failures = runSeeds(from, seeds, (res) => {
    deliveries += res.deliveries;
    dropped += res.dropped;
    if (values.verbose || seeds === 1) console.log(res.scenario);
    if (res.error !== null) {
      console.log(
        `FAIL ${res.scenario}\n  ${res.error}\n  replay: deno task sim --seeds 1 --from ${res.seed}`,
      );
    }
  });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `${seeds - failures.length}/${seeds} seeds passed (seeds ${from}..${from + seeds - 1}, ` +
      `${deliveries} deliveries, ${dropped} stale messages dropped, ${s} s)`,
  );
  Deno.exit(failures.length === 0 ? 0 : 1);
}
