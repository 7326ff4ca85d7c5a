/**
 * `lapse bench`: side-by-side benchmarks, one run at a time (the machines are small).
 *
 * - `lapse bench mf`: the same mf job (same data, same seed) in several modes and on several
 *   node counts, plus the plain single-thread loop, as one table.
 * - `lapse bench localize`: localize latency and batched remote pull/push throughput between
 *   two nodes (task `pingpong`), next to raw loopback TCP measured in this process.
 *
 * Every cluster run is an embedded local cluster (as `lapse train` starts), stopped after the
 * run; a run that exceeds `--timeout-s` is stopped and shown as `timeout`.
 *
 * @module
 */
import { runJob } from "../driver/driver.ts";
import { type LocalCluster, startLocalCluster } from "../driver/local_cluster.ts";
import { applySets } from "../config/set_flags.ts";
import { type JobConfig } from "../core/types.ts";
import { validateJobConfig } from "../config/job_config.ts";
import { runPlainMf } from "../tasks/mf_plain.ts";
import { PINGPONG_DEFAULTS } from "../tasks/pingpong.ts";
import { loadTask } from "../tasks/registry.ts";
import { HELP, parseCommandArgs, parseIntArg, parseIntListArg } from "./args.ts";
import { UsageError } from "../core/errors.ts";
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatMetrics,
  formatNumber,
  formatRate,
  formatTable,
} from "./progress.ts";
import { loadConfigFromArgs } from "./train.ts";

// --- shared: one cluster run with a timeout ------------------------------------------------------

/** What one cluster run produced. */
interface ClusterRun {
  /** Per-epoch metrics, in the order they arrived (each with its `epoch`). */
  epochs: Record<string, number>[];
  /** `ok`, `timeout` or `failed`. */
  status: "ok" | "timeout" | "failed";
  /** For `failed`: why. */
  error?: string;
  /** Driver-side seconds from submit to the end (or the timeout). */
  wall_s: number;
}

/** The cluster of the run in progress, stopped on Ctrl-C. */
let current: LocalCluster | null = null;
let signalHooked = false;

function hookSignal(): void {
  if (signalHooked) return;
  signalHooked = true;
  try {
    Deno.addSignalListener("SIGINT", () => {
      const c = current;
      if (c === null) Deno.exit(130);
      c.stop().finally(() => Deno.exit(130));
    });
  } catch { /* no signals here */ }
}

// How long stopping a cluster may take before we go on without it (its nodes still exit when
// this process does: their stdin is our pipe).
const STOP_WAIT_MS = 15_000;

/**
 * Runs `config` on a fresh local cluster of `config.cluster.nodes` nodes; stops the cluster at
 * the end, on failure and after `timeout_s` seconds.
 */
async function runOnLocalCluster(
  config: JobConfig,
  timeout_s: number,
  opts: { verbose: boolean; onEpoch?: (m: Record<string, number>) => void },
): Promise<ClusterRun> {
  hookSignal();
  const tail: string[] = [];
  const onLine = (node: number, line: string) => {
    const text = `node ${node} | ${line}`;
    if (opts.verbose) console.error(text);
    tail.push(text);
    if (tail.length > 30) tail.shift();
  };
  const local = await startLocalCluster({
    nodes: config.cluster.nodes,
    workers_per_node: config.cluster.workers_per_node,
    onLine,
  });
  current = local;
  const epochs: Record<string, number>[] = [];
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let status: ClusterRun["status"] = "ok";
  let error: string | undefined;
  const job = runJob(local.addresses[0], local.token, config, {
    onEpoch(epoch, metrics) {
      const m = { epoch, ...metrics };
      epochs.push(m);
      opts.onEpoch?.(m);
    },
  });
  job.catch(() => {}); // after a timeout it rejects when the cluster goes away
  try {
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeout_s * 1000);
    });
    if ((await Promise.race([job, timeout])) === "timeout") status = "timeout";
  } catch (e) {
    status = "failed";
    error = (e as Error)?.message ?? String(e);
    if (!opts.verbose) { for (const l of tail) console.error(l); }
  } finally {
    clearTimeout(timer);
  }
  const wall_s = (performance.now() - t0) / 1000;
  let stopTimer: ReturnType<typeof setTimeout> | undefined;
  const stopped = await Promise.race([
    local.stop().then(() => true),
    new Promise<boolean>((resolve) => stopTimer = setTimeout(() => resolve(false), STOP_WAIT_MS)),
  ]);
  clearTimeout(stopTimer);
  if (!stopped) {
    console.error(
      `lapse bench: the nodes did not stop within ${STOP_WAIT_MS / 1000}s; going on ` +
        `(they exit when lapse bench does)`,
    );
  }
  current = null;
  return { epochs, status, error, wall_s };
}

/** The task's main metric in an epoch's metrics: test_rmse, mrr or loss (the first present). */
function quality(
  m: Record<string, number> | undefined,
): { quality: number; quality_metric: string } {
  for (const k of ["test_rmse", "mrr", "test_loss", "loss", "train_loss"]) {
    if (m !== undefined && typeof m[k] === "number") return { quality: m[k], quality_metric: k };
  }
  return { quality: NaN, quality_metric: "none" };
}

function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** `0-3`, `2`, `1-2`: a contiguous range of epoch numbers. */
function epochRange(epochs: number[]): string {
  if (epochs.length === 0) return "none";
  const lo = Math.min(...epochs), hi = Math.max(...epochs);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

function positiveNumber(flag: string, text: string): number {
  const v = Number(text);
  if (!Number.isFinite(v) || v <= 0) {
    throw new UsageError(`${flag}: expected a positive number of seconds, got "${text}"`);
  }
  return v;
}

/** Seconds with 3 significant digits: `41.2ms`, `2.40s`, `1m05s`. */
function seconds(x: number): string {
  return x < 1 ? `${Number((x * 1000).toPrecision(3))}ms` : formatDuration(x);
}

function percent(v: unknown): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return "-";
  const p = v * 100;
  return p < 100 && p >= 99.95 ? ">99.9%" : `${p.toFixed(1)}%`;
}

const fmt = (f: (n: number) => string) => (v: unknown) =>
  typeof v === "number" && Number.isFinite(v) ? f(v) : "-";

function printJson(value: unknown): void {
  console.log(
    JSON.stringify(
      value,
      (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v),
      2,
    ),
  );
}

// --- lapse bench mf ------------------------------------------------------------------------------

/** The modes `lapse bench mf` knows. */
export const BENCH_MODES = [
  "plain",
  "lapse",
  "lapse_nolocalize",
  "classic",
  "classic_remote",
] as const;
type BenchMode = typeof BENCH_MODES[number];

/**
 * Epochs of `lapse bench mf` unless `--epochs` or `--full`: enough to see a warm epoch next to
 * the first, few enough that the slowest default run (classic on 4 nodes, ~4 s per epoch of
 * tasks/mf.yaml on a 2-core machine) stays short. The data size is the config's: with the
 * batched remote path of tasks/mf.ts (model.remote_batch) classic is fast enough for it.
 */
export const MF_BENCH_EPOCHS = 3;

const MF_SPEC = {
  name: "bench mf",
  summary: "the same mf job in several modes and on several node counts, side by side",
  usage: "lapse bench mf [--modes M,M] [--nodes N,N] [--workers W] [--set PATH=VALUE ...] " +
    "[--config FILE] [--epochs N] [--json]",
  options: {
    modes: {
      type: "string",
      arg: "M,M",
      default: "plain,classic,lapse",
      doc: `modes to run: ${BENCH_MODES.join(", ")} (lapse_nolocalize = lapse, localize=none)`,
    },
    nodes: { type: "string", arg: "N,N", default: "1,2,4", doc: "node counts to run" },
    workers: { type: "string", short: "w", arg: "W", doc: "worker threads per node" },
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      default: "tasks/mf.yaml",
      doc: "task config (YAML)",
    },
    set: {
      type: "string",
      multiple: true,
      arg: "PATH=VALUE",
      doc: "override a config key, e.g. data.generate.nnz=40000 (same for every run)",
    },
    epochs: {
      type: "string",
      arg: "N",
      doc: `epochs (sets model.epochs; default ${MF_BENCH_EPOCHS})`,
    },
    "skip-epochs": {
      type: "string",
      arg: "N",
      default: "0",
      doc: "leave the first N epochs out of the means",
    },
    full: {
      type: "boolean",
      doc: `the config's own model.epochs (instead of ${MF_BENCH_EPOCHS})`,
    },
    "timeout-s": {
      type: "string",
      arg: "S",
      default: "600",
      doc: "stop a cluster run after S seconds and show it as timeout",
    },
    json: { type: "boolean", doc: "print the rows as a JSON array (no table)" },
    verbose: { type: "boolean", short: "v", doc: "show the nodes' output and every epoch" },
  },
  details: `Runs one job at a time: plain (the same SGD in one plain Float32Array loop, in this
process), then each node count with each cluster mode. Every run uses the same config, data
and seed; only ps.mode (and localize=none for lapse_nolocalize) and cluster.nodes differ.

Columns: epoch_s is the mean training time of the measured epochs, as every run reports it:
from the first barrier after loading (or the previous epoch's end) to the epoch's end, minus
the test evaluation; localize and barriers count, data loading and evaluation do not. For
plain: shuffle + SGD of the epoch. last_s: the last epoch alone (JIT warm). points_per_s =
training points / those seconds. local_fraction, messages and bytes (between nodes) are per
epoch. quality = the task's main metric after the last epoch (test_rmse for mf; else mrr or
loss). speedup = classic epoch_s / this row's
epoch_s on the same node count (vs_remote: the same for classic_remote). The header prints
every override used.

The non-local path of mf trains windows of model.remote_batch ratings (default 256) with one
pull and one push per table; --set model.remote_batch=1 gives one synchronous round trip per
remote access (a ps-lite-like classic PS: a few thousand points/s, so use a smaller data set,
e.g. --set data.generate.nnz=40000, and see --timeout-s).

Examples:
  lapse bench mf
  lapse bench mf --modes classic,lapse,lapse_nolocalize --nodes 4 --json
  lapse bench mf --full --nodes 2 --modes plain,lapse`,
} as const;

interface MfRow {
  task: string;
  mode: BenchMode;
  nodes: number | null;
  workers_per_node: number;
  epochs: string;
  epoch_s: number;
  points_per_s: number;
  local_fraction: number;
  messages: number;
  bytes: number;
  quality: number;
  /** Which metric `quality` is. */
  quality_metric: string;
  /** epoch_s of the last epoch (the warmest). */
  last_s: number;
  /** Mean test evaluation seconds of the measured epochs (not in epoch_s). */
  eval_s: number;
  speedup?: number;
  vs_remote?: number;
  status: string;
  wall_s: number;
  per_epoch_s: number[];
}

function parseModes(text: string): BenchMode[] {
  const modes = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (modes.length === 0) throw new UsageError(`--modes: expected a list like plain,classic,lapse`);
  for (const m of modes) {
    if (!(BENCH_MODES as readonly string[]).includes(m)) {
      throw new UsageError(`--modes: unknown mode "${m}": expected ${BENCH_MODES.join(", ")}`);
    }
  }
  return [...new Set(modes)] as BenchMode[];
}

/** The `--set` flags that turn the base config into one bench mode. */
function modeSets(mode: BenchMode): string[] {
  switch (mode) {
    case "lapse":
      return ["ps.mode=lapse"];
    case "lapse_nolocalize":
      return ["ps.mode=lapse", "localize=none"];
    case "classic":
      return ["ps.mode=classic"];
    case "classic_remote":
      return ["ps.mode=classic_remote"];
    default:
      return [];
  }
}

async function benchMf(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(MF_SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  const modes = parseModes(v.modes);
  const nodeCounts = [...new Set(parseIntListArg("--nodes", v.nodes, { min: 1, max: 64 }))];
  const timeout_s = positiveNumber("--timeout-s", v["timeout-s"]);
  const skip = parseIntArg("--skip-epochs", v["skip-epochs"], { min: 0 });
  const configPath = await defaultConfigPath(v.config);

  const defaults = v.full || v.epochs !== undefined ? [] : [`model.epochs=${MF_BENCH_EPOCHS}`];
  const epochSet = v.epochs !== undefined
    ? [`model.epochs=${parseIntArg("--epochs", v.epochs, { min: 1 })}`]
    : [];
  const common = [...defaults, ...v.set, ...epochSet];
  const base = await loadConfigFromArgs(configPath, common, undefined, v.workers);
  if (base.task !== "mf" && modes.includes("plain")) {
    throw new UsageError(`--modes plain needs an mf config, got task "${base.task}"`);
  }
  const epochs = Number(base.model?.epochs ?? 0);
  if (!(epochs > skip)) {
    throw new UsageError(
      `--skip-epochs ${skip} leaves nothing to measure of ${epochs} epoch(s) (model.epochs)`,
    );
  }
  const measured = Array.from({ length: epochs - skip }, (_, i) => skip + i);

  // Every run's config, checked before anything runs.
  interface Plan {
    mode: BenchMode;
    nodes: number | null;
    config: JobConfig;
  }
  const plans: Plan[] = [];
  if (modes.includes("plain")) plans.push({ mode: "plain", nodes: null, config: base });
  for (const n of nodeCounts) {
    for (const mode of modes) {
      if (mode === "plain") continue;
      const config = await loadConfigFromArgs(
        configPath,
        [...common, ...modeSets(mode)],
        String(n),
        v.workers,
      );
      plans.push({ mode, nodes: n, config });
    }
  }

  const g = base.data?.generate;
  const data = g
    ? `generated ${g.rows} x ${g.cols}, ${g.nnz} ratings (rank ${g.rank}, noise ${g.noise})`
    : `file ${base.data?.file}`;
  const header = [
    `lapse bench mf: config ${configPath}; overrides: ${
      common.length > 0 ? common.join(" ") : "none"
    }${defaults.length > 0 ? ` (bench default; --full for the config's epochs)` : ""}`,
    `data: ${data}; model.rank ${base.model?.rank}, ${epochs} epoch(s), seed ${base.seed}`,
    `per run: ps.mode=<mode> (lapse_nolocalize: ps.mode=lapse localize=none), ` +
    `cluster.nodes=<n>, workers_per_node ${base.cluster.workers_per_node}; one run at a time; ` +
    `timeout ${timeout_s}s per cluster run`,
    `epoch_s: training time (loading and test evaluation excluded), mean over epochs ${
      epochRange(measured)
    } of 0-${epochs - 1}${skip > 0 ? ` (first ${skip} skipped)` : " (none skipped)"}`,
  ];
  const say = (line: string) => console.error(line);
  if (v.json) header.forEach(say);
  else header.forEach((l) => console.log(l));

  const rows: MfRow[] = [];
  for (let i = 0; i < plans.length; i++) {
    const plan = plans[i];
    const label = plan.nodes === null
      ? `plain (in-process)`
      : `${plan.mode} on ${plan.nodes} node(s) x ${plan.config.cluster.workers_per_node}`;
    say(`[${i + 1}/${plans.length}] ${label} ...`);
    const row = plan.mode === "plain"
      ? await runPlain(plan.config, measured)
      : await runClusterMf(plan.mode, plan.config, measured, timeout_s, v.verbose);
    say(
      `[${i + 1}/${plans.length}] ${label}: ${row.status}, epoch_s ${fmt(seconds)(row.epoch_s)}, ${
        fmt(formatRate)(row.points_per_s)
      } points/s, wall ${formatDuration(row.wall_s)}`,
    );
    rows.push(row);
  }

  // Speedups: classic (and classic_remote) epoch_s / this row's, on the same node count.
  const find = (mode: BenchMode, nodes: number | null) =>
    rows.find((r) => r.mode === mode && r.nodes === nodes && Number.isFinite(r.epoch_s));
  for (const r of rows) {
    if (r.mode !== "lapse" && r.mode !== "lapse_nolocalize") continue;
    const c = find("classic", r.nodes), cr = find("classic_remote", r.nodes);
    if (c && Number.isFinite(r.epoch_s)) r.speedup = c.epoch_s / r.epoch_s;
    if (cr && Number.isFinite(r.epoch_s)) r.vs_remote = cr.epoch_s / r.epoch_s;
  }

  if (v.json) {
    printJson(rows.map((r) => ({ ...r, nodes: r.nodes ?? 1, in_process: r.nodes === null })));
    return rows.every((r) => r.status === "ok") ? 0 : 1;
  }
  const speedupFmt = (x: unknown) =>
    typeof x === "number" && Number.isFinite(x) ? `${formatNumber(Number(x.toPrecision(3)))}x` : "";
  const columns = [
    "task",
    "mode",
    { key: "nodes", format: (x: unknown) => (x === null ? "-" : String(x)), align: "right" },
    "workers_per_node",
    { key: "epochs", align: "right" },
    {
      key: "epoch_s",
      format: (x: unknown, row: Record<string, unknown>) =>
        typeof x === "number" && Number.isFinite(x)
          ? seconds(x)
          : String(row.status).split(/[ :]/)[0],
      align: "right",
    },
    { key: "last_s", format: fmt(seconds), align: "right" },
    { key: "points_per_s", format: fmt(formatRate) },
    { key: "local_fraction", format: percent, align: "right" },
    { key: "messages", format: fmt(formatCount) },
    { key: "bytes", format: fmt(formatBytes) },
    {
      key: "quality",
      label: `quality (${[...new Set(rows.map((r) => r.quality_metric))].join("/")})`,
      format: fmt(formatNumber),
    },
    { key: "speedup", format: speedupFmt, align: "right" },
    ...(modes.includes("classic_remote")
      ? [{ key: "vs_remote", format: speedupFmt, align: "right" as const }]
      : []),
    "status",
  ] as Parameters<typeof formatTable>[1];
  console.log("");
  console.log(formatTable(rows as unknown as Record<string, unknown>[], columns));
  return rows.every((r) => r.status === "ok") ? 0 : 1;
}

/** `tasks/mf.yaml` relative to the working directory, else next to this program. */
async function defaultConfigPath(path: string): Promise<string> {
  if (path !== "tasks/mf.yaml") return path;
  try {
    await Deno.stat(path);
    return path;
  } catch {
    const here = new URL("../tasks/mf.yaml", import.meta.url);
    return here.protocol === "file:" ? decodeURIComponent(here.pathname) : path;
  }
}

async function runPlain(config: JobConfig, measured: number[]): Promise<MfRow> {
  const t0 = performance.now();
  const r = await runPlainMf(config);
  const wall_s = (performance.now() - t0) / 1000;
  // Like a cluster epoch: training only (shuffle + SGD); loading and evaluation apart.
  const per = r.epoch_s;
  const secs = measured.map((e) => per[e]);
  const total = secs.reduce((a, b) => a + b, 0);
  return {
    task: config.task,
    mode: "plain",
    nodes: null,
    workers_per_node: 1,
    epochs: epochRange(measured),
    epoch_s: mean(secs),
    points_per_s: total > 0 ? (r.train_n * secs.length) / total : NaN,
    local_fraction: 1,
    messages: 0,
    bytes: 0,
    quality: r.test_rmse,
    quality_metric: "test_rmse",
    eval_s: mean(measured.map((e) => r.eval_s[e])),
    last_s: per[per.length - 1],
    status: "ok",
    wall_s,
    per_epoch_s: per,
  };
}

async function runClusterMf(
  mode: BenchMode,
  config: JobConfig,
  measured: number[],
  timeout_s: number,
  verbose: boolean,
): Promise<MfRow> {
  const run = await runOnLocalCluster(config, timeout_s, {
    verbose,
    onEpoch: verbose ? (m) => console.error(formatMetrics(m.epoch, m)) : undefined,
  });
  const want = new Set(measured);
  const got = run.epochs.filter((m) => want.has(m.epoch));
  const secs = got.map((m) => m.epoch_s);
  const total = secs.reduce((a, b) => a + b, 0);
  const points = got.reduce((a, m) => a + m.points_per_s * m.epoch_s, 0);
  const last = run.epochs[run.epochs.length - 1];
  const expected = Number(config.model?.epochs ?? 0);
  let status: string = run.status;
  if (run.status === "timeout") {
    status = `timeout ${timeout_s}s (${run.epochs.length}/${expected} epochs)`;
  } else if (run.status === "failed") status = `failed: ${run.error}`;
  return {
    task: config.task,
    mode,
    nodes: config.cluster.nodes,
    workers_per_node: config.cluster.workers_per_node,
    epochs: epochRange(got.map((m) => m.epoch)),
    epoch_s: mean(secs),
    points_per_s: total > 0 ? points / total : NaN,
    local_fraction: mean(got.map((m) => m.local_fraction)),
    messages: mean(got.map((m) => m.messages)),
    bytes: mean(got.map((m) => m.bytes)),
    ...quality(last),
    eval_s: mean(got.map((m) => m.eval_s ?? 0)),
    last_s: last?.epoch_s ?? NaN,
    status,
    wall_s: run.wall_s,
    per_epoch_s: run.epochs.map((m) => m.epoch_s),
  };
}

// --- lapse bench localize --------------------------------------------------------------------

const LOCALIZE_SPEC = {
  name: "bench localize",
  summary: "localize latency and batched remote pull/push throughput between two nodes",
  usage: "lapse bench localize [--set model.PARAM=VALUE ...] [--tcp-mib N] [--json]",
  options: {
    set: {
      type: "string",
      multiple: true,
      arg: "PATH=VALUE",
      doc: "override a pingpong parameter, e.g. model.batch=1000, model.pull_keys=10000",
    },
    "tcp-mib": {
      type: "string",
      arg: "N",
      default: "64",
      doc: "MiB pushed through the raw TCP baseline (in 1 MiB writes)",
    },
    "timeout-s": {
      type: "string",
      arg: "S",
      default: "300",
      doc: "stop the cluster run after S seconds",
    },
    json: { type: "boolean", doc: "print the rows as a JSON array (no table)" },
    verbose: { type: "boolean", short: "v", doc: "show the nodes' output" },
  },
  details: `Runs task pingpong (tasks/pingpong.ts) on a local cluster of 2 nodes x 1 worker in mode
lapse. Worker 1 localizes keys owned by node 0 and awaits each call (one key, then a batch of
model.batch keys); worker 0 localizes them back. Then worker 1 pulls and pushes model.pull_keys
remote keys of model.pull_dim floats in one call each, awaited one after the other. Latencies
are per call, from the worker's call to its completion (median p50 and p90 over the timed reps).

The raw TCP baseline runs in this process after the cluster has stopped: a loopback connection
between this thread and a worker thread, streaming --tcp-mib MiB in 1 MiB writes (MB/s), a
64-byte ping-pong (round-trip time), and 16-byte requests answered with as many bytes as one
batched pull moves (the shape of a pull with nothing but TCP in it; both sides reuse their
buffers). "vs raw" is PS / raw streaming: for latencies how many raw round trips one call
costs; for throughput the fraction of raw bandwidth reached (the budget is >= 0.5 for large
batches). "vs raw req/reply" compares with the request/reply figure instead.

Parameters (model.*, see tasks/pingpong.ts): ${
    Object.entries(PINGPONG_DEFAULTS).map(([k, x]) => `${k} ${x}`).join(", ")
  }.`,
} as const;

const RAW_TCP_WORKER = `
self.onmessage = async (e) => {
  const { mode, bytes } = e.data;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  self.postMessage({ port: listener.addr.port });
  const conn = await listener.accept();
  listener.close();
  conn.setNoDelay(true);
  if (mode === "sink") {
    const buf = new Uint8Array(1 << 20);
    let got = 0;
    while (got < bytes) {
      const n = await conn.read(buf);
      if (n === null) break;
      got += n;
    }
    await conn.write(new Uint8Array([1]));
  } else if (mode === "reply") {
    const req = new Uint8Array(16), out = new Uint8Array(bytes).fill(7);
    for (;;) {
      let got = 0;
      while (got < req.length) {
        const n = await conn.read(req.subarray(got));
        if (n === null) { conn.close(); self.close(); return; }
        got += n;
      }
      let off = 0;
      while (off < bytes) off += await conn.write(out.subarray(off));
    }
  } else {
    const buf = new Uint8Array(bytes);
    for (;;) {
      let got = 0;
      while (got < bytes) {
        const n = await conn.read(buf.subarray(got));
        if (n === null) { conn.close(); self.close(); return; }
        got += n;
      }
      let off = 0;
      while (off < bytes) off += await conn.write(buf.subarray(off));
    }
  }
  conn.close();
  self.close();
};
`;

/**
 * A loopback peer in a worker thread: `sink` reads `bytes` then answers one byte; `echo` echoes
 * `bytes`-byte messages; `reply` answers every 16-byte request with `bytes` bytes.
 */
async function rawPeer(
  mode: "sink" | "echo" | "reply",
  bytes: number,
): Promise<{ conn: Deno.Conn; worker: Worker }> {
  const url = URL.createObjectURL(new Blob([RAW_TCP_WORKER], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  URL.revokeObjectURL(url);
  const port = await new Promise<number>((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data.port);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`raw TCP peer: ${e.message}`));
    };
    worker.postMessage({ mode, bytes });
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return { conn, worker };
}

async function writeAll(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) off += await conn.write(buf.subarray(off));
}

async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) throw new Error("raw TCP peer closed early");
    got += n;
  }
}

/** MB/s (decimal) of streaming `mib` MiB in 1 MiB writes to a sink in a worker thread. */
export async function rawTcpBandwidth(mib: number): Promise<number> {
  const chunk = new Uint8Array(1 << 20).fill(7);
  const total = mib * chunk.length;
  const { conn, worker } = await rawPeer("sink", total);
  try {
    const t0 = performance.now();
    for (let i = 0; i < mib; i++) await writeAll(conn, chunk);
    await readFull(conn, new Uint8Array(1));
    const s = (performance.now() - t0) / 1000;
    return total / s / 1e6;
  } finally {
    conn.close();
    worker.terminate();
  }
}

/**
 * Times (ms) of request/answer exchanges with a peer in a worker thread, both sides reusing
 * their buffers: `echo` answers every `bytes`-byte request with the same bytes (a round trip);
 * `reply` answers a 16-byte request with `bytes` bytes (the shape of a batched pull, with
 * nothing but TCP in it).
 */
async function rawTcpExchange(
  mode: "echo" | "reply",
  bytes: number,
  reps: number,
  warmup: number,
): Promise<number[]> {
  const { conn, worker } = await rawPeer(mode, bytes);
  const req = new Uint8Array(mode === "echo" ? bytes : 16), back = new Uint8Array(bytes);
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + reps; i++) {
      const t0 = performance.now();
      await writeAll(conn, req);
      await readFull(conn, back);
      if (i >= warmup) times.push(performance.now() - t0);
    }
    return times;
  } finally {
    conn.close();
    worker.terminate();
  }
}

/** Round-trip times (ms) of `bytes`-byte ping-pongs with an echo in a worker thread. */
export function rawTcpRtt(reps: number, bytes = 64, warmup = 50): Promise<number[]> {
  return rawTcpExchange("echo", bytes, reps, warmup);
}

/** Times (ms) of 16-byte requests answered with `bytes` bytes. */
export function rawTcpRequestReply(bytes: number, reps: number, warmup = 5): Promise<number[]> {
  return rawTcpExchange("reply", bytes, reps, warmup);
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

async function benchLocalize(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(LOCALIZE_SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  const mib = parseIntArg("--tcp-mib", v["tcp-mib"], { min: 1, max: 4096 });
  const timeout_s = positiveNumber("--timeout-s", v["timeout-s"]);
  const task = await loadTask("pingpong");
  const raw = applySets(
    { task: "pingpong", cluster: { nodes: 2, workers_per_node: 1 }, ps: { mode: "lapse" } },
    v.set,
  );
  const config = validateJobConfig(raw, task.schema);
  const m = config.model;
  const head = `lapse bench localize: 2 nodes x 1 worker, ps.mode ${config.ps.mode}, placement ` +
    `${config.ps.placement}; L: ${2 * m.batch} keys x ${m.dim} floats, P: ${2 * m.pull_keys} ` +
    `keys x ${m.pull_dim} floats; reps ${m.reps_one} (1 key) / ${m.reps_batch} (batch) after ` +
    `${m.warmup} warmup, ${m.pull_reps} (pull, push) after ${m.pull_warmup} warmup; ` +
    `throughput of the median call; raw TCP: ${mib} MiB in 1 MiB writes` +
    (v.set.length > 0 ? `; overrides: ${v.set.join(" ")}` : "");
  if (v.json) console.error(head);
  else console.log(head);

  console.error("[1/2] pingpong on a local cluster of 2 nodes ...");
  const run = await runOnLocalCluster(config, timeout_s, { verbose: v.verbose });
  if (run.status !== "ok") {
    console.error(
      `lapse bench localize: the cluster run ${
        run.status === "timeout" ? `timed out after ${timeout_s}s` : `failed: ${run.error}`
      }`,
    );
    return 1;
  }
  const r = run.epochs[0] ?? {};
  console.error("[2/2] raw TCP on loopback ...");
  const raw_mb_s = await rawTcpBandwidth(mib);
  const rtts = await rawTcpRtt(500);
  const rtt50 = quantile(rtts, 0.5), rtt90 = quantile(rtts, 0.9);
  const replyBytes = (r.pull_keys ?? m.pull_keys) * (r.pull_dim ?? m.pull_dim) * 4;
  const rr = await rawTcpRequestReply(replyBytes, 30);
  const rr50 = quantile(rr, 0.5);
  const rr_mb_s = (replyBytes * rr.length) / (rr.reduce((a, b) => a + b, 0) / 1000) / 1e6;

  const pullMb = (r.pull_keys ?? m.pull_keys) * (r.pull_dim ?? m.pull_dim) * 4 / 1e6;
  const rows: Record<string, unknown>[] = [];
  const lat = (what: string, key: string, keys: number) => {
    if (r[`${key}_p50_ms`] === undefined) return;
    const p50 = r[`${key}_p50_ms`];
    rows.push({
      measurement: what,
      p50_ms: p50,
      p90_ms: r[`${key}_p90_ms`],
      us_per_key: keys > 1 ? (p50 * 1000) / keys : undefined,
      raw_tcp: `rtt ${formatNumber(Number(rtt50.toPrecision(3)))}ms`,
      raw_tcp_rtt_p50_ms: rtt50,
      vs_raw: p50 / rtt50,
    });
  };
  lat("localize 1 key (node 0 -> 1)", "loc1", 1);
  lat("localize 1 key back (1 -> 0)", "back1", 1);
  lat("localize 1 key, back to back (0 -> 1)", "loc1nb", 1);
  lat(`localize ${m.batch} keys (0 -> 1)`, "locb", m.batch);
  lat(`localize ${m.batch} keys back (1 -> 0)`, "backb", m.batch);
  lat("pull 1 key (round trip)", "pull1", 1);
  const tput = (what: string, key: "pull" | "push") => {
    const mb_s = r[`${key}_mb_s`];
    if (mb_s === undefined) return;
    rows.push({
      measurement: what,
      p50_ms: r[`${key}_p50_ms`],
      p90_ms: r[`${key}_p90_ms`],
      us_per_key: (r[`${key}_p50_ms`] * 1000) / r.pull_keys,
      mb_s,
      raw_tcp: `${formatBytes(raw_mb_s * 1e6)}/s`,
      raw_tcp_mb_s: raw_mb_s,
      vs_raw: mb_s / raw_mb_s,
      raw_request_reply_mb_s: rr_mb_s,
      vs_request_reply: mb_s / rr_mb_s,
    });
  };
  const shape = `${r.pull_keys} keys x ${r.pull_dim} (${
    formatNumber(Number(pullMb.toPrecision(3)))
  } MB)`;
  tput(`pull ${shape}`, "pull");
  tput(`push ${shape}`, "push");
  for (const key of ["pull", "push"]) {
    const cold = r[`${key}_cold_p50_ms`];
    if (cold === undefined || !Number.isFinite(cold)) continue;
    const mb_s = replyBytes / (cold / 1000) / 1e6;
    rows.push({
      measurement: `  ${key}, first ${Math.min(10, m.pull_warmup)} calls (cold)`,
      p50_ms: cold,
      us_per_key: (cold * 1000) / r.pull_keys,
      mb_s,
      raw_tcp: `${formatBytes(raw_mb_s * 1e6)}/s`,
      vs_raw: mb_s / raw_mb_s,
      vs_request_reply: mb_s / rr_mb_s,
    });
  }
  rows.push({
    measurement: `raw TCP: 16 B request, ${
      formatNumber(Number((replyBytes / 1e6).toPrecision(3)))
    } MB reply`,
    p50_ms: rr50,
    p90_ms: quantile(rr, 0.9),
    mb_s: rr_mb_s,
    raw_tcp: `${formatBytes(raw_mb_s * 1e6)}/s`,
    raw_tcp_mb_s: raw_mb_s,
    vs_raw: rr_mb_s / raw_mb_s,
  });
  if (v.json) {
    printJson(rows.map((row) => ({ ...row, raw_tcp_rtt_p90_ms: rtt90 })));
    return 0;
  }
  const ms = fmt((x) => `${formatNumber(Number(x.toPrecision(3)))}ms`);
  console.log("");
  console.log(formatTable(rows, [
    "measurement",
    { key: "p50_ms", label: "p50", format: ms, align: "right" },
    { key: "p90_ms", label: "p90", format: ms, align: "right" },
    {
      key: "us_per_key",
      label: "per key",
      format: fmt((x) => `${formatNumber(Number(x.toPrecision(3)))}us`),
      align: "right",
    },
    {
      key: "mb_s",
      label: "throughput",
      format: fmt((x) => `${formatBytes(x * 1e6)}/s`),
      align: "right",
    },
    { key: "raw_tcp", label: "raw TCP", align: "right" },
    {
      key: "vs_raw",
      label: "vs raw",
      format: (x: unknown, row: Record<string, unknown>) =>
        typeof x !== "number" || !Number.isFinite(x)
          ? "-"
          : row.mb_s !== undefined
          ? `${x.toFixed(2)} of raw`
          : `${formatNumber(Number(x.toPrecision(3)))} rtts`,
      align: "right",
    },
    {
      key: "vs_request_reply",
      label: "vs raw req/reply",
      format: fmt((x) => x.toFixed(2)),
      align: "right",
    },
  ]));
  console.log(
    `\nraw TCP loopback (this process and a worker thread, buffers reused): ${
      formatBytes(raw_mb_s * 1e6)
    }/s streaming ${mib} MiB in 1 MiB writes, 64-byte round trip p50 ${
      formatNumber(Number(rtt50.toPrecision(3)))
    }ms p90 ${formatNumber(Number(rtt90.toPrecision(3)))}ms; cluster run ${
      formatDuration(run.wall_s)
    }`,
  );
  return 0;
}

// --- lapse bench ---------------------------------------------------------------------------

const OVERVIEW = `lapse bench: side-by-side benchmarks (one run at a time)

usage: lapse bench mf [options]        the same mf job in several modes and node counts
       lapse bench localize [options]  localize latency, remote pull/push vs raw TCP

run "lapse bench mf --help" or "lapse bench localize --help" for the options;
micro-benchmarks of the store and the wire: deno bench --allow-all bench/`;

/** Runs `lapse bench`. */
export async function bench(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(OVERVIEW);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "mf") return await benchMf(rest);
  if (sub === "localize") return await benchLocalize(rest);
  throw new UsageError(
    `unknown benchmark "${sub}": expected mf or localize\nrun "lapse bench --help" for the usage`,
  );
}
