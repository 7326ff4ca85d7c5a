/**
 * A micro-benchmark task (`pingpong`), run by `lapse bench localize` on 2 nodes x 1 worker:
 *
 * 1. **Localize latency.** Table `L` (2 x `batch` keys of `dim` floats; with range placement
 *    node 0 is home of keys < `batch`). Worker 1 (on node 1) localizes keys owned by node 0 and
 *    awaits each call; then worker 0 localizes them back (the "back" figures), so every rep
 *    starts from the same state. A barrier separates the moves and is not timed. First one key
 *    per call (`reps_one` times, rotating over the keys), then all `batch` keys in one call
 *    (`reps_batch` times). Also one-key localizes back to back, without barriers (`loc1nb`):
 *    fresh keys one after the other, taken back by worker 0 in one untimed call.
 * 2. **Remote pull/push.** Table `P` (2 x `pull_keys` keys of `pull_dim` floats), never
 *    localized. Worker 1 picks the keys of `P` that are not on its node (keys homed on node 0
 *    with range placement; about half the keys under random placement) and times: one-key pulls
 *    (a request/reply round trip), then `pull_reps` pulls and pushes of all of them in one call
 *    each, awaited one after the other (`pull_split` > 1: as that many concurrent calls, all
 *    awaited). Pushes add zeros, so the values do not change.
 *
 * The first `warmup` reps of every latency measurement and the first `pull_warmup` batched
 * pulls and pushes are not counted (large transfers take dozens of calls to reach their steady
 * speed: JIT tiers, allocator and GC heuristics). Works in every mode; in the classic modes
 * localize is a no-op and part 1 is skipped.
 *
 * Reported once (epoch 0), by the worker that measured it: `X_p50_ms` and `X_p90_ms` for X in
 * `loc1`, `loc1nb`, `back1`, `locb`, `backb` (b = the batch), `pull1`, `pull` and `push`;
 * `pull_mb_s`, `push_mb_s` (value bytes per second of the median call, decimal MB) and
 * `..._mb_s_mean` (over all timed calls); `pull_first_ms`, `pull_cold_p50_ms` (median of the
 * first 10 calls) and the same for push; and the parameters `batch`, `dim`, `pull_keys`,
 * `pull_dim`.
 *
 * @module
 */
import { quantile } from "../core/stats.ts";
import type { JobConfig, TableSpec, TaskContext, TaskDefinition, TaskSchema } from "../mod.ts";

/** The model parameters of pingpong, with their defaults. */
export const PINGPONG_DEFAULTS = {
  batch: 1000,
  dim: 10,
  reps_one: 200,
  reps_batch: 20,
  pull_keys: 10_000,
  pull_dim: 100,
  pull_reps: 30,
  pull_split: 1,
  warmup: 5,
  pull_warmup: 30,
};

type Settings = typeof PINGPONG_DEFAULTS;

function settings(config: JobConfig): Settings {
  const m = config.model ?? {};
  const s = { ...PINGPONG_DEFAULTS };
  for (const k of Object.keys(s) as (keyof Settings)[]) {
    if (typeof m[k] === "number") s[k] = m[k];
  }
  return s;
}

async function timed(p: Promise<void> | undefined): Promise<number> {
  const t0 = performance.now();
  if (p) await p;
  return performance.now() - t0;
}

async function run(ctx: TaskContext): Promise<void> {
  const { ps, config } = ctx;
  const s = settings(config);
  if (ctx.nodes !== 2 || ctx.workers !== 2) {
    throw new RangeError(
      `pingpong runs on 2 nodes x 1 worker (cluster.nodes=2, cluster.workers_per_node=1), ` +
        `got ${ctx.nodes} node(s) x ${ctx.workers / ctx.nodes} worker(s)`,
    );
  }
  const me = ctx.worker;
  const tL = ps.table("L").id, tP = ps.table("P").id;
  const sums: Record<string, number> = {};
  const keep = (xs: number[]) => xs.slice(s.warmup);
  const report = (name: string, xs: number[]) => {
    const ys = keep(xs);
    sums[`${name}_p50_ms`] = quantile(ys, 0.5);
    sums[`${name}_p90_ms`] = quantile(ys, 0.9);
  };
  await ps.barrier();

  // 1. Localize latency: there (worker 1) and back (worker 0).
  if (config.ps.mode === "lapse") {
    const one = new Uint32Array(1);
    const there: number[] = [], back: number[] = [];
    for (let rep = 0; rep < s.warmup + s.reps_one; rep++) {
      one[0] = rep % s.batch;
      if (me === 1) there.push(await timed(ps.localize(tL, one)));
      await ps.barrier();
      if (me === 0) back.push(await timed(ps.localize(tL, one)));
      await ps.barrier();
    }
    // The same without a barrier between calls: fresh keys, one after the other; then worker 0
    // takes them back in one call (untimed).
    const fresh: number[] = [];
    const n1 = Math.min(s.batch, s.warmup + s.reps_one);
    for (let rep = 0; rep < n1; rep++) {
      one[0] = rep;
      if (me === 1) fresh.push(await timed(ps.localize(tL, one)));
    }
    await ps.barrier();
    if (me === 0) {
      const p = ps.localize(tL, Uint32Array.from({ length: n1 }, (_, i) => i));
      if (p) await p;
    }
    await ps.barrier();
    const batch = new Uint32Array(s.batch);
    for (let i = 0; i < s.batch; i++) batch[i] = i;
    const thereB: number[] = [], backB: number[] = [];
    for (let rep = 0; rep < s.warmup + s.reps_batch; rep++) {
      if (me === 1) thereB.push(await timed(ps.localize(tL, batch)));
      await ps.barrier();
      if (me === 0) backB.push(await timed(ps.localize(tL, batch)));
      await ps.barrier();
    }
    if (me === 1) {
      report("loc1", there);
      report("loc1nb", fresh);
      report("locb", thereB);
    } else {
      report("back1", back);
      report("backb", backB);
    }
  }

  // 2. Remote pulls and pushes of table P, by worker 1.
  if (me === 1) {
    const total = ps.table("P").keys;
    const remote: number[] = [];
    for (let k = 0; k < total && remote.length < s.pull_keys; k++) {
      if (!ps.isLocal(tP, k)) remote.push(k);
    }
    const keys = Uint32Array.from(remote);
    const n = keys.length, dim = s.pull_dim;
    const one = keys.subarray(0, 1);
    // Over a SharedArrayBuffer, as a task that pulls big batches should allocate it: the node's
    // server thread then writes an all-remote pull's values in place (no answer array, no copy
    // in the worker), 0.56 vs 0.40 of raw TCP for 10,000 keys x 100 floats.
    const out = new Float32Array(new SharedArrayBuffer(n * dim * 4));
    const zeros = new Float32Array(n * dim);
    const pull1: number[] = [];
    for (let rep = 0; rep < s.warmup + s.reps_one && n > 0; rep++) {
      pull1.push(await timed(ps.pull(tP, one, out.subarray(0, dim))));
    }
    const pulls: number[] = [], pushes: number[] = [];
    // `pull_split` > 1: the same keys as that many concurrent calls (pipelining).
    const parts = Math.max(1, Math.min(s.pull_split, n));
    const split = (op: (a: number, b: number) => Promise<void> | undefined) => {
      if (parts === 1) return op(0, n);
      const ps_: Promise<void>[] = [];
      for (let c = 0; c < parts; c++) {
        const p = op(Math.floor((c * n) / parts), Math.floor(((c + 1) * n) / parts));
        if (p) ps_.push(p);
      }
      return ps_.length > 0 ? Promise.all(ps_).then(() => {}) : undefined;
    };
    for (let rep = 0; rep < s.pull_warmup + s.pull_reps && n > 0; rep++) {
      pulls.push(
        await timed(
          split((a, b) => ps.pull(tP, keys.subarray(a, b), out.subarray(a * dim, b * dim))),
        ),
      );
    }
    for (let rep = 0; rep < s.pull_warmup + s.pull_reps && n > 0; rep++) {
      pushes.push(
        await timed(
          split((a, b) => ps.push(tP, keys.subarray(a, b), zeros.subarray(a * dim, b * dim))),
        ),
      );
    }
    report("pull1", pull1);
    const bytes = n * dim * 4;
    const timedPulls = pulls.slice(s.pull_warmup), timedPushes = pushes.slice(s.pull_warmup);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    for (const [name, xs] of [["pull", timedPulls], ["push", timedPushes]] as const) {
      const p50 = quantile(xs, 0.5), total = sum(xs);
      sums[`${name}_p50_ms`] = p50;
      sums[`${name}_p90_ms`] = quantile(xs, 0.9);
      // Throughput of the median call, and over all timed calls (GC pauses included).
      sums[`${name}_mb_s`] = p50 > 0 ? bytes / (p50 / 1000) / 1e6 : 0;
      sums[`${name}_mb_s_mean`] = total > 0 ? (bytes * xs.length) / (total / 1000) / 1e6 : 0;
      // The first calls, before the JIT and the allocator have settled.
      sums[`${name}_first_ms`] = name === "pull" ? pulls[0] ?? NaN : pushes[0] ?? NaN;
      sums[`${name}_cold_p50_ms`] = quantile(
        (name === "pull" ? pulls : pushes).slice(0, Math.min(10, s.pull_warmup)),
        0.5,
      );
    }
    sums.pull_keys = n;
    sums.pull_dim = dim;
    sums.batch = s.batch;
    sums.dim = s.dim;
  }
  // One "data point" per worker: a job with none counts as an empty training set.
  ctx.epochPoints(1);
  ctx.progress(1);
  ctx.epochEnd(0, sums);
  await ps.barrier();
}

const int = (def: number, doc: string, min = 1) => ({
  type: "integer" as const,
  min,
  default: def,
  doc,
});

const schema: TaskSchema = {
  data: {
    type: "object",
    doc: "No data: pingpong only moves parameters.",
    default: {},
    fields: {},
  },
  model: {
    type: "object",
    doc: "What to measure and how often.",
    default: {},
    fields: {
      batch: int(PINGPONG_DEFAULTS.batch, "keys per localize call of the batch measurement"),
      dim: int(PINGPONG_DEFAULTS.dim, "floats per key of the localize table L"),
      reps_one: int(PINGPONG_DEFAULTS.reps_one, "timed one-key localizes and pulls"),
      reps_batch: int(PINGPONG_DEFAULTS.reps_batch, "timed batch localizes"),
      pull_keys: int(PINGPONG_DEFAULTS.pull_keys, "remote keys per batched pull/push"),
      pull_dim: int(PINGPONG_DEFAULTS.pull_dim, "floats per key of the pull table P"),
      pull_reps: int(PINGPONG_DEFAULTS.pull_reps, "timed batched pulls (and pushes)"),
      pull_split: int(
        PINGPONG_DEFAULTS.pull_split,
        "issue each batched pull/push as this many calls",
      ),
      warmup: int(PINGPONG_DEFAULTS.warmup, "untimed reps before each latency measurement", 0),
      pull_warmup: int(
        PINGPONG_DEFAULTS.pull_warmup,
        "untimed batched pulls (and pushes) before the timed ones",
        0,
      ),
    },
  },
  localize: { tables: [], when: [], keys: [] },
  defaultLocalize: [],
};

function tables(config: JobConfig): TableSpec[] {
  const s = settings(config);
  return [
    { name: "L", keys: 2 * s.batch, dim: s.dim, init: { kind: "constant", value: 1 } },
    { name: "P", keys: 2 * s.pull_keys, dim: s.pull_dim, init: { kind: "constant", value: 1 } },
  ];
}

/** Every worker reports only what it measured, so the sums are the measurements. */
function summarize(sums: Record<string, number>): Record<string, number> {
  return { ...sums };
}

/** The pingpong task. */
export const task: TaskDefinition = { name: "pingpong", schema, tables, run, summarize };
