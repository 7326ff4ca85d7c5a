/**
 * The tasks `lapse bench TASK` knows: each names its shipped config, how to describe its data
 * in the table header, its main quality metric, and optionally an in-process `plain` loop
 * (the same training without a PS) for the `plain` row.
 *
 * To add a task: one entry in {@linkcode BENCH_TASKS}. Rows of every task have the same
 * fields ({@linkcode BenchRow}), so JSON output and reports treat all tasks alike.
 *
 * @module
 */
import type { JobConfig } from "../../core/types.ts";
import { mean } from "../../core/stats.ts";
import { runPlainMf } from "../../tasks/mf_plain.ts";
import { runPlainKge } from "../../tasks/kge_plain.ts";
import { runPlainW2v } from "../../tasks/w2v_plain.ts";
import { type ClusterRun, epochRange } from "./harness.ts";
import { runManualMf } from "./manual_mf.ts";
import type { BenchRow } from "./task_bench.ts";

/** What `lapse bench` needs to know of a task. */
export interface BenchTask {
  /** The shipped config, relative to the repository root (found next to this program too). */
  config: string;
  /** What one data point is, for "<unit>/s" (ratings, triples, words). */
  unit: string;
  /** The main quality metric(s), for the help text. */
  quality: string;
  /** One line about the data of `config` for the table header. */
  describe(config: JobConfig): string;
  /** Runs the task's loop without a PS in this process and returns its row. */
  plain?: (config: JobConfig, measured: number[]) => Promise<BenchRow>;
  /**
   * Optionally the task without any PS, communication written by hand (the `manual` mode):
   * runs on `config.cluster.nodes` processes and reports epochs like a cluster run.
   */
  manual?: {
    /** One line for `--help`. */
    describe: string;
    run(
      config: JobConfig,
      timeout_s: number,
      opts: { verbose: boolean; onEpoch?: (m: Record<string, number>) => void },
    ): Promise<ClusterRun>;
  };
  /** Extra paragraphs for `--help`. */
  notes?: string;
}

const MF_NOTES =
  `The non-local path of mf trains windows of model.remote_batch ratings (default 256) with one
pull and one push per table; --set model.remote_batch=1 gives one synchronous round trip per
remote access (a ps-lite-like classic PS: a few thousand points/s, so use a smaller data set,
e.g. --set data.generate.nnz=40000, and see --timeout-s).

`;

/** What a task's plain loop reports, per epoch: training seconds, data points, eval seconds. */
interface PlainRun {
  epochSeconds: number[];
  epochPoints: number[];
  evalSeconds: number[];
  quality: number;
  qualityMetric: string;
}

/**
 * The `plain` row from a plain run: like a cluster epoch, training only (loading and
 * evaluation apart), over the `measured` epochs.
 */
function plainRow(config: JobConfig, measured: number[], r: PlainRun, wall_s: number): BenchRow {
  const per = r.epochSeconds;
  const secs = measured.map((e) => per[e]);
  const points = measured.reduce((a, e) => a + r.epochPoints[e], 0);
  const total = secs.reduce((a, b) => a + b, 0);
  return {
    task: config.task,
    mode: "plain",
    nodes: null,
    workers_per_node: 1,
    epochs: epochRange(measured),
    epoch_s: mean(secs),
    points_per_s: total > 0 ? points / total : NaN,
    local_fraction: 1,
    messages: 0,
    bytes: 0,
    quality: r.quality,
    quality_metric: r.qualityMetric,
    eval_s: mean(measured.map((e) => r.evalSeconds[e])),
    last_s: per[per.length - 1],
    status: "ok",
    wall_s,
    per_epoch_s: per,
  };
}

/** Times `run` and turns its result into the `plain` row. */
async function timedPlain<T>(
  config: JobConfig,
  measured: number[],
  run: () => T | Promise<T>,
  toPlain: (r: T) => PlainRun,
): Promise<BenchRow> {
  const t0 = performance.now();
  const r = await run();
  return plainRow(config, measured, toPlain(r), (performance.now() - t0) / 1000);
}

function plainMf(config: JobConfig, measured: number[]): Promise<BenchRow> {
  return timedPlain(config, measured, () => runPlainMf(config), (r) => ({
    epochSeconds: r.epoch_s,
    epochPoints: r.epoch_s.map(() => r.train_n),
    evalSeconds: r.eval_s,
    quality: r.test_rmse,
    qualityMetric: "test_rmse",
  }));
}

function plainKge(config: JobConfig, measured: number[]): Promise<BenchRow> {
  return timedPlain(config, measured, () => runPlainKge(config), (r) => ({
    epochSeconds: r.epoch_s,
    epochPoints: r.epoch_s.map(() => r.train_n),
    evalSeconds: r.eval_s,
    quality: r.test_mrr,
    qualityMetric: "test_mrr",
  }));
}

const KGE_NOTES =
  `kge: the default config is the small shipped WordNet subset (tasks/kge.yaml). For speed use the
WN18-like graph (lapse data wordnet --out out/wordnet; --set data.dir=$PWD/out/wordnet) or a
generated one (--set data.dir=null --set data.generate='{entities: 500000, relations: 500,
triples: 1000000}'); RESCAL: --set model.algorithm=rescal --set model.dim=32.

`;

function plainW2v(config: JobConfig, measured: number[]): Promise<BenchRow> {
  // Training is sentence preparation + SGD; loading apart.
  return timedPlain(config, measured, () => runPlainW2v(config), (r) => ({
    epochSeconds: r.epochs.map((e) => e.seconds),
    epochPoints: r.epochs.map((e) => e.words),
    evalSeconds: r.epochs.map(() => 0),
    quality: r.epochs[r.epochs.length - 1]?.loss ?? NaN,
    qualityMetric: "loss",
  }));
}

const W2V_NOTES =
  `w2v: the default config trains on the small shipped Brown sample (tasks/w2v.yaml); for figures
use the whole corpus: lapse data brown --out brown.txt; --set data.file=brown.txt. words/s counts
corpus words before subsampling, as word2vec's words/thread/sec; per_thread divides by the worker
threads of the run. quality is the last epoch's loss (lower is better). Try the negative pool:
--set model.negative_pool=2000 --set model.local_negatives=true.

`;

async function manualMf(
  config: JobConfig,
  timeout_s: number,
  opts: { verbose: boolean; onEpoch?: (m: Record<string, number>) => void },
): Promise<ClusterRun> {
  const run = await runManualMf(config, {
    timeout_s,
    onEpoch: opts.onEpoch,
    onLine: opts.verbose ? (w, l) => console.error(`worker ${w} | ${l}`) : undefined,
  });
  if (opts.verbose) {
    for (const [w, t] of run.workers.entries()) {
      console.error(
        `manual worker ${w}: train ${t.train_s.toFixed(2)}s, waiting for blocks ` +
          `${t.wait_s.toFixed(2)}s, test ${t.eval_s.toFixed(2)}s`,
      );
    }
  }
  return run;
}

/** The benchmarkable tasks by name. */
export const BENCH_TASKS: Record<string, BenchTask> = {
  mf: {
    config: "tasks/mf.yaml",
    unit: "points",
    quality: "test_rmse",
    describe(c) {
      const g = c.data?.generate;
      const data = g
        ? `generated ${g.rows} x ${g.cols}, ${g.nnz} ratings (rank ${g.rank}, noise ${g.noise})`
        : `file ${c.data?.file}`;
      return `${data}; model.rank ${c.model?.rank}`;
    },
    plain: plainMf,
    manual: {
      describe: "cli/bench/manual_mf.ts: DSGD whose H blocks go from worker to worker as raw " +
        "Float32 frames over TCP, W in a plain Float32Array, no barriers",
      run: manualMf,
    },
    notes: MF_NOTES,
  },
  kge: {
    config: "tasks/kge.yaml",
    unit: "triples",
    quality: "test_mrr",
    describe(c) {
      const g = c.data?.generate;
      const data = g
        ? `generated ${g.entities} entities, ${g.relations} relations, ${g.triples} triples`
        : `dir ${c.data?.dir}`;
      return `${data}; ${c.model?.algorithm} dim ${c.model?.dim}, ${c.model?.negatives} negatives`;
    },
    plain: plainKge,
    notes: KGE_NOTES,
  },
  w2v: {
    config: "tasks/w2v.yaml",
    unit: "words",
    quality: "loss",
    describe(c) {
      const m = c.model ?? {};
      return `corpus ${c.data?.file}; dim ${m.dim}, window ${m.window}, ${m.negatives} negatives, ` +
        `sample ${m.sample}, negative_pool ${m.negative_pool}${
          m.local_negatives ? " (local negatives)" : ""
        }`;
    },
    plain: plainW2v,
    notes: W2V_NOTES,
  },
};

/**
 * `path` if it exists relative to the working directory; for the shipped default (`shipped`)
 * not found there, the copy next to this program (so an installed `lapse` finds it).
 */
export async function shippedConfigPath(path: string, shipped: string): Promise<string> {
  if (path !== shipped) return path;
  try {
    await Deno.stat(path);
    return path;
  } catch {
    const here = new URL(`../../${shipped}`, import.meta.url);
    return here.protocol === "file:" ? decodeURIComponent(here.pathname) : path;
  }
}
