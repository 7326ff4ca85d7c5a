/**
 * The plain baseline of the w2v benchmark: the same skip-gram training as `tasks/w2v.ts` (same
 * vocabulary, subsampling, windows, negatives and learning rate decay, the same per-pair update
 * `sgnsStep`) in one single-threaded loop over two flat `Float32Array`s, with no parameter
 * server. This is the `plain` row of `lapse bench w2v`, and the bar for words/s per thread.
 *
 * @module
 */
import type { JobConfig } from "../mod.ts";
import { hash32, Rng } from "../core/rng.ts";
import { sharedF32 } from "../data/shared_arrays.ts";
import { keepProbabilities, unigramTable, unigramTableSize } from "../data/text_corpus.ts";
import {
  addTo,
  alphaAt,
  NegativePool,
  PreparedSentence,
  prepareSentence,
  sgnsStep,
  w2vLoss,
  w2vSettings,
} from "./w2v_model.ts";
import { loadW2vData } from "./w2v.ts";

/** One epoch of the plain loop. */
export interface PlainW2vEpoch {
  epoch: number;
  seconds: number;
  loss: number;
  words: number;
}

/** What {@linkcode runPlainW2v} returns. */
export interface PlainW2vResult {
  epochs: PlainW2vEpoch[];
  /** Corpus words (before subsampling) per second of training, over all epochs. */
  words_per_s: number;
  load_s: number;
  vocab: string[];
  dim: number;
  /** The trained input vectors (word i at i*dim). */
  vectors: Float32Array;
}

let lastPairs = 0;
/** The last sentence's loss split by label (see w2vLoss): positive sum, negative sum, steps. */
let lastPos = 0, lastNeg = 0, lastNegSteps = 0;

/**
 * Trains one prepared sentence on flat arrays (input vector of word i at `syn0[i*dim]`, output
 * at `syn1[i*dim]`); returns the summed loss (its pairs are left in `lastPairs`).
 */
export function trainSentencePlain(
  p: PreparedSentence,
  syn0: Float32Array,
  syn1: Float32Array,
  dim: number,
  window: number,
  neg: number,
  alpha: number,
  neu1e: Float32Array,
): number {
  const n = p.n, words = p.words, negs = p.negs;
  let q = 0, posL = 0, negL = 0, negSteps = 0, pairs = 0;
  for (let pos = 0; pos < n; pos++) {
    const w = words[pos], b = p.shrink[pos];
    const lo = Math.max(0, pos - window + b), hi = Math.min(n - 1, pos + window - b);
    for (let cpos = lo; cpos <= hi; cpos++) {
      if (cpos === pos) continue;
      const io = words[cpos] * dim;
      pairs++;
      neu1e.fill(0);
      posL += sgnsStep(syn0, io, syn1, w * dim, 1, alpha, dim, neu1e);
      for (let d = 0; d < neg; d++, q++) {
        const t = negs[q];
        if (t === w) continue;
        negL += sgnsStep(syn0, io, syn1, t * dim, 0, alpha, dim, neu1e);
        negSteps++;
      }
      addTo(syn0, io, neu1e, dim);
    }
  }
  lastPairs = pairs;
  lastPos = posL;
  lastNeg = negL;
  lastNegSteps = negSteps;
  return posL + negL;
}

/** Runs the w2v job of `config` in one plain loop (as one worker). */
export function runPlainW2v(
  config: JobConfig,
  opts: { epochs?: number; onEpoch?: (e: PlainW2vEpoch) => void } = {},
): PlainW2vResult {
  const s = w2vSettings(config);
  const t0 = performance.now();
  const { vocab, sentences } = loadW2vData(s, 0, 1);
  const load_s = (performance.now() - t0) / 1000;
  const V = vocab.words.length, dim = s.dim, window = s.window, neg = s.negatives;
  const syn0 = sharedF32(V * dim), syn1 = sharedF32(V * dim);
  const init = new Rng(hash32(config.seed, 0x5e0));
  for (let i = 0; i < syn0.length; i++) syn0[i] = (init.nextFloat() - 0.5) / dim;
  const keep = keepProbabilities(vocab, s.sample);
  const table = unigramTable(vocab, unigramTableSize(V));
  const rng = new Rng(hash32(config.seed, 0x77327673, 0));
  const pool = s.negativePool > 0 ? new NegativePool(s.negativePool, table, rng) : null;
  const tableLen = table.length;
  const drawNegative = pool !== null
    ? (r: Rng) => pool.draw(r)
    : (r: Rng) => table[r.nextInt(tableLen)];
  const p = new PreparedSentence(s.maxSentence);
  const neu1e = sharedF32(dim);
  let sliceWords = 0;
  for (let i = 0; i < sentences.count; i++) {
    sliceWords += sentences.starts[i + 1] - sentences.starts[i];
  }
  const epochs = opts.epochs ?? s.epochs;
  const runWords = Math.max(1, epochs * sliceWords);
  const out: PlainW2vEpoch[] = [];
  let prepared = 0, trainS = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const a = performance.now();
    let done = 0, pos = 0, negL = 0, negSteps = 0, pairs = 0;
    for (let i = 0; i < sentences.count; i++) {
      prepareSentence(
        p,
        sentences.words,
        sentences.starts[i],
        sentences.starts[i + 1],
        keep,
        window,
        neg,
        rng,
        drawNegative,
      );
      if (pool !== null && ++prepared % s.poolRefresh === 0) pool.refresh(rng);
      const alpha = alphaAt(s.alpha, (epoch * sliceWords + done) / runWords);
      trainSentencePlain(p, syn0, syn1, dim, window, neg, alpha, neu1e);
      pos += lastPos;
      negL += lastNeg;
      negSteps += lastNegSteps;
      pairs += lastPairs;
      done += p.raw;
    }
    const sec = (performance.now() - a) / 1000;
    trainS += sec;
    const e = { epoch, seconds: sec, loss: w2vLoss(pos, pairs, negL, negSteps, neg), words: done };
    out.push(e);
    opts.onEpoch?.(e);
  }
  return {
    epochs: out,
    words_per_s: trainS > 0 ? (sliceWords * epochs) / trainS : 0,
    load_s,
    vocab: vocab.words,
    dim,
    vectors: syn0,
  };
}
