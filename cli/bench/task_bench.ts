/**
 * `lapse bench TASK`: the same job (same data, same seed) in several modes and on several node
 * counts, plus the task's in-process plain loop, one run at a time, as one table.
 *
 * @module
 */
import type { JobConfig } from "../../core/types.ts";
import { UsageError } from "../../core/errors.ts";
import { mean } from "../../core/stats.ts";
import { HELP, parseCommandArgs, parseIntArg, parseIntListArg } from "../args.ts";
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatMetrics,
  formatNumber,
  formatRate,
  formatTable,
} from "../progress.ts";
import { loadConfigFromArgs } from "../train.ts";
import {
  type ClusterRun,
  epochRange,
  fmt,
  percent,
  positiveNumber,
  printJson,
  quality,
  runOnLocalCluster,
  seconds,
} from "./harness.ts";
import { BENCH_TASKS, type BenchTask, shippedConfigPath } from "./tasks.ts";
import { writeBenchReport } from "../../driver/report.ts";

/** The modes `lapse bench TASK` knows (`plain`: the task's in-process loop without a PS). */
export const BENCH_MODES = [
  "plain",
  "manual",
  "lapse",
  "lapse_nolocalize",
  "classic",
  "classic_remote",
  "stale",
] as const;
/** One of {@linkcode BENCH_MODES}. */
export type BenchMode = typeof BENCH_MODES[number];

/**
 * Epochs of `lapse bench TASK` unless `--epochs` or `--full`: enough to see a warm epoch next
 * to the first, few enough that the slowest default run (classic on 4 nodes, ~4 s per epoch of
 * tasks/mf.yaml on a 2-core machine) stays short. The data size is the config's: with the
 * batched remote path of tasks/mf.ts (model.remote_batch) classic is fast enough for it.
 */
export const BENCH_EPOCHS = 3;

/**
 * The modes `lapse bench NAME` can run: every cluster mode, plus plain and manual where the
 * task has them (only mf has a hand-written manual baseline).
 */
export function taskModes(entry: BenchTask): BenchMode[] {
  return BENCH_MODES.filter((m) =>
    (m !== "plain" || entry.plain !== undefined) && (m !== "manual" || entry.manual !== undefined)
  );
}

function specFor(name: string, entry: BenchTask) {
  const modes = taskModes(entry);
  return {
    name: `bench ${name}`,
    summary: `the same ${name} job in several modes and on several node counts, side by side`,
    usage: `lapse bench ${name} [--modes M,M] [--nodes N,N] [--workers W] [--set PATH=VALUE ...] ` +
      "[--config FILE] [--epochs N] [--repeat R] [--json] [--report FILE.html]",
    options: {
      modes: {
        type: "string",
        arg: "M,M",
        default: entry.plain ? "plain,classic,lapse" : "classic,lapse",
        doc: `modes to run: ${modes.join(", ")} (lapse_nolocalize = lapse, localize=none${
          entry.manual ? "; manual: no PS, hand-coded communication" : ""
        })`,
      },
      nodes: { type: "string", arg: "N,N", default: "1,2,4", doc: "node counts to run" },
      workers: { type: "string", short: "w", arg: "W", doc: "worker threads per node" },
      config: {
        type: "string",
        short: "c",
        arg: "FILE",
        default: entry.config,
        doc: "task config (YAML)",
      },
      set: {
        type: "string",
        multiple: true,
        arg: "PATH=VALUE",
        doc: "override a config key, e.g. ps.location_caches=false (same for every run)",
      },
      epochs: {
        type: "string",
        arg: "N",
        doc: `epochs (sets model.epochs; default ${BENCH_EPOCHS})`,
      },
      "skip-epochs": {
        type: "string",
        arg: "N",
        default: "0",
        doc: "leave the first N epochs out of the means",
      },
      full: {
        type: "boolean",
        doc: `the config's own model.epochs (instead of ${BENCH_EPOCHS})`,
      },
      "timeout-s": {
        type: "string",
        arg: "S",
        default: "600",
        doc: "stop a cluster run after S seconds and show it as timeout",
      },
      repeat: {
        type: "string",
        arg: "R",
        default: "1",
        doc: "run every combination R times: epoch_s is the median, with min and max",
      },
      json: { type: "boolean", doc: "print the rows as a JSON array (no table)" },
      report: {
        type: "string",
        arg: "FILE.html",
        doc: "also write the rows as a self-contained HTML report with charts",
      },
      verbose: { type: "boolean", short: "v", doc: "show the nodes' output and every epoch" },
    },
    details: `Runs one job at a time: plain (the task's training loop without a PS, in this
process; ${entry.plain ? "available" : `not available for ${name}`}), then each node count
with each cluster mode. Every run uses the same config, data and seed; only ps.mode (and
localize=none for lapse_nolocalize) and cluster.nodes differ. The modes make the paper's
ablation: classic_remote (no fast local access, no localize), classic (fast local access
only), lapse_nolocalize, lapse; stale is the bounded-staleness PS (ps.staleness, default 1).
${
      entry.manual
        ? `
manual: the same training with no PS at all, as one would write it by hand for this job
(${entry.manual.describe}); one worker process per node, workers_per_node 1 only.
vs_manual = this row's epoch_s / manual's on the same node count (1.25 = 25% slower).
`
        : ""
    }
Columns: epoch_s is the mean training time of the measured epochs, as every run reports it
(with --repeat R: the median over R runs, min-max beside it):
from the first barrier after loading (or the previous epoch's end) to the epoch's end, minus
the test evaluation; localize and barriers count, data loading and evaluation do not. For
plain: shuffle + SGD of the epoch. last_s: the last epoch alone (JIT warm). points_per_s =
training points / those seconds; per_thread = points_per_s / worker threads. local_fraction, messages and bytes (between nodes) are per
epoch. quality = the task's main metric after the last epoch (${entry.quality}).
speedup = classic epoch_s / this row's epoch_s on the same node count (vs_remote: the same
for classic_remote). vs_1node = the same mode's epoch_s on 1 node / this row's. vs_lapse =
this row's epoch_s / lapse's on the same node count (3x = three times slower than lapse).
The header prints every override used. --report FILE.html writes the same rows as one
self-contained page of charts (lapse report makes one from metrics files too).

${entry.notes ?? ""}Examples:
  lapse bench ${name}
  lapse bench ${name} --modes classic,lapse,lapse_nolocalize --nodes 4 --json
  lapse bench ${name} --full --nodes 2 --modes plain,lapse
  lapse bench ${name} --modes classic,classic_remote,stale,lapse,lapse_nolocalize --repeat 3 \\
    --report out/${name}.html`,
  } as const;
}

/** One row of a `lapse bench TASK` table (also its JSON form). */
export interface BenchRow {
  task: string;
  mode: BenchMode;
  nodes: number | null;
  workers_per_node: number;
  epochs: string;
  epoch_s: number;
  points_per_s: number;
  /** points_per_s per worker thread (nodes x workers_per_node; plain: 1). */
  per_thread?: number;
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
  /** This row's epoch_s / the manual row's on the same node count. */
  vs_manual?: number;
  // Filled in by the harness for every row (optional only for the tasks' row builders):
  /** Runs of this combination (`--repeat`); epoch_s is their median. */
  repeats?: number;
  /** The least and greatest epoch_s of the repeats. */
  epoch_s_min?: number;
  epoch_s_max?: number;
  /** The same mode's epoch_s on 1 node / this row's (absent without a 1-node run). */
  speedup_1node?: number;
  /** This row's epoch_s / lapse's on the same node count (2 = twice as slow as lapse). */
  vs_lapse?: number;
  /** Per epoch of the reported run: the quality metric and points/s (for reports). */
  per_epoch_quality?: number[];
  per_epoch_points_per_s?: number[];
  status: string;
  wall_s: number;
  per_epoch_s: number[];
}

/** `--modes`: any known mode passes here (a mode the task lacks gets its own error later). */
function parseModes(text: string, known: readonly BenchMode[]): BenchMode[] {
  const modes = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (modes.length === 0) throw new UsageError(`--modes: expected a list like plain,classic,lapse`);
  for (const m of modes) {
    if (!(BENCH_MODES as readonly string[]).includes(m)) {
      throw new UsageError(`--modes: unknown mode "${m}": expected ${known.join(", ")}`);
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
    case "stale":
      return ["ps.mode=stale"];
    default:
      return [];
  }
}

/** Runs `lapse bench NAME` for a task of {@linkcode BENCH_TASKS}. */
export async function benchTask(name: string, args: string[]): Promise<number> {
  const entry = BENCH_TASKS[name];
  const parsed = parseCommandArgs(specFor(name, entry), args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  const modes = parseModes(v.modes, taskModes(entry));
  const nodeCounts = [...new Set(parseIntListArg("--nodes", v.nodes, { min: 1, max: 64 }))];
  const timeout_s = positiveNumber("--timeout-s", v["timeout-s"]);
  const skip = parseIntArg("--skip-epochs", v["skip-epochs"], { min: 0 });
  const repeat = parseIntArg("--repeat", v.repeat, { min: 1, max: 100 });
  const configPath = await shippedConfigPath(v.config, entry.config);

  const defaults = v.full || v.epochs !== undefined ? [] : [`model.epochs=${BENCH_EPOCHS}`];
  const epochSet = v.epochs !== undefined
    ? [`model.epochs=${parseIntArg("--epochs", v.epochs, { min: 1 })}`]
    : [];
  const common = [...defaults, ...v.set, ...epochSet];
  const base = await loadConfigFromArgs(configPath, common, undefined, v.workers);
  if (base.task !== name) {
    throw new UsageError(
      `lapse bench ${name} needs a ${name} config, got task "${base.task}" (--config)`,
    );
  }
  if (modes.includes("plain") && entry.plain === undefined) {
    throw new UsageError(`--modes: task ${name} has no plain mode (drop it from --modes)`);
  }
  if (modes.includes("manual") && entry.manual === undefined) {
    throw new UsageError(`--modes: task ${name} has no manual mode (drop it from --modes)`);
  }
  if (modes.includes("manual") && base.cluster.workers_per_node !== 1) {
    throw new UsageError(
      `--modes manual runs one worker per node process: workers_per_node must be 1, got ` +
        `${base.cluster.workers_per_node} (--workers 1, or drop manual from --modes)`,
    );
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

  const data = entry.describe(base);
  const header = [
    `lapse bench ${name}: config ${configPath}; overrides: ${
      common.length > 0 ? common.join(" ") : "none"
    }${defaults.length > 0 ? ` (bench default; --full for the config's epochs)` : ""}`,
    `data: ${data}; ${epochs} epoch(s), seed ${base.seed}`,
    `per run: ps.mode=<mode> (lapse_nolocalize: ps.mode=lapse localize=none${
      modes.includes("manual") ? "; manual: no PS" : ""
    }), ` +
    `cluster.nodes=<n>, workers_per_node ${base.cluster.workers_per_node}; one run at a time; ` +
    `timeout ${timeout_s}s per cluster run`,
    `epoch_s: training time (loading and test evaluation excluded), mean over epochs ${
      epochRange(measured)
    } of 0-${epochs - 1}${skip > 0 ? ` (first ${skip} skipped)` : " (none skipped)"}`,
  ];
  const say = (line: string) => console.error(line);
  if (v.json) header.forEach(say);
  else header.forEach((l) => console.log(l));

  const rows: BenchRow[] = [];
  for (let i = 0; i < plans.length; i++) {
    const plan = plans[i];
    const label = plan.nodes === null
      ? `plain (in-process)`
      : `${plan.mode} on ${plan.nodes} node(s) x ${plan.config.cluster.workers_per_node}`;
    const runs: BenchRow[] = [];
    for (let r = 0; r < repeat; r++) {
      const of = repeat > 1 ? ` (run ${r + 1}/${repeat})` : "";
      say(`[${i + 1}/${plans.length}] ${label}${of} ...`);
      const row = plan.mode === "plain"
        ? await entry.plain!(plan.config, measured)
        : plan.mode === "manual"
        ? await runManual(entry, plan.config, measured, timeout_s, v.verbose)
        : await runCluster(plan.mode, plan.config, measured, timeout_s, v.verbose);
      say(
        `[${i + 1}/${plans.length}] ${label}${of}: ${row.status}, epoch_s ${
          fmt(seconds)(row.epoch_s)
        }, ${fmt(formatRate)(row.points_per_s)} ${entry.unit}/s, wall ${
          formatDuration(row.wall_s)
        }`,
      );
      runs.push(row);
    }
    rows.push(medianRun(runs));
  }
  compareRows(rows);

  for (const r of rows) r.per_thread = r.points_per_s / ((r.nodes ?? 1) * r.workers_per_node);
  // Speedups: classic (and classic_remote) epoch_s / this row's, on the same node count.
  const find = (mode: BenchMode, nodes: number | null) =>
    rows.find((r) => r.mode === mode && r.nodes === nodes && Number.isFinite(r.epoch_s));
  for (const r of rows) {
    if (r.mode !== "lapse" && r.mode !== "lapse_nolocalize") continue;
    const c = find("classic", r.nodes), cr = find("classic_remote", r.nodes);
    if (c && Number.isFinite(r.epoch_s)) r.speedup = c.epoch_s / r.epoch_s;
    if (cr && Number.isFinite(r.epoch_s)) r.vs_remote = cr.epoch_s / r.epoch_s;
  }
  // Against the hand-written baseline: how much slower each PS row is on the same node count.
  for (const r of rows) {
    if (r.mode === "plain" || r.mode === "manual" || !Number.isFinite(r.epoch_s)) continue;
    const m = find("manual", r.nodes);
    if (m) r.vs_manual = r.epoch_s / m.epoch_s;
  }

  if (v.report !== undefined) {
    await writeBenchReport(v.report, {
      title: `lapse bench ${name}`,
      header,
      rows,
      unit: entry.unit,
    });
    say(`report: ${v.report}`);
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
    ...(repeat > 1
      ? [{
        key: "epoch_s_min",
        label: "min-max",
        format: (_x: unknown, row: Record<string, unknown>) =>
          `${fmt(seconds)(row.epoch_s_min)}-${fmt(seconds)(row.epoch_s_max)}`,
        align: "right" as const,
      }]
      : []),
    { key: "last_s", format: fmt(seconds), align: "right" },
    { key: "points_per_s", format: fmt(formatRate) },
    { key: "per_thread", format: fmt(formatRate) },
    { key: "local_fraction", format: percent, align: "right" },
    { key: "messages", format: fmt(formatCount) },
    { key: "bytes", format: fmt(formatBytes) },
    {
      key: "quality",
      label: `quality (${[...new Set(rows.map((r) => r.quality_metric))].join("/")})`,
      format: fmt(formatNumber),
    },
    { key: "speedup", format: speedupFmt, align: "right" },
    ...(nodeCounts.includes(1) && nodeCounts.length > 1
      ? [{ key: "speedup_1node", label: "vs_1node", format: speedupFmt, align: "right" as const }]
      : []),
    ...(modes.includes("lapse")
      ? [{ key: "vs_lapse", format: speedupFmt, align: "right" as const }]
      : []),
    ...(modes.includes("classic_remote")
      ? [{ key: "vs_remote", format: speedupFmt, align: "right" as const }]
      : []),
    ...(modes.includes("manual")
      ? [{ key: "vs_manual", format: speedupFmt, align: "right" as const }]
      : []),
    "status",
  ] as Parameters<typeof formatTable>[1];
  console.log("");
  console.log(formatTable(rows as unknown as Record<string, unknown>[], columns));
  return rows.every((r) => r.status === "ok") ? 0 : 1;
}

async function runCluster(
  mode: BenchMode,
  config: JobConfig,
  measured: number[],
  timeout_s: number,
  verbose: boolean,
): Promise<BenchRow> {
  const run = await runOnLocalCluster(config, timeout_s, {
    verbose,
    onEpoch: verbose ? (m) => console.error(formatMetrics(m.epoch, m)) : undefined,
  });
  return rowOf(mode, config, run, measured, timeout_s);
}

async function runManual(
  entry: BenchTask,
  config: JobConfig,
  measured: number[],
  timeout_s: number,
  verbose: boolean,
): Promise<BenchRow> {
  const run = await entry.manual!.run(config, timeout_s, {
    verbose,
    onEpoch: verbose ? (m) => console.error(formatMetrics(m.epoch, m)) : undefined,
  });
  return rowOf("manual", config, run, measured, timeout_s);
}

/** A table row from a run's per-epoch metrics (cluster and manual runs alike). */
function rowOf(
  mode: BenchMode,
  config: JobConfig,
  run: ClusterRun,
  measured: number[],
  timeout_s: number,
): BenchRow {
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
    per_epoch_quality: run.epochs.map((m) => quality(m).quality),
    per_epoch_points_per_s: run.epochs.map((m) => m.points_per_s),
  };
}

/**
 * One row for the repeats of a combination: the run with the median epoch_s (so that its
 * other columns belong to one real run), with the least and greatest epoch_s of all.
 */
export function medianRun(runs: BenchRow[]): BenchRow {
  const ok = runs.filter((r) => Number.isFinite(r.epoch_s));
  const sorted = [...ok].sort((a, b) => a.epoch_s - b.epoch_s);
  const median = sorted.length > 0 ? sorted[(sorted.length - 1) >> 1] : runs[runs.length - 1];
  const row: BenchRow = {
    ...median,
    repeats: runs.length,
    epoch_s_min: sorted.length > 0 ? sorted[0].epoch_s : NaN,
    epoch_s_max: sorted.length > 0 ? sorted[sorted.length - 1].epoch_s : NaN,
    per_epoch_quality: median.per_epoch_quality ?? [],
    per_epoch_points_per_s: median.per_epoch_points_per_s ?? [],
  };
  // A combination is only ok if every repeat was.
  const bad = runs.find((r) => r.status !== "ok");
  if (bad) row.status = bad.status;
  return row;
}

/** Sets the columns that compare rows: speedup over 1 node, time relative to lapse. */
export function compareRows(rows: BenchRow[]): void {
  const find = (mode: BenchMode, nodes: number | null) =>
    rows.find((r) => r.mode === mode && r.nodes === nodes && Number.isFinite(r.epoch_s));
  for (const r of rows) {
    if (!Number.isFinite(r.epoch_s) || r.nodes === null) continue;
    const one = find(r.mode, 1);
    if (one) r.speedup_1node = one.epoch_s / r.epoch_s;
    const lapse = find("lapse", r.nodes);
    if (lapse) r.vs_lapse = r.epoch_s / lapse.epoch_s;
  }
}
