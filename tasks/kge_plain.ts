/**
 * The plain baseline of the kge benchmark: the training loop of `tasks/kge.ts` in one thread
 * on flat `Float32Array`s, without a parameter server (`plain` row of `lapse bench kge`).
 *
 * Same data (all triples, as one worker), same shuffle and negatives, same step
 * ({@linkcode TrainStep}): the values of a triple's keys are copied into the step's buffers and
 * the deltas added back, where the PS loop pulls and pushes them. Only the initial values
 * differ (the PS initialises its tables itself).
 *
 * @module
 */
import type { JobConfig } from "../mod.ts";
import { hash32, Rng } from "../core/rng.ts";
import { FilterIndex, shuffleTriples } from "../data/kge_data.ts";
import { kgeSettings, loadKgeData, rankQueries } from "./kge.ts";
import { makeModel, TrainStep } from "./kge_model.ts";

/** What {@linkcode runPlainKge} returns. */
export interface PlainKgeResult {
  /** Training seconds per epoch (shuffle + steps), without evaluation. */
  epoch_s: number[];
  /** Seconds of the final test evaluation (in the last epoch's slot; 0 elsewhere). */
  eval_s: number[];
  /** Training triples per second over all epochs. */
  points_per_s: number;
  train_n: number;
  /** Filtered test MRR after the last epoch (sample of model.eval_max_triples). */
  test_mrr: number;
  train_loss: number;
}

function fillUniform(a: Float32Array, width: number, floats: number, scale: number, seed: number) {
  const rng = new Rng(seed);
  for (let i = 0; i < a.length; i++) {
    a[i] = i % width < floats ? (2 * rng.nextFloat() - 1) * scale : 0;
  }
}

/** Runs the kge job of `config` as one plain loop and measures it. */
export async function runPlainKge(
  config: JobConfig,
  opts: { epochs?: number; evaluate?: boolean } = {},
): Promise<PlainKgeResult> {
  const s = kgeSettings(config);
  const model = makeModel(s.algorithm, s.dim);
  const step = new TrainStep(model, s.negatives);
  const data = loadKgeData(s, 0, 1);
  const train = data.train, nt = train.heads.length;
  const D = s.dim, ED = 2 * D, RF = model.relFloats, RKD = 2 * RF, SL = step.slots;
  const E = new Float32Array(data.entities * ED), R = new Float32Array(data.relations * RKD);
  fillUniform(E, ED, D, s.initScale, hash32(config.seed, 0x45));
  fillUniform(R, RKD, RF, s.initScale, hash32(config.seed, 0x52));
  const params = { negatives: s.negatives, lr: s.lr, lambda: s.lambda, accOffset: s.adagradEps };
  const keys = new Uint32Array(SL);
  const rng = new Rng(0);
  const epochs = opts.epochs ?? s.epochs;
  const epoch_s: number[] = [], eval_s: number[] = [];
  let loss = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const a = performance.now();
    // As worker 0 of 1: the shuffle and negatives of tasks/kge.ts with one worker.
    rng.reseed(hash32(config.seed, epoch, 0));
    shuffleTriples(train, rng);
    rng.reseed(hash32(config.seed ^ 0x6e67, epoch, 0));
    loss = 0;
    const ent = step.ent, rel = step.rel, dE = step.entDelta, dR = step.relDelta;
    for (let t = 0; t < nt; t++) {
      keys[0] = train.heads[t];
      keys[1] = train.tails[t];
      for (let j = 2; j < SL; j++) keys[j] = rng.nextInt(data.entities);
      const r = train.rels[t];
      // Copies by loops (no subarray views per key), like the PS's local pull.
      for (let sl = 0; sl < SL; sl++) {
        const o = keys[sl] * ED, d = sl * ED;
        for (let f = 0; f < ED; f++) ent[d + f] = E[o + f];
      }
      for (let f = 0, ro = r * RKD; f < RKD; f++) rel[f] = R[ro + f];
      loss += step.run(params);
      for (let sl = 0; sl < SL; sl++) {
        const o = keys[sl] * ED, d = sl * ED;
        for (let f = 0; f < ED; f++) E[o + f] += dE[d + f];
      }
      const ro = r * RKD;
      for (let f = 0; f < RKD; f++) R[ro + f] += dR[f];
    }
    epoch_s.push((performance.now() - a) / 1000);
    eval_s.push(0);
  }
  let test_mrr = NaN;
  if (opts.evaluate ?? true) {
    const e0 = performance.now();
    const queries = data.evalSet("test");
    const filter = new FilterIndex(queries, data.relations, data.known());
    const sums = await rankQueries(model, queries, data.entities, filter, (table, ks, out) => {
      const src = table === "entities" ? E : R, w = table === "entities" ? ED : RKD;
      for (let i = 0; i < ks.length; i++) out.set(src.subarray(ks[i] * w, ks[i] * w + w), i * w);
      return undefined;
    });
    test_mrr = sums.n > 0 ? sums.rr / sums.n : NaN;
    if (eval_s.length > 0) eval_s[eval_s.length - 1] = (performance.now() - e0) / 1000;
  }
  const total = epoch_s.reduce((x, y) => x + y, 0);
  return {
    epoch_s,
    eval_s,
    points_per_s: total > 0 ? (nt * epochs) / total : 0,
    train_n: nt,
    test_mrr,
    train_loss: loss / Math.max(1, nt),
  };
}
