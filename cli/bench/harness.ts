/**
 * The shared part of `lapse bench`: one cluster run on a fresh embedded local cluster with a
 * timeout, and the formatting of benchmark rows.
 *
 * @module
 */
import type { JobConfig } from "../../core/types.ts";
import { UsageError } from "../../core/errors.ts";
import { runJob } from "../../driver/driver.ts";
import { type LocalCluster, startLocalCluster } from "../../driver/local_cluster.ts";
import { localDataDirs } from "../../driver/launch.ts";
import { loadTask } from "../../tasks/registry.ts";
import { formatDuration } from "../progress.ts";

/** What one cluster run produced. */
export interface ClusterRun {
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
export async function runOnLocalCluster(
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
    workersPerNode: config.cluster.workers_per_node,
    onLine,
    // As for lapse train: the nodes may read the working directory and the folders of the
    // files the config names (data.file, data.dir outside the working directory).
    data_dirs: localDataDirs(config, await loadTask(config.task)),
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
export function quality(
  m: Record<string, number> | undefined,
): { quality: number; quality_metric: string } {
  for (const k of ["test_rmse", "test_mrr", "mrr", "test_loss", "loss", "train_loss"]) {
    if (m !== undefined && typeof m[k] === "number") return { quality: m[k], quality_metric: k };
  }
  return { quality: NaN, quality_metric: "none" };
}

/** `0-3`, `2`, `1-2`: a contiguous range of epoch numbers. */
export function epochRange(epochs: number[]): string {
  if (epochs.length === 0) return "none";
  const lo = Math.min(...epochs), hi = Math.max(...epochs);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

/** Parses a positive number of seconds for `flag` or throws a UsageError. */
export function positiveNumber(flag: string, text: string): number {
  const v = Number(text);
  if (!Number.isFinite(v) || v <= 0) {
    throw new UsageError(`${flag}: expected a positive number of seconds, got "${text}"`);
  }
  return v;
}

/** Seconds with 3 significant digits: `41.2ms`, `2.40s`, `1m05s`. */
export function seconds(x: number): string {
  return x < 1 ? `${Number((x * 1000).toPrecision(3))}ms` : formatDuration(x);
}

/** A fraction as a percentage; `>99.9%` rather than a rounded 100.0% that is not. */
export function percent(v: unknown): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return "-";
  const p = v * 100;
  return p < 100 && p >= 99.95 ? ">99.9%" : `${p.toFixed(1)}%`;
}

/** Formats a finite number with `f`, anything else as `-`. */
export const fmt = (f: (n: number) => string) => (v: unknown) =>
  typeof v === "number" && Number.isFinite(v) ? f(v) : "-";

/** Prints a value as indented JSON (non-finite numbers as null). */
export function printJson(value: unknown): void {
  console.log(
    JSON.stringify(
      value,
      (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v),
      2,
    ),
  );
}
