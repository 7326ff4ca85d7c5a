/**
 * Bounded-staleness self-test (task `sspcheck`): `lapse train --config tasks/sspcheck.yaml`.
 *
 * One table `C` of `keys` keys with one float per worker (zero init). In every clock c = 0, 1,
 * ... each worker w adds +1 to its own float (w) of every key, then pulls `pull_batch` random
 * keys and checks each value it reads:
 *
 * - its own float is exactly c + 1 (a worker always reads its own writes);
 * - every other worker's float is at least c - s (s = `ps.staleness`): the value misses no
 *   update older than s clocks. The other modes do not bound how far workers drift apart:
 *   there only the own float and the exact values after barriers are checked.
 *
 * Then it sleeps now and then (odd workers, `jitter_ms`, so that workers drift apart and the
 * cache really serves old values) and calls `ps.clock()`. Every `barrier_every` clocks, and at
 * the end, all workers meet at a barrier and every value must be exact: every float equals the
 * clocks done. At the end the odd workers run `extra_clocks` clocks more (with pulls) while
 * the even ones wait in the last barrier: uneven clocks must not deadlock. Reported: `violations` (failed checks), `reads`, `stale_reads` (reads missing
 * some other worker's update of an earlier clock: proof the check was not vacuous),
 * `lag_max` (the most clocks a read was behind), `final_error`.
 *
 * @module
 */
import type { JobConfig, TableSpec, TaskContext, TaskDefinition, TaskSchema } from "../mod.ts";
import { Rng } from "../core/rng.ts";

const MAX_LOGGED = 5;

function settings(config: JobConfig) {
  const m = config.model;
  return {
    keys: m.keys as number,
    clocks: m.clocks as number,
    pullBatch: Math.min(m.pull_batch as number, m.keys as number),
    jitterMs: m.jitter_ms as number,
    barrierEvery: m.barrier_every as number,
    extraClocks: m.extra_clocks as number,
    seed: m.seed as number,
  };
}

async function run(ctx: TaskContext): Promise<void> {
  const { ps, config } = ctx;
  const s = settings(config);
  const W = ctx.workers, me = ctx.worker;
  // Only the stale mode bounds how far workers drift apart (-1: not checked, only reported).
  const staleness = config.ps.mode === "stale" ? (config.ps.staleness ?? 1) : -1;
  const tC = ps.table("C").id;
  const rng = new Rng(s.seed * 1000 + me);
  const allKeys = new Uint32Array(s.keys).map((_, i) => i);
  const mine = new Float32Array(s.keys * W);
  for (let k = 0; k < s.keys; k++) mine[k * W + me] = 1;
  const keys = new Uint32Array(s.pullBatch);
  const out = new Float32Array(s.keys * W);
  let violations = 0, reads = 0, staleReads = 0, lagMax = 0, finalError = 0;
  const violation = (what: string) => {
    if (violations++ < MAX_LOGGED) ctx.log(`VIOLATION worker ${me}: ${what}`);
  };
  /** Checks one value read at clock `c`; `exact`: after a barrier every float is `c + 1`. */
  const check = (key: number, v: Float32Array, at: number, c: number, exact: boolean) => {
    reads++;
    let behind = 0;
    for (let w = 0; w < W; w++) {
      const x = v[at + w];
      if (!Number.isInteger(x)) violation(`key ${key} float ${w} is ${x}, not an integer`);
      if (w === me || exact) {
        if (x !== c + 1) {
          violation(`clock ${c}: key ${key} float ${w} is ${x}, expected exactly ${c + 1}`);
        }
        continue;
      }
      // Worker w's updates of clocks 0 .. x-1 are in it; it misses c - x earlier clocks.
      behind = Math.max(behind, c - x);
      if (staleness >= 0 && x < c - staleness) {
        violation(
          `clock ${c}: key ${key} misses worker ${w}'s updates of clocks ${x} .. ${c - 1} ` +
            `(value ${x}, staleness ${staleness})`,
        );
      }
    }
    if (behind > 0) staleReads++;
    lagMax = Math.max(lagMax, behind);
  };
  ctx.epochPoints(s.clocks); // a data point = one clock of one worker
  await ps.barrier();
  for (let c = 0; c < s.clocks; c++) {
    const q = ps.push(tC, allKeys, mine);
    if (q) await q;
    for (let i = 0; i < keys.length; i++) keys[i] = rng.nextInt(s.keys);
    const p = ps.pull(tC, keys, out.subarray(0, keys.length * W));
    if (p) await p;
    for (let i = 0; i < keys.length; i++) check(keys[i], out, i * W, c, false);
    ctx.progress(1);
    if (me % 2 === 1 && s.jitterMs > 0 && rng.nextFloat() < 0.5) {
      await new Promise((r) => setTimeout(r, s.jitterMs));
    }
    const ck = ps.clock();
    if (ck) await ck;
    if ((s.barrierEvery > 0 && (c + 1) % s.barrierEvery === 0) || c === s.clocks - 1) {
      await ps.barrier();
      const p = ps.pull(tC, allKeys, out);
      if (p) await p;
      for (let k = 0; k < s.keys; k++) check(k, out, k * W, c, true);
      if (c === s.clocks - 1) {
        for (let x = 0; x < out.length; x++) finalError += Math.abs(out[x] - s.clocks);
      }
      await ps.barrier();
    }
  }
  // Odd workers run ahead by extra clocks (pulling, so they wait for the others' clocks)
  // while the even ones already wait in the last barrier: it must not deadlock.
  if (me % 2 === 1) {
    for (let x = 0; x < s.extraClocks; x++) {
      keys[0] = rng.nextInt(s.keys);
      const p = ps.pull(tC, keys.subarray(0, 1), out.subarray(0, W));
      if (p) await p;
      const ck = ps.clock();
      if (ck) await ck;
    }
  }
  await ps.barrier();
  ctx.epochEnd(0, {
    violations,
    reads,
    stale_reads: staleReads,
    lag_max: lagMax,
    staleness_max: staleness,
    final_error: finalError,
  });
}

/** Turns the summed numbers into metrics (`lag_max` and `staleness` are maxima; -1: none). */
export function summarize(sums: Record<string, number>): Record<string, number> {
  return {
    violations: sums.violations ?? 0,
    reads: sums.reads ?? 0,
    stale_reads: sums.stale_reads ?? 0,
    lag_max: sums.lag_max ?? 0,
    staleness: sums.staleness_max ?? 0,
    final_error: sums.final_error ?? 0,
  };
}

/** Fails the job on any violation, a read lagging more than the staleness, or a wrong end. */
export function verdict(m: Record<string, number>): string | null {
  const bad: string[] = [];
  if (m.violations > 0) bad.push(`violations ${m.violations}`);
  if (m.staleness >= 0 && m.lag_max > m.staleness) {
    bad.push(`lag_max ${m.lag_max} above staleness ${m.staleness}`);
  }
  if (m.final_error !== 0) bad.push(`final values off by ${m.final_error}`);
  return bad.length === 0 ? null : `sspcheck failed: ${bad.join(", ")} (see VIOLATION lines)`;
}

const schema: TaskSchema = {
  data: { type: "object", doc: "No data: write data: {}.", default: {}, fields: {} },
  model: {
    type: "object",
    doc: "The staleness check's workload.",
    default: {},
    fields: {
      keys: { type: "integer", min: 1, max: 100_000, default: 32, doc: "keys of table C" },
      clocks: { type: "integer", min: 1, max: 100_000, default: 40, doc: "clocks per worker" },
      pull_batch: { type: "integer", min: 1, default: 8, doc: "random keys pulled per clock" },
      jitter_ms: {
        type: "integer",
        min: 0,
        max: 10_000,
        default: 3,
        doc: "odd workers sleep this long in about half of their clocks",
      },
      barrier_every: {
        type: "integer",
        min: 0,
        default: 15,
        doc: "clocks between barriers with exact checks (0: only at the end)",
      },
      extra_clocks: {
        type: "integer",
        min: 0,
        max: 100_000,
        default: 4,
        doc: "clocks odd workers add at the end while the even ones wait in a barrier",
      },
      seed: { type: "integer", min: 0, default: 1, doc: "seed of the random keys" },
    },
  },
  localize: { tables: ["C"], when: [], keys: [] },
  defaultLocalize: [],
};

/** Table C: `keys` keys, one float per worker of the job. */
function tables(config: JobConfig): TableSpec[] {
  const s = settings(config);
  const workers = config.cluster.nodes * config.cluster.workers_per_node;
  return [{ name: "C", keys: s.keys, dim: workers, init: { kind: "zero" } }];
}

/** The sspcheck task. */
export const task: TaskDefinition = { name: "sspcheck", schema, tables, run, summarize, verdict };
