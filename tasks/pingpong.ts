/**
 * A micro-benchmark task (`pingpong`), run by `lapse bench localize` on 2 nodes x 1 worker:
 *
 * 1. **Localize latency.** Table `L` (2 x `batch` keys of `dim` floats; with range placement
 *    node 0 is home of keys < `batch`). Worker 1 (on node 1) localizes keys owned by node 0 and
 *    awaits each call; then worker 0 localizes them back (the "back" figures), so every rep
 *    starts from the same state. A barrier separates the moves and is not timed. First one key
 *    per call (`reps_one` times, rotating over the keys), then all `batch` keys in one call
 *    (`reps_batch` times).
 * 2. **Remote pull/push.** Table `P` (2 x `pull_keys` keys of `pull_dim` floats), never
 *    localized. Worker 1 picks the keys of `P` that are not on its node (keys homed on node 0
 *    with range placement; about half the keys under random placement) and times: one-key pulls
 *    (a request/reply round trip), then `pull_reps` pulls and pushes of all of them in one call
 *    each, awaited one after the other. Pushes add zeros, so the values do not change.
 *
 * The first `warmup` reps of every measurement are not counted. Works in every mode; in the
 * classic modes localize is a no-op and part 1 is skipped.
 *
 * Reported once (epoch 0), by the worker that measured it: `loc1_p50_ms`, `loc1_p90_ms`,
 * `back1_p50_ms`, `back1_p90_ms`, `locb_p50_ms`, `locb_p90_ms`, `backb_p50_ms`, `backb_p90_ms`
 * (b = the batch), `pull1_p50_ms`, `pull1_p90_ms`, `pull_p50_ms`, `push_p50_ms`, `pull_mb_s`,
 * `push_mb_s` (value bytes per second, decimal MB), and the parameters `batch`, `pull_keys`,
 * `pull_dim`.
 *
 * @module
 */
import type { JobConfig, TaskSchema } from "./config.ts";
import type { TableSpec, TaskContext, TaskDefinition } from "./task.ts";

/** The model parameters of pingpong, with their defaults. */
export const PINGPONG_DEFAULTS = {
  batch: 1000,
  dim: 10,
  reps_one: 200,
  reps_batch: 20,
  pull_keys: 10_000,
  pull_dim: 100,
  pull_reps: 20,
  warmup: 5,
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

/** The value at quantile `q` (nearest rank) of `xs`; NaN for none. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
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
    const out = new Float32Array(n * dim);
    const zeros = new Float32Array(n * dim);
    const pull1: number[] = [];
    for (let rep = 0; rep < s.warmup + s.reps_one && n > 0; rep++) {
      pull1.push(await timed(ps.pull(tP, one, out.subarray(0, dim))));
    }
    const pulls: number[] = [], pushes: number[] = [];
    for (let rep = 0; rep < s.warmup + s.pull_reps && n > 0; rep++) {
      pulls.push(await timed(ps.pull(tP, keys, out)));
    }
    for (let rep = 0; rep < s.warmup + s.pull_reps && n > 0; rep++) {
      pushes.push(await timed(ps.push(tP, keys, zeros)));
    }
    report("pull1", pull1);
    const bytes = n * dim * 4;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const pullMs = sum(keep(pulls)), pushMs = sum(keep(pushes));
    sums.pull_p50_ms = quantile(keep(pulls), 0.5);
    sums.push_p50_ms = quantile(keep(pushes), 0.5);
    sums.pull_mb_s = pullMs > 0 ? (bytes * keep(pulls).length) / (pullMs / 1000) / 1e6 : 0;
    sums.push_mb_s = pushMs > 0 ? (bytes * keep(pushes).length) / (pushMs / 1000) / 1e6 : 0;
    sums.pull_keys = n;
    sums.pull_dim = dim;
    sums.batch = s.batch;
    sums.dim = s.dim;
  }
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
      warmup: int(PINGPONG_DEFAULTS.warmup, "untimed reps before each measurement", 0),
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
