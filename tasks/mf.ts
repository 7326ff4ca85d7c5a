/**
 * Matrix factorization with DSGD (task `mf`).
 *
 * Model: rating(i, j) ~ <W[i], H[j]>, W: rows x rank, H: cols x rank, trained by SGD on the
 * squared error with L2 regularisation:
 *
 *     err = v - <w, h>;   w += lr * (err * h - lambda * w);   h += lr * (err * w - lambda * h)
 *
 * Distribution (DSGD): N = all workers; worker w owns row block w of the data (and of W), the
 * columns are cut into N blocks, and in subepoch s of epoch e worker w trains on the ratings of
 * block (w, p_e[(w + s) mod N]) (see `tasks/schedules.ts`), with a barrier between subepochs. So
 * no two workers ever update the same parameter at the same time.
 *
 * Localize directives understood (the defaults):
 *
 * - `{ table: W, when: start, keys: partition }`: localize this worker's W rows once.
 * - `{ table: H, when: block, schedule: dsgd }` (keys: block): localize the H rows of the column
 *   block at the start of each subepoch (the distinct columns of this worker's ratings there).
 *
 * Access paths: a rating whose W and H rows are both local is trained in place in the node's
 * value slab (`ps.acquire`/`ps.values`/`ps.release`): the same loop as the plain baseline
 * (`tasks/mf_plain.ts`) plus two lock pairs, no copy, no allocation, no Promise. When a key is
 * not local (classic modes, or without directives) a window of `model.remote_batch` ratings
 * (default 256) is trained on copies fetched with one pull per table and written back with one
 * push per table; DSGD guarantees that nobody else touches those rows during the subepoch, so
 * this is exact (the same model as rating-by-rating access, which `remote_batch: 1` gives).
 *
 * Per epoch each worker reports `{ loss_sum, train_n, test_sse, test_n, lr_sum, workers }`
 * (summed over workers by the system), turned into `train_loss` (mean squared training error,
 * measured during the epoch before each update, without the regulariser), `train_rmse`,
 * `test_rmse` and `lr` (mean over workers) by {@linkcode task.summarize}.
 *
 * Learning rate schedules: `constant`; `decay`: lr_e = lr / (1 + decay * e); `bold_driver`: each
 * worker adapts its own rate from its own training loss (x1.05 after an epoch whose loss went
 * down, x0.5 otherwise), so no extra communication is needed and workers may end up with
 * slightly different rates.
 *
 * @module
 */
import type {
  JobConfig,
  Keys,
  LocalizeDirective,
  ParameterServer,
  TableSpec,
  TaskContext,
  TaskDefinition,
  TaskSchema,
} from "../mod.ts";
import {
  type BlockedRatings,
  blockStart,
  checkGenerateConfig,
  distinctSorted,
  type GenerateConfig,
  generateRatings,
  groupByColBlock,
  type Ratings,
  type RatingsFormat,
  type RatingsSplit,
  readRatingsFile,
  scanRatingsFile,
  shuffleRange,
  sortByCol,
} from "../data/mf_data.ts";
import { hash32, mix32, Rng } from "../core/rng.ts";
import { isUserError, userError } from "../core/errors.ts";
import { dsgdColBlock, dsgdPermutation } from "./schedules.ts";
import { writeMfModel } from "./mf_model.ts";

/** Learning rate schedules. */
export type LrSchedule = "bold_driver" | "decay" | "constant";

/** How a rating's gradient moves the parameters (see {@linkcode mfSgdStep}). */
export type MfOptimizer = "sgd" | "adagrad";

/** The mf part of a job config, checked and with every default filled in. */
export interface MfSettings {
  /** Synthetic data (exactly one of `generate` and `file`). */
  generate?: GenerateConfig & { test_fraction: number };
  file?: string;
  format?: RatingsFormat;
  delimiter: string;
  indexBase: 0 | 1;
  rows: number;
  cols: number;
  testFraction: number;
  rank: number;
  lr: number;
  lambda: number;
  epochs: number;
  lrSchedule: LrSchedule;
  decay: number;
  initScale: number;
  optimizer: MfOptimizer;
  /** A bias per row and column. */
  biases: boolean;
  /** Train on standardized ratings (see {@linkcode MfShape}). */
  standardize: boolean;
  /** Kernel options: {@linkcode MF_BIAS} | {@linkcode MF_ADAGRAD}. */
  opts: number;
  /** Floats per W and H row ({@linkcode mfRowDim}). */
  dim: number;
  /** A separate test file (`data.test_file`); then all of `file` trains. */
  testFile?: string;
  /** CSV/TSV ids: numbers (with `indexBase`) or names (mapped to keys in order of appearance). */
  ids: "numbers" | "names";
  /** Folder of the trained model (`lapse train --out DIR`; see tasks/mf_model.ts). */
  out?: string;
  /** Ratings per window on the path for non-local keys (see `RemoteWindow`). */
  remoteBatch: number;
  /** The `W start partition` directive is on. */
  localizeW: boolean;
  /** The `H block dsgd` directive is on. */
  localizeH: boolean;
}

/**
 * With `optimizer: adagrad`, the defaults of `lr` and `lr_schedule` (its rates shrink by
 * themselves). These and {@linkcode MF_DEFAULTS} reach about 1.15x the noise floor on the shipped
 * generator, on std-0.3 ratings and on 1-5 stars (test/tasks/mf_defaults_test.ts).
 */
export const MF_ADAGRAD_DEFAULTS = { lr: 0.3, lr_schedule: "constant" as LrSchedule };

/** Model defaults (also in the schema). */
export const MF_DEFAULTS = {
  rank: 10,
  /** For sgd; adagrad's default is {@linkcode MF_ADAGRAD_DEFAULTS}. */
  lr: 0.1,
  lambda: 0.01,
  epochs: 15,
  lr_schedule: "decay" as LrSchedule,
  decay: 0.2,
  init_scale: 0.3,
  optimizer: "sgd" as MfOptimizer,
  biases: true,
  standardize: true,
  remote_batch: 256,
  test_fraction: 0.1,
};

const DEFAULT_LOCALIZE: LocalizeDirective[] = [
  { table: "W", when: "start", keys: "partition" },
  { table: "H", when: "block", schedule: "dsgd", keys: "block" },
];

function describe(d: LocalizeDirective): string {
  return JSON.stringify(d);
}

/** Which directives are on; throws for a directive mf does not understand. */
function mfLocalize(localize: LocalizeDirective[] | undefined): { w: boolean; h: boolean } {
  let w = false, h = false;
  for (const d of localize ?? []) {
    if (d.table === "W" && d.when === "start" && (d.keys ?? "partition") === "partition") w = true;
    else if (
      d.table === "H" && d.when === "block" && (d.schedule ?? "dsgd") === "dsgd" &&
      (d.keys ?? "block") === "block"
    ) h = true;
    else {
      throw new RangeError(
        `mf does not understand the localize directive ${describe(d)}; it understands ` +
          `{table: W, when: start, keys: partition} and {table: H, when: block, schedule: dsgd}`,
      );
    }
  }
  return { w, h };
}

function num(v: unknown, fallback: number): number {
  return typeof v === "number" ? v : fallback;
}

/** Checks the mf part of a job config and fills in defaults; throws a clear `RangeError`. */
export function mfSettings(config: JobConfig): MfSettings {
  const data = config.data ?? {};
  const model = config.model ?? {};
  const hasGen = data.generate !== undefined && data.generate !== null;
  const hasFile = typeof data.file === "string" && data.file.length > 0;
  if (hasGen === hasFile) {
    throw new RangeError(
      hasGen
        ? "mf: data.generate and data.file are both given; give exactly one"
        : "mf: give exactly one of data.generate (synthetic data) and data.file (a rating file)",
    );
  }
  const testFraction = num(data.test_fraction, MF_DEFAULTS.test_fraction);
  let generate: MfSettings["generate"];
  let rows: number, cols: number;
  if (hasGen) {
    const g = data.generate;
    generate = {
      rows: g.rows,
      cols: g.cols,
      nnz: g.nnz,
      rank: num(g.rank, 10),
      noise: num(g.noise, 0.1),
      seed: num(g.seed, 1),
      test_fraction: num(g.test_fraction, testFraction),
    };
    checkGenerateConfig(generate);
    rows = generate.rows;
    cols = generate.cols;
    if (data.rows !== undefined && data.rows !== rows) {
      throw new RangeError(
        `mf: data.rows (${data.rows}) differs from data.generate.rows (${rows})`,
      );
    }
    if (data.cols !== undefined && data.cols !== cols) {
      throw new RangeError(
        `mf: data.cols (${data.cols}) differs from data.generate.cols (${cols})`,
      );
    }
  } else {
    if (!Number.isInteger(data.rows) || !Number.isInteger(data.cols)) {
      throw new RangeError(
        `mf: data.file needs data.rows and data.cols (the matrix size; lapse train reads them ` +
          `from the file when they are not given)`,
      );
    }
    rows = data.rows;
    cols = data.cols;
  }
  const indexBase = num(data.index_base, 0);
  if (indexBase !== 0 && indexBase !== 1) {
    throw new RangeError(`mf: data.index_base must be 0 or 1, got ${indexBase}`);
  }
  if (!(testFraction >= 0 && testFraction < 1)) {
    throw new RangeError(`mf: data.test_fraction must be in [0, 1), got ${testFraction}`);
  }
  const s: MfSettings = {
    generate,
    file: hasFile ? data.file : undefined,
    format: data.format,
    delimiter: typeof data.delimiter === "string" ? data.delimiter : "auto",
    indexBase,
    rows,
    cols,
    testFraction,
    rank: num(model.rank, MF_DEFAULTS.rank),
    lr: num(
      model.lr,
      model.optimizer === "adagrad" ? MF_ADAGRAD_DEFAULTS.lr : MF_DEFAULTS.lr,
    ),
    lambda: num(model.lambda, MF_DEFAULTS.lambda),
    epochs: num(model.epochs, MF_DEFAULTS.epochs),
    lrSchedule: model.lr_schedule ??
      (model.optimizer === "adagrad" ? MF_ADAGRAD_DEFAULTS.lr_schedule : MF_DEFAULTS.lr_schedule),
    decay: num(model.decay, MF_DEFAULTS.decay),
    initScale: num(model.init_scale, MF_DEFAULTS.init_scale),
    optimizer: model.optimizer ?? MF_DEFAULTS.optimizer,
    biases: typeof model.biases === "boolean" ? model.biases : MF_DEFAULTS.biases,
    standardize: typeof model.standardize === "boolean"
      ? model.standardize
      : MF_DEFAULTS.standardize,
    opts: 0,
    dim: 0,
    out: typeof model.out === "string" && model.out !== "" ? model.out : undefined,
    testFile: typeof data.test_file === "string" && data.test_file !== ""
      ? data.test_file
      : undefined,
    ids: data.ids === "names" ? "names" : "numbers",
    remoteBatch: num(model.remote_batch, MF_DEFAULTS.remote_batch),
    localizeW: false,
    localizeH: false,
  };
  if (!Number.isInteger(s.rank) || s.rank < 1) {
    throw new RangeError(`mf: model.rank must be >= 1`);
  }
  if (!Number.isInteger(s.epochs) || s.epochs < 0) {
    throw new RangeError(`mf: model.epochs must be >= 0`);
  }
  if (!Number.isInteger(s.remoteBatch) || s.remoteBatch < 1) {
    throw new RangeError(`mf: model.remote_batch must be an integer >= 1`);
  }
  if (!(s.lr > 0)) throw new RangeError(`mf: model.lr must be > 0`);
  if (!(s.lambda >= 0)) throw new RangeError(`mf: model.lambda must be >= 0`);
  if (!["bold_driver", "decay", "constant"].includes(s.lrSchedule)) {
    throw new RangeError(`mf: model.lr_schedule must be bold_driver, decay or constant`);
  }
  if (s.optimizer !== "sgd" && s.optimizer !== "adagrad") {
    throw new RangeError(`mf: model.optimizer must be sgd or adagrad, got ${s.optimizer}`);
  }
  s.opts = (s.biases ? MF_BIAS : 0) | (s.optimizer === "adagrad" ? MF_ADAGRAD : 0);
  s.dim = mfRowDim(s.rank, s.opts);
  const loc = mfLocalize(config.localize);
  s.localizeW = loc.w;
  s.localizeH = loc.h;
  return s;
}

/**
 * Loads row block `block` of `blocks` of the data: generated (no file needed) or read from the
 * file (every worker streams the file and keeps its rows).
 */
export async function loadMfData(
  s: MfSettings,
  block: number,
  blocks: number,
  node = 0,
): Promise<RatingsSplit> {
  if (s.generate) return generateRatings(s.generate, block, blocks);
  try {
    return await readMfFile(s, block, blocks, node);
  } catch (e) {
    throw dataError(e, "data.file", s.file!, node);
  }
}

/**
 * A data problem as one user-facing line naming the file, the node and the fix (no stack):
 * a file that is missing or unreadable on that node, or a malformed line (`file:line: ...`).
 */
export function dataError(e: unknown, key: string, file: string, node: number): Error {
  const fix = `fix ${key} in the config (a relative path is relative to the config file; on a ` +
    `real cluster every node must see the file at this same path)`;
  let problem: string;
  if (e instanceof Deno.errors.NotFound) problem = `${key} "${file}" not found on node ${node}`;
  else if (e instanceof Deno.errors.PermissionDenied) {
    problem = `${key} "${file}" is not readable on node ${node} (permission denied)`;
  } else if (e instanceof Deno.errors.IsADirectory) {
    problem = `${key} "${file}" is a directory on node ${node}, not a rating file`;
  } else if (e instanceof Error && e.message.startsWith(file)) {
    // A malformed file: the reader's message names the file and line (the job, the node).
    return userError(e.message);
  } else if (e instanceof Error && isUserError(e)) return e;
  else if (e instanceof Error && e.name !== "Error" && e.name in Deno.errors) {
    problem = `cannot read ${key} "${file}" on node ${node}: ${e.message}`;
  } else return e as Error;
  return userError(`${problem}: ${fix}`);
}

async function readMfFile(
  s: MfSettings,
  block: number,
  blocks: number,
  node: number,
): Promise<RatingsSplit> {
  const names = s.ids === "names"
    ? { rows: new Map<string, number>(), cols: new Map<string, number>(), add: true }
    : undefined;
  const opts = {
    format: s.format,
    delimiter: s.delimiter,
    indexBase: s.indexBase,
    rows: s.rows,
    cols: s.cols,
    // With a test file, all of data.file trains.
    testFraction: s.testFile !== undefined ? 0 : s.testFraction,
    block,
    blocks,
    names,
  };
  const r = await readRatingsFile(s.file!, opts);
  const out: RatingsSplit = { train: r.train, test: r.test };
  if (r.rowNames) {
    out.rowNames = r.rowNames;
    out.colNames = r.colNames;
  }
  if (s.testFile !== undefined) {
    let t;
    try {
      // Every rating of the test file is a test rating (the hash is always below 1 * 2^32);
      // names it has that data.file has not are skipped (the model knows nothing of them).
      t = await readRatingsFile(s.testFile, {
        ...opts,
        format: undefined,
        testFraction: 1,
        names: names && { ...names, add: false },
      });
    } catch (e) {
      throw dataError(e, "data.test_file", s.testFile, node);
    }
    out.test = t.test;
  }
  return out;
}

/**
 * Driver side, before the job is submitted: fills in what the data file says and the config
 * does not, so that every node sizes its tables alike: `data.rows`/`data.cols` (a MatrixMarket
 * size line, the largest id, or the number of distinct names) and `data.ids` (numbers or names,
 * from the first data line). Reads the file once (a MatrixMarket file: its head only); on a real
 * cluster the driver's machine then needs the file too, or the config gives rows, cols and ids.
 */
async function prepare(config: JobConfig): Promise<void> {
  const data = config.data;
  if (typeof data?.file !== "string" || data.generate !== undefined) return;
  const need = !Number.isInteger(data.rows) || !Number.isInteger(data.cols) ||
    (data.ids ?? "auto") === "auto";
  if (!need) return;
  let scan;
  try {
    scan = await scanRatingsFile(data.file, {
      format: data.format,
      delimiter: data.delimiter,
      indexBase: data.index_base,
      ids: data.ids,
    });
  } catch (e) {
    const err = dataError(e, "data.file", data.file, -1);
    throw userError(
      `${err.message.replace(" on node -1", " on this machine (the driver)")}` +
        (e instanceof Deno.errors.NotFound
          ? "; or give data.rows, data.cols and data.ids so that only the nodes read it"
          : ""),
    );
  }
  data.rows ??= scan.rows;
  data.cols ??= scan.cols;
  data.ids = scan.ids;
  if (!(data.rows >= 1 && data.cols >= 1)) {
    throw userError(`data.file "${data.file}" has no ratings (${scan.ratings} data lines)`);
  }
}

/** True if `path` names a MatrixMarket file by its extension (the reader also sniffs). */
function isMatrixMarket(path: string): boolean {
  return /\.(mtx|mm)$/i.test(path);
}

/** Learning rate of epoch `epoch` for the `constant` and `decay` schedules. */
export function scheduledLr(s: MfSettings, epoch: number): number {
  return s.lrSchedule === "decay" ? s.lr / (1 + s.decay * epoch) : s.lr;
}

/** Bold driver: the next rate from this epoch's and the previous epoch's loss. */
export function boldDriver(lr: number, loss: number, prevLoss: number): number {
  return loss < prevLoss ? lr * 1.05 : lr * 0.5;
}

/**
 * The learning rate to train epoch `epoch` with, given the rate `lr` the previous epoch ended
 * with ({@linkcode lrAfterEpoch}; `s.lr` before epoch 0). Every mf loop (the task, the plain and
 * the manual baselines) goes through this and {@linkcode lrAfterEpoch}, so they agree.
 */
export function lrForEpoch(s: MfSettings, epoch: number, lr: number): number {
  return s.lrSchedule === "bold_driver" ? lr : scheduledLr(s, epoch);
}

/**
 * The rate after an epoch trained at `lr` whose summed training loss was `loss` (`prevLoss`:
 * the epoch before's, `Infinity` at first): only bold driver adapts here.
 */
export function lrAfterEpoch(s: MfSettings, lr: number, loss: number, prevLoss: number): number {
  return s.lrSchedule === "bold_driver" ? boldDriver(lr, loss, prevLoss) : lr;
}

/** Kernel option of {@linkcode mfSgdStep}: a bias at index `k` of every W and H row. */
export const MF_BIAS = 1;
/** Kernel option of {@linkcode mfSgdStep}: AdaGrad, one accumulator per row after the bias. */
export const MF_ADAGRAD = 2;
/** Added to AdaGrad's accumulator before the square root (avoids a division by zero). */
export const ADAGRAD_EPS = 1e-8;

/**
 * Floats per W and H row: `k` factors, then the bias (with {@linkcode MF_BIAS}), then AdaGrad's
 * accumulator (with {@linkcode MF_ADAGRAD}). Factors random at the start, the rest zero.
 */
export function mfRowDim(k: number, opts: number): number {
  return k + ((opts & MF_BIAS) !== 0 ? 1 : 0) + ((opts & MF_ADAGRAD) !== 0 ? 1 : 0);
}

/**
 * The update of mf for one rating `v` of row `W[wo ..]` and column `H[ho ..]` (rank `k`), in
 * place. The model is `b_w + b_h + <w, h>` (the biases only with {@linkcode MF_BIAS}; without
 * them it is plain `<w, h>`). With `model.standardize` the task and the baselines pass
 * standardized ratings `(v - mean) / std` (see {@linkcode MfShape}):
 *
 *     err = v - pred;   gw = err * h - lambda * w;   gh = err * w - lambda * h
 *     (biases:          gbw = err - lambda * b_w;    gbh = err - lambda * b_h)
 *     SGD:     w += lr * gw;   h += lr * gh;   b += lr * gb
 *     AdaGrad: per row, G += mean(g^2) over the row's k (+1) gradients, then the row moves by
 *              lr / sqrt(G + eps) * g (LIBMF's per-row variant: one accumulator per row)
 *
 * Returns err^2 (the training loss, measured before the update, without the regulariser). The
 * one kernel of every mf loop: the task's fast and remote paths, the plain and the manual
 * baselines (small enough that V8 inlines it into their loops; no allocation). `opts` is a
 * constant per job, so its branches cost nothing in the loop.
 */
export function mfSgdStep(
  W: Float32Array,
  wo: number,
  H: Float32Array,
  ho: number,
  k: number,
  v: number,
  lr: number,
  lambda: number,
  opts = 0,
): number {
  const bias = (opts & MF_BIAS) !== 0;
  let dot = 0;
  for (let f = 0; f < k; f++) dot += W[wo + f] * H[ho + f];
  if (bias) dot += W[wo + k] + H[ho + k];
  const err = v - dot;
  let lw = lr, lh = lr;
  if ((opts & MF_ADAGRAD) !== 0) {
    let gw2 = 0, gh2 = 0;
    for (let f = 0; f < k; f++) {
      const w = W[wo + f], h = H[ho + f];
      const gw = err * h - lambda * w, gh = err * w - lambda * h;
      gw2 += gw * gw;
      gh2 += gh * gh;
    }
    let n = k, a = k;
    if (bias) {
      const gbw = err - lambda * W[wo + k], gbh = err - lambda * H[ho + k];
      gw2 += gbw * gbw;
      gh2 += gbh * gbh;
      n++;
      a++;
    }
    const gw = (W[wo + a] += gw2 / n), gh = (H[ho + a] += gh2 / n);
    lw = lr / Math.sqrt(gw + ADAGRAD_EPS);
    lh = lr / Math.sqrt(gh + ADAGRAD_EPS);
  }
  for (let f = 0; f < k; f++) {
    const w = W[wo + f], h = H[ho + f];
    W[wo + f] = w + lw * (err * h - lambda * w);
    H[ho + f] = h + lh * (err * w - lambda * h);
  }
  if (bias) {
    W[wo + k] += lw * (err - lambda * W[wo + k]);
    H[ho + k] += lh * (err - lambda * H[ho + k]);
  }
  return err * err;
}

/**
 * The model's output for row `W[wo ..]` and column `H[ho ..]` (see {@linkcode mfSgdStep}), in
 * training units: the rating is `mu + sigma * output` ({@linkcode MfShape}).
 */
export function mfPredict(
  W: Float32Array,
  wo: number,
  H: Float32Array,
  ho: number,
  k: number,
  opts = 0,
): number {
  let dot = 0;
  for (let f = 0; f < k; f++) dot += W[wo + f] * H[ho + f];
  if ((opts & MF_BIAS) !== 0) dot += W[wo + k] + H[ho + k];
  return dot;
}

/**
 * Training ratings are standardized (or, without `model.standardize`, what they are): a mean
 * squared training error above this many times the ratings' variance (or NaN) is divergence.
 */
export const DIVERGED_LOSS_FACTOR = 100;

/**
 * Null, or the message that stops a job whose training loss of `epoch` exploded: `lossSum` is
 * the epoch's summed squared error in training units over `n` ratings. With standardized
 * ratings a model that predicts 0 has mean loss 1, so a mean loss beyond
 * {@linkcode DIVERGED_LOSS_FACTOR} (or NaN) means the rate is too large.
 */
export function divergence(
  s: MfSettings,
  epoch: number,
  lr: number,
  lossSum: number,
  n: number,
): string | null {
  if (n === 0) return null;
  const mean = lossSum / n;
  // Without standardizing the scale is unknown: only NaN/infinity and a huge loss count.
  const limit = s.standardize ? DIVERGED_LOSS_FACTOR : 1e12;
  if (mean <= limit) return null;
  const tried = lr === s.lr ? `model.lr ${s.lr}` : `model.lr ${s.lr} (at ${lr.toPrecision(3)})`;
  return `mf: training diverged in epoch ${epoch} (mean training loss ${
    Number.isFinite(mean) ? mean.toPrecision(3) : String(mean)
  }): ${tried} is too large for this data; lower model.lr (e.g. --set model.lr=${
    (s.lr / 10).toPrecision(2)
  })${s.optimizer === "sgd" ? " or use model.optimizer=adagrad" : ""}`;
}

/** Calls `op` on consecutive slices of at most `max` keys; awaits whatever it returns. */
async function inChunks(
  keys: Keys,
  max: number,
  op: (keys: Keys) => Promise<void> | undefined,
): Promise<void> {
  const pending: Promise<void>[] = [];
  for (let i = 0; i < keys.length; i += max) {
    const p = op(keys.subarray(i, Math.min(keys.length, i + max)));
    if (p) pending.push(p);
  }
  if (pending.length > 0) await Promise.all(pending);
}

/**
 * The shape of an mf model: rank, floats per row, kernel options, and the rating scale: the
 * model is trained on `(rating - mu) / sigma` and predicts `mu + sigma * output` (with
 * `model.standardize`: the training ratings' mean and std; else 0 and 1).
 */
export interface MfShape {
  k: number;
  dim: number;
  opts: number;
  mu: number;
  sigma: number;
}

/**
 * Standardizes `vals` in place to `(v - mu) / sigma` and returns (mu, sigma), from the sums
 * over all workers (`sum`, `sumSq`, `n`); std 0 (all ratings equal) counts as 1.
 */
export function standardize(
  vals: Float32Array,
  sum: number,
  sumSq: number,
  n: number,
): { mu: number; sigma: number } {
  const mu = n > 0 ? sum / n : 0;
  const variance = n > 0 ? sumSq / n - mu * mu : 0;
  const sigma = variance > 1e-12 ? Math.sqrt(variance) : 1;
  for (let t = 0; t < vals.length; t++) vals[t] = (vals[t] - mu) / sigma;
  return { mu, sigma };
}

/**
 * Test SSE of `test` (sorted by column): pulls W and H rows in chunks of at most `chunk`
 * ratings (W: the chunk's row keys as they are; H: the chunk's distinct columns).
 */
async function testSse(
  ps: ParameterServer,
  tW: number,
  tH: number,
  test: Ratings,
  m: MfShape,
  chunk: number,
  buf: { w: Float32Array; h: Float32Array; hKeys: Uint32Array; hIdx: Int32Array },
): Promise<number> {
  let sse = 0;
  const n = test.length, k = m.k, dim = m.dim, mu = m.mu, sigma = m.sigma, opts = m.opts;
  for (let start = 0; start < n; start += chunk) {
    const end = Math.min(n, start + chunk);
    let nd = 0;
    for (let t = start; t < end; t++) {
      const c = test.cols[t];
      if (nd === 0 || buf.hKeys[nd - 1] !== c) buf.hKeys[nd++] = c;
      buf.hIdx[t - start] = nd - 1;
    }
    const pw = ps.pull(tW, test.rows.subarray(start, end), buf.w.subarray(0, (end - start) * dim));
    const ph = ps.pull(tH, buf.hKeys.subarray(0, nd), buf.h.subarray(0, nd * dim));
    if (pw) await pw;
    if (ph) await ph;
    const w = buf.w, h = buf.h;
    for (let t = start; t < end; t++) {
      const wo = (t - start) * dim, ho = buf.hIdx[t - start] * dim;
      const e = test.vals[t] - (mu + sigma * mfPredict(w, wo, h, ho, k, opts));
      sse += e * e;
    }
  }
  return sse;
}

/** Distinct keys of a window, in first-seen order, with their slot numbers (reused buffers). */
class KeySlots {
  readonly keys: Uint32Array;
  n = 0;
  private readonly table: Int32Array; // slot + 1, 0 = empty
  private readonly used: Int32Array;
  private readonly mask: number;

  constructor(max: number) {
    let cap = 16;
    while (cap < 2 * max) cap *= 2;
    this.keys = new Uint32Array(max);
    this.table = new Int32Array(cap);
    this.used = new Int32Array(max);
    this.mask = cap - 1;
  }

  /** The slot of `key`, adding it if new. */
  slot(key: number): number {
    let p = mix32(key) & this.mask;
    for (;;) {
      const e = this.table[p];
      if (e === 0) break;
      if (this.keys[e - 1] === key) return e - 1;
      p = (p + 1) & this.mask;
    }
    const slot = this.n++;
    this.keys[slot] = key;
    this.table[p] = slot + 1;
    this.used[slot] = p;
    return slot;
  }

  reset(): void {
    for (let q = 0; q < this.n; q++) this.table[this.used[q]] = 0;
    this.n = 0;
  }
}

/**
 * The path for ratings whose keys are not all local: a window of up to `max` consecutive
 * ratings is trained on copies of its distinct W and H rows, fetched with one pull per table,
 * and the differences are sent back with one push per table. In DSGD no other worker touches
 * this worker's W rows or its current H block during a subepoch, so this computes exactly what
 * rating-by-rating access would, with two messages per destination instead of two per rating.
 */
class RemoteWindow {
  private readonly w: KeySlots;
  private readonly h: KeySlots;
  private readonly sw: Int32Array;
  private readonly sh: Int32Array;
  private readonly wv: Float32Array;
  private readonly hv: Float32Array;
  private readonly w0: Float32Array;
  private readonly h0: Float32Array;

  constructor(max: number, private readonly m: MfShape) {
    const dim = m.dim;
    this.w = new KeySlots(max);
    this.h = new KeySlots(max);
    this.sw = new Int32Array(max);
    this.sh = new Int32Array(max);
    this.wv = new Float32Array(max * dim);
    this.hv = new Float32Array(max * dim);
    this.w0 = new Float32Array(max * dim);
    this.h0 = new Float32Array(max * dim);
  }

  /** Trains on ratings `start .. start+n-1`; returns their squared errors before update. */
  async train(
    ps: ParameterServer,
    tW: number,
    tH: number,
    r: Ratings,
    start: number,
    n: number,
    lr: number,
    lambda: number,
  ): Promise<number> {
    const w = this.w, h = this.h, sw = this.sw, sh = this.sh;
    const k = this.m.k, dim = this.m.dim, opts = this.m.opts;
    w.reset();
    h.reset();
    for (let q = 0; q < n; q++) {
      sw[q] = w.slot(r.rows[start + q]);
      sh[q] = h.slot(r.cols[start + q]);
    }
    const nw = w.n * dim, nh = h.n * dim;
    const wv = this.wv, hv = this.hv;
    const pw = ps.pull(tW, w.keys.subarray(0, w.n), wv.subarray(0, nw));
    const ph = ps.pull(tH, h.keys.subarray(0, h.n), hv.subarray(0, nh));
    if (pw) await pw;
    if (ph) await ph;
    this.w0.set(wv.subarray(0, nw));
    this.h0.set(hv.subarray(0, nh));
    let loss = 0;
    for (let q = 0; q < n; q++) {
      const v = r.vals[start + q];
      loss += mfSgdStep(wv, sw[q] * dim, hv, sh[q] * dim, k, v, lr, lambda, opts);
    }
    // Deltas in place of the starting values: push copies what it sends, so the buffers and
    // keys are free for the next window although the pushes are not awaited (ps.wait() at the
    // subepoch's end).
    const dW = this.w0, dH = this.h0;
    for (let x = 0; x < nw; x++) dW[x] = wv[x] - dW[x];
    for (let x = 0; x < nh; x++) dH[x] = hv[x] - dH[x];
    const qw = ps.push(tW, w.keys.subarray(0, w.n), dW.subarray(0, nw));
    const qh = ps.push(tH, h.keys.subarray(0, h.n), dH.subarray(0, nh));
    if (qw) qw.catch(() => {});
    if (qh) qh.catch(() => {});
    return loss;
  }
}

/**
 * The path for ratings whose W and H rows are both local: trained in place in the node's value
 * slabs under the two key locks (`ps.acquire`, in increasing table id order), with the same
 * kernel as everywhere, no copy, no allocation, no Promise. A function of its own so that V8
 * inlines acquire, release and the kernel into this loop (inside the big `run` its inlining
 * budget ran out and the loop was ~1.5x slower).
 */
class LocalPath {
  /** Loss and ratings of the last {@linkcode train} call. */
  loss = 0;
  trained = 0;
  private readonly tA: number;
  private readonly tB: number;
  private readonly keysA: Uint32Array;
  private readonly keysB: Uint32Array;
  private readonly wFirst: boolean;

  constructor(
    private readonly ps: ParameterServer,
    private readonly tW: number,
    private readonly tH: number,
    private readonly r: Ratings,
    private readonly m: MfShape,
    private readonly lambda: number,
  ) {
    this.wFirst = tW < tH;
    this.tA = this.wFirst ? tW : tH;
    this.tB = this.wFirst ? tH : tW;
    this.keysA = this.wFirst ? r.rows : r.cols;
    this.keysB = this.wFirst ? r.cols : r.rows;
  }

  /**
   * Trains ratings `t, t+1, ...` up to `end` (exclusive) while both keys are local; returns
   * the first rating not trained (`end` when all were).
   */
  train(t: number, end: number, lr: number): number {
    const ps = this.ps, tA = this.tA, tB = this.tB, keysA = this.keysA, keysB = this.keysB;
    const tW = this.tW, tH = this.tH, wFirst = this.wFirst, vals = this.r.vals;
    const k = this.m.k, opts = this.m.opts, lambda = this.lambda;
    const t0 = t;
    let loss = 0;
    for (; t < end; t++) {
      const ka = keysA[t], kb = keysB[t];
      const a = ps.acquire(tA, ka);
      if (a < 0) break;
      const b = ps.acquire(tB, kb);
      if (b < 0) {
        ps.release(tA, ka);
        break;
      }
      const aw = wFirst ? a : b, ah = wFirst ? b : a;
      loss += mfSgdStep(ps.values(tW), aw, ps.values(tH), ah, k, vals[t], lr, lambda, opts);
      ps.release(tA, ka);
      ps.release(tB, kb);
    }
    this.loss = loss;
    this.trained = t - t0;
    return t;
  }
}

/** The training loop of one worker. */
async function run(ctx: TaskContext): Promise<void> {
  const { ps, config } = ctx;
  const s = mfSettings(config);
  const N = ctx.workers, me = ctx.worker, k = s.rank, dim = s.dim;
  const maxKeys = Math.max(1, Math.floor(config.ps?.batch_keys_max ?? 1 << 20));
  const tW = ps.table("W").id, tH = ps.table("H").id;

  const t0 = performance.now();
  const data = await loadMfData(s, me, N, ctx.node);
  const train: BlockedRatings = groupByColBlock(data.train, s.cols, N);
  const test = sortByCol(data.test, s.cols);
  const r0 = blockStart(me, s.rows, N), r1 = blockStart(me + 1, s.rows, N);
  ctx.log(
    `mf worker ${me}/${N}: rows ${r0}..${r1 - 1}, ${train.length} training and ${test.length} ` +
      `test ratings, loaded in ${((performance.now() - t0) / 1000).toFixed(2)}s`,
  );
  // This worker's count; the system sums the counts of all workers.
  ctx.epochPoints(train.length);

  // Distinct H keys of each column block of my ratings (what the H directive localizes).
  const blockHKeys: Uint32Array[] = [];
  for (let b = 0; b < N; b++) {
    blockHKeys.push(distinctSorted(train.cols, train.offsets[b], train.offsets[b + 1]));
  }
  if (s.localizeW) {
    const keys = new Uint32Array(r1 - r0);
    for (let i = 0; i < keys.length; i++) keys[i] = r0 + i;
    await inChunks(keys, maxKeys, (ks) => ps.localize(tW, ks));
  }
  const tG = s.standardize ? ps.table("G").id : -1;
  if (s.standardize && !ctx.resumeState) {
    // Mean and std of all training ratings: every worker adds its (sum, sum of squares, count).
    // (A resumed job's G holds them already: it comes back with the checkpoint.)
    let sum = 0, sumSq = 0;
    const v = train.vals;
    for (let t = 0; t < train.length; t++) {
      sum += v[t];
      sumSq += v[t] * v[t];
    }
    const p = ps.push(tG, new Uint32Array([0]), new Float32Array([sum, sumSq, train.length]));
    if (p) await p;
  }
  // Everybody has loaded its data: epoch times are measured from here (see TaskContext).
  await ps.barrier();
  let scale = { mu: 0, sigma: 1 };
  if (s.standardize) {
    const g = new Float32Array(3);
    const p = ps.pull(tG, new Uint32Array([0]), g);
    if (p) await p;
    scale = standardize(train.vals, g[0], g[1], g[2]);
  }
  const shape: MfShape = { k, dim, opts: s.opts, ...scale };

  // Reused buffers: no path allocates per rating.
  const remoteBatch = Math.max(1, Math.min(s.remoteBatch, maxKeys));
  const win = new RemoteWindow(remoteBatch, shape);
  const chunk = Math.max(1, Math.min(4096, maxKeys));
  const evalBuf = {
    w: new Float32Array(chunk * dim),
    h: new Float32Array(chunk * dim),
    hKeys: new Uint32Array(chunk),
    hIdx: new Int32Array(chunk),
  };
  const rng = new Rng(0);
  const lambda = s.lambda;
  const local = new LocalPath(ps, tW, tH, train, shape, lambda);
  const PROGRESS_EVERY = 1024;
  let sinceProgress = 0;
  let lr = s.lr;
  let prevLoss = Infinity;
  const time = { train: 0, localize: 0, barrier: 0, eval: 0 };
  let firstEpoch = 0;
  const resume = ctx.resumeState;
  if (resume) {
    // The tables hold the checkpoint's model; this worker's state and data order come back
    // (see mfResumeState).
    ({ firstEpoch, lr, prevLoss } = mfResumeState(resume, ctx.seed, s.epochs));
    for (let epoch = 0; epoch < firstEpoch; epoch++) {
      const perm = dsgdPermutation(ctx.seed, epoch, N);
      for (let sub = 0; sub < N; sub++) {
        const b = dsgdColBlock(perm, me, sub);
        rng.reseed(hash32(ctx.seed, epoch, me * N + b));
        shuffleRange(train, train.offsets[b], train.offsets[b + 1], rng);
      }
    }
    ctx.log(`mf worker ${me}/${N}: resumed at epoch ${firstEpoch} (lr ${lr})`);
  }

  for (let epoch = firstEpoch; epoch < s.epochs; epoch++) {
    lr = lrForEpoch(s, epoch, lr);
    const perm = dsgdPermutation(ctx.seed, epoch, N);
    let lossSum = 0;
    for (let sub = 0; sub < N; sub++) {
      const b = dsgdColBlock(perm, me, sub);
      let c0 = performance.now();
      if (s.localizeH) await inChunks(blockHKeys[b], maxKeys, (ks) => ps.localize(tH, ks));
      let c1 = performance.now();
      time.localize += c1 - c0;
      const start = train.offsets[b], end = train.offsets[b + 1];
      rng.reseed(hash32(ctx.seed, epoch, me * N + b));
      shuffleRange(train, start, end, rng);
      let t = start;
      while (t < end) {
        // Fast path: both keys local, trained in place (see LocalPath); in slices, so that
        // progress is reported as it goes.
        t = local.train(t, Math.min(end, t + PROGRESS_EVERY), lr);
        lossSum += local.loss;
        sinceProgress += local.trained;
        if (sinceProgress >= PROGRESS_EVERY) {
          ctx.progress(sinceProgress);
          sinceProgress = 0;
        }
        if (t < end && local.trained === 0) {
          // Slow path: a key is not local (classic mode, or not localized): a window of
          // ratings with one batched pull and push per table.
          const n = Math.min(end - t, remoteBatch);
          lossSum += await win.train(ps, tW, tH, train, t, n, lr, lambda);
          t += n;
          sinceProgress += n;
          if (sinceProgress >= PROGRESS_EVERY) {
            ctx.progress(sinceProgress);
            sinceProgress = 0;
          }
        }
      }
      c0 = performance.now();
      time.train += c0 - c1;
      // A subepoch is one clock of the bounded-staleness mode (a no-op in the others).
      const ck = ps.clock();
      if (ck) await ck;
      await ps.wait();
      await ps.barrier();
      c1 = performance.now();
      time.barrier += c1 - c0;
    }
    if (sinceProgress > 0) {
      ctx.progress(sinceProgress);
      sinceProgress = 0;
    }
    const e0 = performance.now();
    const sse = await testSse(ps, tW, tH, test, shape, chunk, evalBuf);
    const e1 = performance.now();
    time.eval += e1 - e0;
    ctx.epochEnd(epoch, {
      // In rating units (the kernel's errors are in standardized units).
      loss_sum: lossSum * shape.sigma * shape.sigma,
      train_n: train.length,
      test_sse: sse,
      test_n: test.length,
      lr_sum: lr,
      workers: 1,
      // Evaluation is not training: the system reports it apart (`_max`: the slowest worker).
      eval_s_max: (e1 - e0) / 1000,
    });
    // A diverging rate stops the job here, with the fix, instead of training on NaN.
    const diverged = divergence(s, epoch, lr, lossSum, train.length);
    if (diverged !== null) throw userError(diverged);
    const next = lrAfterEpoch(s, lr, lossSum, prevLoss);
    prevLoss = lossSum;
    lr = next;
    // Everybody has evaluated before anybody trains on: the metrics are of this epoch's model.
    await ps.barrier();
    time.barrier += performance.now() - e1;
    await ctx.checkpoint?.(epoch, {
      epoch: epoch + 1,
      lr,
      prev_loss: Number.isFinite(prevLoss) ? prevLoss : null,
      seed: ctx.seed,
    });
  }
  if (s.out !== undefined && me === 0) {
    // Every worker's last update is in (the barrier after the last epoch): worker 0 pulls the
    // tables and writes the model on its node (lapse train --out; see tasks/mf_model.ts).
    const o0 = performance.now();
    await writeMfModel(s.out, {
      meta: {
        rows: s.rows,
        cols: s.cols,
        rank: k,
        mu: shape.mu,
        sigma: shape.sigma,
        biases: s.biases,
        index_base: s.file !== undefined && s.format !== "mm" && !isMatrixMarket(s.file)
          ? s.indexBase
          : s.file !== undefined
          ? 1
          : 0,
      },
      dim,
      readW: (keys, out) => ps.pull(tW, keys, out),
      readH: (keys, out) => ps.pull(tH, keys, out),
      rowNames: data.rowNames,
      colNames: data.colNames,
    });
    ctx.log(`mf: model written to ${s.out} in ${((performance.now() - o0) / 1000).toFixed(2)}s`);
  }
  const sec = (x: number) => (x / 1000).toFixed(2) + "s";
  ctx.log(
    `mf worker ${me}/${N}: train ${sec(time.train)}, localize ${sec(time.localize)}, ` +
      `barriers ${sec(time.barrier)}, test ${sec(time.eval)}`,
  );
}

/**
 * An mf worker's checkpoint state: the next epoch, the learning rate the last epoch ended with
 * and the loss it had (bold driver), and the data order seed. The order of each rating block is
 * a chain of seeded shuffles, one per epoch, so resuming replays the shuffles of the epochs
 * before instead of storing the order: the resumed run trains on exactly the same sequence.
 */
export function mfResumeState(
  state: Record<string, unknown>,
  seed: number,
  epochs: number,
): { firstEpoch: number; lr: number; prevLoss: number } {
  const { epoch, lr, prev_loss } = state;
  if (state.seed !== seed || !Number.isInteger(epoch) || typeof lr !== "number") {
    throw new RangeError(
      `mf: the checkpoint's worker state ${JSON.stringify(state)} does not fit this job ` +
        `(seed ${seed}): resume with the config that wrote the checkpoint`,
    );
  }
  // As kge and w2v (resumeFrom): a job that would train nothing is a mistake, not a success.
  if ((epoch as number) >= epochs) {
    throw userError(
      `mf: the checkpoint was taken after epoch ${(epoch as number) - 1}, the last one of a ` +
        `${epochs}-epoch job: nothing left to train (raise model.epochs to train on)`,
    );
  }
  return {
    firstEpoch: epoch as number,
    lr,
    prevLoss: typeof prev_loss === "number" ? prev_loss : Infinity,
  };
}

const schema: TaskSchema = {
  data: {
    type: "object",
    doc: "The ratings: exactly one of `generate` (synthetic low-rank data) and `file`.",
    required: true,
    fields: {
      generate: {
        type: "object",
        doc: "Synthetic low-rank ratings (see data/README.md); each worker generates its rows.",
        fields: {
          rows: { type: "integer", min: 1, required: true, doc: "Rows (users)." },
          cols: { type: "integer", min: 1, required: true, doc: "Columns (items)." },
          nnz: { type: "integer", min: 1, required: true, doc: "Ratings (train + test)." },
          rank: { type: "integer", min: 1, default: 10, doc: "Rank of the true factors." },
          noise: { type: "number", min: 0, default: 0.1, doc: "Std of the rating noise." },
          seed: { type: "integer", default: 1, doc: "Seed of the data (not the job seed)." },
          test_fraction: {
            type: "number",
            min: 0,
            max: 0.99,
            doc: "Fraction of test ratings (default: data.test_fraction).",
          },
        },
      },
      file: {
        type: "string",
        path: true,
        doc: "A MatrixMarket (.mtx) or CSV/TSV (row,col,value) file (relative: to the config).",
      },
      test_file: {
        type: "string",
        path: true,
        doc: "a separate test file in the same format (then all of file trains)",
      },
      ids: {
        type: "string",
        enum: ["auto", "numbers", "names"],
        default: "auto",
        doc: "CSV/TSV ids: numbers, names (mapped to keys; the mapping is written with the " +
          "model) or auto (from the first data line)",
      },
      format: {
        type: "string",
        enum: ["mm", "csv", "tsv"],
        doc: "File format (default: from the first line and the extension).",
      },
      delimiter: {
        type: "string",
        default: "auto",
        doc: "CSV/TSV delimiter: auto (tab, comma, semicolon or whitespace) or the character.",
      },
      index_base: {
        type: "integer",
        min: 0,
        max: 1,
        default: 0,
        doc: "CSV/TSV: indices start at 0 or 1 (MatrixMarket is always 1-based).",
      },
      rows: {
        type: "integer",
        min: 1,
        doc: "matrix rows (default with file: the size line, the largest id, or the names)",
      },
      cols: { type: "integer", min: 1, doc: "matrix columns (default with file: as rows)" },
      test_fraction: {
        type: "number",
        min: 0,
        max: 0.99,
        default: MF_DEFAULTS.test_fraction,
        doc: "Fraction of ratings held out for the test RMSE (by a hash of the rating).",
      },
    },
  },
  model: {
    type: "object",
    doc: "The factorization model and SGD settings.",
    default: {},
    fields: {
      rank: { type: "integer", min: 1, default: MF_DEFAULTS.rank, doc: "Factor length." },
      lr: {
        type: "number",
        min: 0,
        doc: `initial learning rate (default ${MF_DEFAULTS.lr}; adagrad ${MF_ADAGRAD_DEFAULTS.lr})`,
      },
      lambda: { type: "number", min: 0, default: MF_DEFAULTS.lambda, doc: "L2 regularisation." },
      epochs: { type: "integer", min: 0, default: MF_DEFAULTS.epochs, doc: "Epochs." },
      lr_schedule: {
        type: "string",
        enum: ["bold_driver", "decay", "constant"],
        doc: "decay (default; adagrad: constant): lr/(1+decay*epoch); bold_driver: per worker, " +
          "x1.05 / x0.5 on its loss.",
      },
      decay: { type: "number", min: 0, default: MF_DEFAULTS.decay, doc: "For lr_schedule decay." },
      init_scale: {
        type: "number",
        min: 0,
        default: MF_DEFAULTS.init_scale,
        doc: "W and H start uniform in [-init_scale, init_scale].",
      },
      optimizer: {
        type: "string",
        enum: ["sgd", "adagrad"],
        default: MF_DEFAULTS.optimizer,
        doc: "sgd: step lr; adagrad: per row lr/sqrt(sum of squared gradients), scale-free",
      },
      biases: {
        type: "boolean",
        default: MF_DEFAULTS.biases,
        doc: "a bias per row and per column: rating ~ b_row + b_col + <w, h>",
      },
      standardize: {
        type: "boolean",
        default: MF_DEFAULTS.standardize,
        doc: "train on (rating - mean) / std: the same lr works for every rating scale",
      },
      out: {
        type: "string",
        path: true,
        doc: "folder for the trained model: W.npy, H.npy, biases, model.json (lapse train --out)",
      },
      remote_batch: {
        type: "integer",
        min: 1,
        default: MF_DEFAULTS.remote_batch,
        doc: "ratings per batched pull/push when keys are not local (1: one access per rating)",
      },
    },
  },
  localize: {
    tables: ["W", "H"],
    when: ["start", "block"],
    keys: ["partition", "block"],
    schedules: ["dsgd"],
  },
  defaultLocalize: DEFAULT_LOCALIZE,
};

/**
 * The tables of an mf job: W (rows x dim) and H (cols x dim), each row `rank` factors uniform in
 * [-init_scale, init_scale] then zeros (bias, AdaGrad accumulator; see {@linkcode mfRowDim});
 * with `model.standardize` also G, one key of (sum, sum of squares, count) of the training
 * ratings: their mean and std.
 */
function tables(config: JobConfig): TableSpec[] {
  const s = mfSettings(config);
  const init = { kind: "uniform" as const, scale: s.initScale, floats: s.rank };
  const t: TableSpec[] = [
    { name: "W", keys: s.rows, dim: s.dim, init },
    { name: "H", keys: s.cols, dim: s.dim, init },
  ];
  if (s.standardize) t.push({ name: "G", keys: 1, dim: 3, init: { kind: "zero" } });
  return t;
}

function summarize(sums: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  if (sums.train_n > 0) {
    out.train_loss = sums.loss_sum / sums.train_n;
    out.train_rmse = Math.sqrt(out.train_loss);
  }
  if (sums.test_n > 0) out.test_rmse = Math.sqrt(sums.test_sse / sums.test_n);
  if (sums.workers > 0) out.lr = sums.lr_sum / sums.workers;
  return out;
}

/** What the columns of an mf epoch line mean (printed once by lapse train). */
const columns = "columns: train_loss = mean squared error on the training ratings during the " +
  "epoch (train_rmse its root); test_rmse = RMSE on held-out ratings after it (the floor is " +
  "the data's noise, 0.1 for tasks/mf.yaml; predicting the mean gives the ratings' std); " +
  "local = share of parameter accesses on the worker's own node; msgs, bytes = traffic " +
  "between nodes in that epoch";

/** The mf task. */
export const task: TaskDefinition = {
  name: "mf",
  schema,
  tables,
  run,
  summarize,
  prepare,
  columns,
  checkpoints: true,
};
