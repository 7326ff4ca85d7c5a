/**
 * The plain baseline of the mf benchmark: the same SGD updates as `tasks/mf.ts`, in one
 * single-threaded loop over flat `Float32Array`s, with no parameter server. This is the bar the
 * PS is measured against (`plain` row of `lapse bench mf`).
 *
 * Same data (all rows, as one worker), same per-epoch shuffle, the same update kernel and
 * learning rate schedules (`mfSgdStep`, `lrForEpoch`, `lrAfterEpoch` of tasks/mf.ts) and the same
 * initial model (`initValue` of core/init.ts, which the nodes use for their tables): at one
 * worker it computes what the mf task computes (test RMSE equal within float rounding of the
 * sums; see test/mf_plain_test.ts).
 *
 * @module
 */
import type { JobConfig, TableSpec } from "../mod.ts";
import { hash32, Rng } from "../core/rng.ts";
import { initValue } from "../core/init.ts";
import { assert } from "../core/errors.ts";
import { type Ratings, shuffleRange } from "../data/mf_data.ts";
import {
  loadMfData,
  lrAfterEpoch,
  lrForEpoch,
  mfPredict,
  mfSettings,
  mfSgdStep,
  type MfShape,
  standardize,
  task,
} from "./mf.ts";

/** Options of {@linkcode runPlainMf}. */
export interface PlainMfOptions {
  /** Called after every epoch. */
  onEpoch?: (e: PlainEpoch) => void;
  /** Override model.epochs. */
  epochs?: number;
}

/** One epoch of the plain loop. */
export interface PlainEpoch {
  epoch: number;
  /** Seconds of training (shuffle + SGD), without the test evaluation. */
  seconds: number;
  train_rmse: number;
  test_rmse: number;
  lr: number;
}

/** What {@linkcode runPlainMf} returns. */
export interface PlainMfResult {
  /** Training seconds per epoch (shuffle + SGD; data loading and test evaluation excluded). */
  epoch_s: number[];
  /** Seconds of test evaluation per epoch. */
  eval_s: number[];
  /** Training ratings per second over all epochs. */
  points_per_s: number;
  /** Test RMSE after the last epoch. */
  test_rmse: number;
  /** Training RMSE of the last epoch (measured before each update). */
  train_rmse: number;
  /** Training and test ratings. */
  train_n: number;
  test_n: number;
  /** Seconds to generate or read the data. */
  load_s: number;
  epochs: PlainEpoch[];
}

/**
 * Fills `a` (row `key` at `key * spec.dim`) with the initial values the nodes give table
 * `tableId` of the mf task: the same function (`initValue`), seed, table ids and specs.
 */
function initTable(a: Float32Array, specs: TableSpec[], tableId: number, seed: number): void {
  const spec = specs[tableId];
  for (let key = 0; key < spec.keys; key++) {
    initValue(spec.init, seed, tableId, key, spec.dim, a, key * spec.dim);
  }
}

/**
 * One epoch over `r[start..end)` on flat matrices (row i of W at `i * m.dim`). Returns the sum
 * of squared errors measured before each update. Allocates nothing.
 */
export function sgdEpochPlain(
  r: Ratings,
  start: number,
  end: number,
  W: Float32Array,
  H: Float32Array,
  m: MfShape,
  lr: number,
  lambda: number,
): number {
  const rows = r.rows, cols = r.cols, vals = r.vals;
  const k = m.k, dim = m.dim, opts = m.opts;
  let loss = 0;
  for (let t = start; t < end; t++) {
    loss += mfSgdStep(W, rows[t] * dim, H, cols[t] * dim, k, vals[t], lr, lambda, opts);
  }
  return loss;
}

/** Sum of squared errors of `r` under W, H. */
export function ssePlain(r: Ratings, W: Float32Array, H: Float32Array, m: MfShape): number {
  const rows = r.rows, cols = r.cols, vals = r.vals;
  const k = m.k, dim = m.dim, mu = m.mu, sigma = m.sigma, opts = m.opts;
  let sse = 0;
  for (let t = 0; t < r.length; t++) {
    const e = vals[t] - (mu + sigma * mfPredict(W, rows[t] * dim, H, cols[t] * dim, k, opts));
    sse += e * e;
  }
  return sse;
}

/** Runs the mf job of `config` in one plain loop (as one worker) and measures it. */
export async function runPlainMf(
  config: JobConfig,
  opts: PlainMfOptions = {},
): Promise<PlainMfResult> {
  const s = mfSettings(config);
  const k = s.rank;
  const t0 = performance.now();
  const { train, test } = await loadMfData(s, 0, 1);
  const load_s = (performance.now() - t0) / 1000;
  const dim = s.dim;
  const W = new Float32Array(s.rows * dim);
  const H = new Float32Array(s.cols * dim);
  // The model the PS starts from: table ids and specs of the task (W is table 0, H table 1).
  const specs = task.tables(config);
  assert(specs[0].name === "W" && specs[1].name === "H", "mf tables are W, H");
  initTable(W, specs, 0, config.seed);
  initTable(H, specs, 1, config.seed);
  let scale = { mu: 0, sigma: 1 };
  if (s.standardize) {
    let sum = 0, sumSq = 0;
    const v = train.vals;
    for (let t = 0; t < train.length; t++) {
      sum += v[t];
      sumSq += v[t] * v[t];
    }
    scale = standardize(v, sum, sumSq, train.length);
  }
  const shape: MfShape = { k, dim, opts: s.opts, ...scale };
  const rng = new Rng(0);
  const epochs = opts.epochs ?? s.epochs;
  const epoch_s: number[] = [], eval_s: number[] = [], all: PlainEpoch[] = [];
  let lr = s.lr, prevLoss = Infinity, trainRmse = NaN, testRmse = NaN;
  for (let epoch = 0; epoch < epochs; epoch++) {
    lr = lrForEpoch(s, epoch, lr);
    const a = performance.now();
    // As worker 0 of 1 on block 0: the same shuffle seed as tasks/mf.ts with one worker.
    rng.reseed(hash32(config.seed, epoch, 0));
    shuffleRange(train, 0, train.length, rng);
    const loss = sgdEpochPlain(train, 0, train.length, W, H, shape, lr, s.lambda);
    const b = performance.now();
    testRmse = Math.sqrt(ssePlain(test, W, H, shape) / Math.max(1, test.length));
    const c = performance.now();
    trainRmse = shape.sigma * Math.sqrt(loss / Math.max(1, train.length));
    epoch_s.push((b - a) / 1000);
    eval_s.push((c - b) / 1000);
    const e: PlainEpoch = {
      epoch,
      seconds: (b - a) / 1000,
      train_rmse: trainRmse,
      test_rmse: testRmse,
      lr,
    };
    all.push(e);
    opts.onEpoch?.(e);
    const next = lrAfterEpoch(s, lr, loss, prevLoss);
    prevLoss = loss;
    lr = next;
  }
  const total = epoch_s.reduce((x, y) => x + y, 0);
  return {
    epoch_s,
    eval_s,
    points_per_s: total > 0 ? (train.length * epochs) / total : 0,
    test_rmse: testRmse,
    train_rmse: trainRmse,
    train_n: train.length,
    test_n: test.length,
    load_s,
    epochs: all,
  };
}
