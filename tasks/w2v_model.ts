/**
 * The model of task `w2v`, shared by the PS task (`tasks/w2v.ts`) and the plain baseline
 * (`tasks/w2v_plain.ts`): settings, the sigmoid tables and the update of one (input, output)
 * pair, and the preparation of a sentence (subsampling, dynamic window, negatives), all exactly
 * as in the original word2vec (skip-gram, negative sampling).
 *
 * @module
 */
import type { JobConfig, LocalizeDirective, TaskSchema } from "../mod.ts";
import type { Rng } from "../core/rng.ts";
import { sharedF64, sharedI32 } from "../data/shared_arrays.ts";

/** The w2v part of a job config, checked and with every default filled in. */
export interface W2vSettings {
  /** Corpus: a text file or a folder of them. */
  file: string;
  /** Longest sentence (words kept after the vocabulary); longer lines are cut. */
  maxSentence: number;
  dim: number;
  window: number;
  negatives: number;
  sample: number;
  alpha: number;
  minCount: number;
  maxVocab: number;
  epochs: number;
  /** Size of the pool of negatives (0: draw from the unigram table, as word2vec). */
  negativePool: number;
  /** Sentences between two refreshes of the pool. */
  poolRefresh: number;
  /** lapse: localize the pool ahead (else it only makes the draws cheap: a small array). */
  localizePool: boolean;
  /** Draw only negatives that are local now (needs a pool or the unigram table). */
  localNegatives: boolean;
  /** The most frequent words replicated per worker, words_out (0: none; `tasks/w2v_hot.ts`). */
  hotWords: number;
  /** The same for words_in (default: `hotWords`). */
  hotWordsIn: number;
  /** Sentences between two merges of the replicated words with the PS. */
  hotSync: number;
  /** lapse: deal every key over the nodes at start (key k to node k mod nodes). */
  spread: boolean;
  /** Words between two `ps.clock()` calls (0: never): the clocks of bounded staleness. */
  clockEvery: number;
  /** Vectors file written at the end by worker 0 ("" = none). */
  out: string;
  /** Sentences ahead whose words are localized, per table (0 = directive off). */
  aheadIn: number;
  aheadOut: number;
}

/** word2vec's defaults (also in the schema). */
export const W2V_DEFAULTS = {
  dim: 100,
  window: 5,
  negatives: 5,
  sample: 1e-3,
  alpha: 0.025,
  min_count: 5,
  max_vocab: 0,
  epochs: 5,
  negative_pool: 0,
  pool_refresh: 64,
  local_negatives: false,
  localize_pool: true,
  hot_words: 0,
  hot_sync: 64,
  spread: false,
  clock_every: 10_000,
  max_sentence: 1000,
};

/** The learning rate never goes below this fraction of `alpha` (word2vec: 1e-4). */
export const MIN_ALPHA_FRACTION = 1e-4;

/** The default directives: the words of the sentence 16 ahead, in both tables. */
export const W2V_DEFAULT_LOCALIZE: LocalizeDirective[] = [
  { table: "words_in", when: "ahead", keys: "next", steps: 16 },
  { table: "words_out", when: "ahead", keys: "next", steps: 16 },
];

function num(v: unknown, fallback: number): number {
  return typeof v === "number" ? v : fallback;
}

/** Checks the w2v part of a job config and fills in defaults; a clear `RangeError` if wrong. */
export function w2vSettings(config: JobConfig): W2vSettings {
  const data = config.data ?? {};
  const m = config.model ?? {};
  if (typeof data.file !== "string" || data.file.length === 0) {
    throw new RangeError(
      `w2v: data.file is required: a text file or a folder (one sentence per line; ` +
        `"lapse data brown --out brown.txt" writes one)`,
    );
  }
  const s: W2vSettings = {
    file: data.file,
    maxSentence: num(data.max_sentence, W2V_DEFAULTS.max_sentence),
    dim: num(m.dim, W2V_DEFAULTS.dim),
    window: num(m.window, W2V_DEFAULTS.window),
    negatives: num(m.negatives, W2V_DEFAULTS.negatives),
    sample: num(m.sample, W2V_DEFAULTS.sample),
    alpha: num(m.alpha, W2V_DEFAULTS.alpha),
    minCount: num(m.min_count, W2V_DEFAULTS.min_count),
    maxVocab: num(m.max_vocab, W2V_DEFAULTS.max_vocab),
    epochs: num(m.epochs, W2V_DEFAULTS.epochs),
    negativePool: num(m.negative_pool, W2V_DEFAULTS.negative_pool),
    poolRefresh: num(m.pool_refresh, W2V_DEFAULTS.pool_refresh),
    localNegatives: m.local_negatives ?? W2V_DEFAULTS.local_negatives,
    localizePool: m.localize_pool ?? W2V_DEFAULTS.localize_pool,
    hotWords: num(m.hot_words, W2V_DEFAULTS.hot_words),
    hotWordsIn: num(m.hot_words_in, num(m.hot_words, W2V_DEFAULTS.hot_words)),
    hotSync: num(m.hot_sync, W2V_DEFAULTS.hot_sync),
    spread: m.spread ?? W2V_DEFAULTS.spread,
    clockEvery: num(m.clock_every, W2V_DEFAULTS.clock_every),
    out: typeof m.out === "string" ? m.out : "",
    aheadIn: 0,
    aheadOut: 0,
  };
  for (const d of config.localize ?? []) {
    const ok = (d.table === "words_in" || d.table === "words_out") && d.when === "ahead" &&
      (d.keys ?? "next") === "next";
    if (!ok) {
      throw new RangeError(
        `w2v does not understand the localize directive ${JSON.stringify(d)}; it understands ` +
          `{table: words_in, when: ahead, steps: S} and {table: words_out, when: ahead, steps: S}`,
      );
    }
    if (d.table === "words_in") s.aheadIn = d.steps ?? 8;
    else s.aheadOut = d.steps ?? 8;
  }
  return s;
}

/** The w2v config schema (sections data and model). */
export const W2V_SCHEMA: TaskSchema = {
  data: {
    type: "object",
    doc: "The corpus.",
    required: true,
    fields: {
      file: {
        type: "string",
        required: true,
        path: true,
        doc: "a UTF-8 text file or a folder of them, one sentence per line (data/README.md)",
      },
      max_sentence: {
        type: "integer",
        min: 1,
        max: 100_000,
        default: W2V_DEFAULTS.max_sentence,
        doc: "longest sentence in words; longer lines are cut (word2vec: 1000)",
      },
    },
  },
  model: {
    type: "object",
    doc: "Skip-gram with negative sampling, as word2vec.",
    default: {},
    fields: {
      dim: { type: "integer", min: 1, max: 4096, default: W2V_DEFAULTS.dim, doc: "vector size" },
      window: {
        type: "integer",
        min: 1,
        max: 100,
        default: W2V_DEFAULTS.window,
        doc: "largest context window (each position draws 1..window)",
      },
      negatives: {
        type: "integer",
        min: 1,
        max: 100,
        default: W2V_DEFAULTS.negatives,
        doc: "negative samples per (word, context) pair",
      },
      sample: {
        type: "number",
        min: 0,
        max: 1,
        default: W2V_DEFAULTS.sample,
        doc: "subsampling threshold of frequent words (0: off)",
      },
      alpha: {
        type: "number",
        min: 0,
        max: 10,
        default: W2V_DEFAULTS.alpha,
        doc: "starting learning rate, decayed linearly to alpha*1e-4 over the whole run",
      },
      min_count: {
        type: "integer",
        min: 1,
        default: W2V_DEFAULTS.min_count,
        doc: "words seen fewer times are dropped",
      },
      max_vocab: {
        type: "integer",
        min: 0,
        default: W2V_DEFAULTS.max_vocab,
        doc: "keep only the most frequent words (0: no limit)",
      },
      epochs: { type: "integer", min: 0, max: 10_000, default: W2V_DEFAULTS.epochs, doc: "epochs" },
      negative_pool: {
        type: "integer",
        min: 0,
        max: 10_000_000,
        default: W2V_DEFAULTS.negative_pool,
        doc: "negatives come from a pool of this many sampled words, localized ahead (0: off)",
      },
      pool_refresh: {
        type: "integer",
        min: 1,
        default: W2V_DEFAULTS.pool_refresh,
        doc: "sentences between two refreshes of the negative pool",
      },
      localize_pool: {
        type: "boolean",
        default: W2V_DEFAULTS.localize_pool,
        doc: "lapse: localize the negative pool ahead (false: the pool only makes draws cheap, " +
          "a small array instead of the unigram table)",
      },
      local_negatives: {
        type: "boolean",
        default: W2V_DEFAULTS.local_negatives,
        doc: "draw only negatives that are local now",
      },
      hot_words: {
        type: "integer",
        min: 0,
        max: 10_000_000,
        default: W2V_DEFAULTS.hot_words,
        doc: "the most frequent words: never localized; trained on a per-worker replica where " +
          "not local, merged with the PS every hot_sync sentences (0: off)",
      },
      hot_words_in: {
        type: "integer",
        min: 0,
        max: 10_000_000,
        doc: "hot_words for words_in only (default: hot_words); an input vector is used about " +
          "a sixth as often as an output vector, so fewer pay for their merges",
      },
      hot_sync: {
        type: "integer",
        min: 1,
        default: W2V_DEFAULTS.hot_sync,
        doc: "sentences between two merges of the hot words' replicas (push changes, pull fresh)",
      },
      spread: {
        type: "boolean",
        default: W2V_DEFAULTS.spread,
        doc: "lapse: deal every key over the nodes at start (k to node k mod nodes), so that " +
          "local negatives sample the whole vocabulary",
      },
      clock_every: {
        type: "integer",
        min: 0,
        default: W2V_DEFAULTS.clock_every,
        doc: "words between two ps.clock() calls (bounded staleness; 0: never)",
      },
      out: {
        type: "string",
        path: true,
        doc: "write the input vectors here at the end (.bin: binary, else text); lapse train --out",
      },
    },
  },
  localize: { tables: ["words_in", "words_out"], when: ["ahead"], keys: ["next"] },
  defaultLocalize: W2V_DEFAULT_LOCALIZE,
};

// --- the sigmoid, as word2vec's expTable ---------------------------------------------------------

/** Beyond +-MAX_EXP the sigmoid is taken as 0 or 1 (word2vec). */
export const MAX_EXP = 6;
const EXP_TABLE_SIZE = 1000;
const EXP_SCALE = EXP_TABLE_SIZE / MAX_EXP / 2;
const SIGMOID = sharedF64(EXP_TABLE_SIZE);
const NLL_POS = sharedF64(EXP_TABLE_SIZE); // -log sigmoid(x)
const NLL_NEG = sharedF64(EXP_TABLE_SIZE); // -log (1 - sigmoid(x))
for (let i = 0; i < EXP_TABLE_SIZE; i++) {
  const x = (i / EXP_TABLE_SIZE * 2 - 1) * MAX_EXP;
  const e = Math.exp(x);
  SIGMOID[i] = e / (e + 1);
  NLL_POS[i] = Math.log1p(1 / e);
  NLL_NEG[i] = Math.log1p(e);
}

/**
 * One step of skip-gram with negative sampling on the pair (input vector `inA[io..]`, output
 * vector `outA[oo..]`) with `label` 1 (the true context) or 0 (a negative), as word2vec: the
 * gradient `g = (label - sigmoid(in . out)) * alpha` is added to `neu1e` (times out) and to the
 * output vector (times in). The caller adds `neu1e` to the input vector after all targets.
 * Returns the pair's negative log-likelihood (the loss reported per epoch).
 */
export function sgnsStep(
  inA: Float32Array,
  io: number,
  outA: Float32Array,
  oo: number,
  label: number,
  alpha: number,
  dim: number,
  neu1e: Float32Array,
): number {
  // Unrolled by 4 (about 15% faster here than the plain loops: fewer loop checks, four
  // independent sums).
  let f0 = 0, f1 = 0, f2 = 0, f3 = 0, d = 0;
  for (; d + 3 < dim; d += 4) {
    f0 += inA[io + d] * outA[oo + d];
    f1 += inA[io + d + 1] * outA[oo + d + 1];
    f2 += inA[io + d + 2] * outA[oo + d + 2];
    f3 += inA[io + d + 3] * outA[oo + d + 3];
  }
  for (; d < dim; d++) f0 += inA[io + d] * outA[oo + d];
  const f = f0 + f1 + f2 + f3;
  let g: number, loss: number;
  if (f > MAX_EXP) {
    g = (label - 1) * alpha;
    loss = label === 1 ? 0 : f;
  } else if (f < -MAX_EXP) {
    g = label * alpha;
    loss = label === 1 ? -f : 0;
  } else {
    const i = ((f + MAX_EXP) * EXP_SCALE) | 0;
    g = (label - SIGMOID[i]) * alpha;
    loss = label === 1 ? NLL_POS[i] : NLL_NEG[i];
  }
  for (d = 0; d + 3 < dim; d += 4) {
    const o0 = outA[oo + d], o1 = outA[oo + d + 1], o2 = outA[oo + d + 2], o3 = outA[oo + d + 3];
    neu1e[d] += g * o0;
    neu1e[d + 1] += g * o1;
    neu1e[d + 2] += g * o2;
    neu1e[d + 3] += g * o3;
    outA[oo + d] = o0 + g * inA[io + d];
    outA[oo + d + 1] = o1 + g * inA[io + d + 1];
    outA[oo + d + 2] = o2 + g * inA[io + d + 2];
    outA[oo + d + 3] = o3 + g * inA[io + d + 3];
  }
  for (; d < dim; d++) {
    neu1e[d] += g * outA[oo + d];
    outA[oo + d] += g * inA[io + d];
  }
  return loss;
}

/** Adds `neu1e` to the input vector `inA[io..]`. */
export function addTo(inA: Float32Array, io: number, neu1e: Float32Array, dim: number): void {
  for (let d = 0; d < dim; d++) inA[io + d] += neu1e[d];
}

/** The learning rate after `fraction` (0..1) of the whole run. */
export function alphaAt(alpha: number, fraction: number): number {
  return alpha * Math.max(MIN_ALPHA_FRACTION, 1 - fraction);
}

// --- sentences -----------------------------------------------------------------------------------

/**
 * One sentence ready to train: the words left after subsampling, the window reduction drawn for
 * each position, and (unless drawn at training time) the negatives of every (word, context)
 * pair in training order. Buffers are reused from sentence to sentence.
 */
export class PreparedSentence {
  words: Int32Array;
  shrink: Int32Array;
  negs: Int32Array;
  /** Words kept. */
  n = 0;
  /** Words of the sentence before subsampling (what words/s and the learning rate count). */
  raw = 0;
  /** Negatives drawn (`negs[0 .. nNeg)`). */
  nNeg = 0;

  constructor(maxSentence: number) {
    this.words = sharedI32(maxSentence);
    this.shrink = sharedI32(maxSentence);
    this.negs = sharedI32(256);
  }

  /** Appends a negative, growing the buffer by doubling. */
  pushNeg(w: number): void {
    if (this.nNeg === this.negs.length) {
      const b = sharedI32(this.negs.length * 2);
      b.set(this.negs);
      this.negs = b;
    }
    this.negs[this.nNeg++] = w;
  }
}

/**
 * Prepares sentence `words[from..to)` into `p`: subsampling with `keep`, a window reduction per
 * position (`b` in 0..window-1: the position uses window - b words on each side), and, when
 * `drawNegative` is given, `negatives` negatives per (position, context) pair in the order the
 * training loop consumes them. Allocates nothing (unless `p.negs` must grow).
 */
export function prepareSentence(
  p: PreparedSentence,
  words: Int32Array,
  from: number,
  to: number,
  keep: Float32Array,
  window: number,
  negatives: number,
  rng: Rng,
  drawNegative: ((rng: Rng) => number) | null,
): void {
  let n = 0;
  for (let i = from; i < to; i++) {
    const w = words[i];
    const k = keep[w];
    if (k < 1 && rng.nextFloat() >= k) continue;
    p.words[n++] = w;
  }
  p.n = n;
  p.raw = to - from;
  p.nNeg = 0;
  for (let pos = 0; pos < n; pos++) {
    const b = rng.nextInt(window);
    p.shrink[pos] = b;
    if (drawNegative === null) continue;
    const lo = Math.max(0, pos - window + b), hi = Math.min(n - 1, pos + window - b);
    const contexts = hi - lo; // positions in [lo, hi] other than pos
    for (let x = contexts * negatives; x > 0; x--) p.pushNeg(drawNegative(rng));
  }
}

/**
 * A pool of negatives: `size` words drawn from the unigram table, and the next pool drawn ahead
 * (so that it can be localized before it is used). {@linkcode NegativePool.refresh} makes the
 * next pool current and draws a new next one.
 */
export class NegativePool {
  current: Int32Array;
  next: Int32Array;

  constructor(readonly size: number, private readonly table: Int32Array, rng: Rng) {
    this.current = sharedI32(size);
    this.next = sharedI32(size);
    this.fill(this.current, rng);
    this.fill(this.next, rng);
  }

  private fill(a: Int32Array, rng: Rng): void {
    const t = this.table;
    for (let i = 0; i < a.length; i++) a[i] = t[rng.nextInt(t.length)];
  }

  /** The next pool becomes current; a new next pool is drawn (returned, to localize it). */
  refresh(rng: Rng): Int32Array {
    const c = this.current;
    this.current = this.next;
    this.next = c;
    this.fill(this.next, rng);
    return this.next;
  }

  /** A uniform draw from the current pool. */
  draw(rng: Rng): number {
    return this.current[rng.nextInt(this.size)];
  }
}

/**
 * The reported loss: the negative log-likelihood of one (word, context) pair with `negatives`
 * negatives, estimated as the mean NLL of the positive steps plus `negatives` times the mean NLL
 * of the negative steps actually trained. Every mode and the plain loop report this same
 * quantity: negatives skipped (`model.local_negatives`, none local) or a negative equal to the
 * word would otherwise lower a sum divided by the pairs. NaN without positive steps.
 */
export function w2vLoss(
  posSum: number,
  posSteps: number,
  negSum: number,
  negSteps: number,
  negatives: number,
): number {
  if (!(posSteps > 0)) return NaN;
  const pos = posSum / posSteps;
  return negSteps > 0 ? pos + negatives * (negSum / negSteps) : pos;
}
