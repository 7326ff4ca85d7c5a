/**
 * Word vectors: skip-gram with negative sampling, as the original word2vec (task `w2v`).
 *
 * Tables: `words_in` (the input vectors, the ones users keep; uniform in +-0.5/dim, as word2vec)
 * and `words_out` (the output vectors of negative sampling; zero), one key per vocabulary word.
 * Each worker trains on its own slice of the corpus (`data/text_corpus.ts`: the vocabulary is
 * counted by every thread that needs it, deterministically, and checked to be the same).
 *
 * Training, per sentence, exactly as word2vec's skip-gram: frequent words are subsampled
 * (`model.sample`); each position draws a window `1..window`; for each context word c around
 * the word w, the input vector of c is trained against the output vector of w (label 1) and of
 * `negatives` words drawn from the unigram^0.75 table (label 0); c's input vector gets the
 * summed gradient after its targets.
 *
 * Learning rate: linear from `alpha` to `alpha * 1e-4` over the whole run, like word2vec's
 * shared word counter over all threads. The counter here is estimated without communication:
 * run progress = (epoch + words done in this epoch / words of my slice) / epochs. Every worker
 * starts an epoch together (a barrier ends each epoch) and the slices are cut to equal bytes,
 * so at the same moment all workers compute about the same fraction: the estimate is exact at
 * every epoch boundary and within an epoch off only by how much workers' speeds differ.
 *
 * Allocation, as directives (the defaults):
 *
 * - `{ table: words_in, when: ahead, steps: S }`, `{ table: words_out, when: ahead, steps: S }`:
 *   while sentence i is trained, the words of sentence i + S are localized (latency hiding).
 * - Negatives: with `model.negative_pool: P`, negatives are drawn uniformly from a pool of P
 *   words sampled from the unigram table; the next pool is drawn and localized (`words_out`)
 *   ahead, and becomes current every `model.pool_refresh` sentences. With
 *   `model.local_negatives: true`, a negative is drawn from the pool (or the table) until one is
 *   local now (up to 8 draws, else that negative is skipped and counted as `skipped_neg`).
 *
 * One code path for every mode: keys that are local are trained in place in the node's slab
 * (`ps.acquire`/`values`/`release`: no copy, no allocation, no Promise). A key that will not be
 * local (classic modes, a directive off, a negative outside the pool) is prefetched when its
 * sentence is prepared, S sentences ahead, by an asynchronous pull into a per-sentence copy,
 * trained on the copy, and written back by one push per table at the sentence's end. A key that
 * was expected local but is not (another node took it meanwhile) defers its pairs: they are
 * trained a few sentences later on copies fetched by an asynchronous pull (`DeferredBatch`).
 *
 * Per epoch each worker reports the loss (negative log-likelihood per (word, context) pair with
 * `negatives` negatives, as `w2vLoss`: skipped negatives do not lower it), the words trained, the learning rate; `ps.clock()` is
 * called every `model.clock_every` words (bounded staleness; a no-op in the other modes).
 * With `model.out` set, worker 0 writes the input vectors at the end (`data/word_vectors.ts`).
 *
 * @module
 */
import type {
  JobConfig,
  Keys,
  ParameterServer,
  TableSpec,
  TaskContext,
  TaskDefinition,
} from "../mod.ts";
import { hash32, Rng } from "../core/rng.ts";
import { sharedF32, sharedI32, sharedU32 } from "../data/shared_arrays.ts";
import {
  countVocab,
  keepProbabilities,
  listCorpusFiles,
  readSlice,
  type Sentences,
  unigramTable,
  unigramTableSize,
  type Vocab,
} from "../data/text_corpus.ts";
import { formatForPath, writeWordVectors } from "../data/word_vectors.ts";
import { decodeInts, encodeInts, resumeFrom } from "./resume_state.ts";
import { userError } from "../core/errors.ts";
import { HotReplica } from "./w2v_hot.ts";
import {
  addTo,
  alphaAt,
  NegativePool,
  PreparedSentence,
  prepareSentence,
  sgnsStep,
  W2V_SCHEMA,
  w2vLoss,
  type W2vSettings,
  w2vSettings,
} from "./w2v_model.ts";

/** Draws of a local negative before giving up on it (`model.local_negatives`). */
const LOCAL_NEGATIVE_TRIES = 8;
/** Sentences between two yields to the event loop (replies to un-awaited requests). */
const YIELD_EVERY = 16;
const PROGRESS_EVERY = 4096;

/** The vocabulary of a config (memoised per thread by text_corpus). */
export function w2vVocab(s: W2vSettings): Vocab {
  return countVocab(listCorpusFiles(s.file), { minCount: s.minCount, maxVocab: s.maxVocab });
}

/** The data a worker trains on. */
export interface W2vData {
  vocab: Vocab;
  sentences: Sentences;
}

/** Counts the vocabulary and reads worker `worker`'s slice. */
export function loadW2vData(s: W2vSettings, worker: number, workers: number): W2vData {
  const corpus = listCorpusFiles(s.file);
  const vocab = countVocab(corpus, { minCount: s.minCount, maxVocab: s.maxVocab });
  return { vocab, sentences: readSlice(corpus, vocab, worker, workers, s.maxSentence) };
}

/** Growable Float32Array pair (values and their originals, for deltas). */
class Copies {
  vals = sharedF32(0);
  orig = sharedF32(0);
  keys = sharedU32(16);
  n = 0;
  /** The pull filling `vals`, if not done. */
  pending: Promise<void> | undefined = undefined;

  constructor(private readonly dim: number) {}

  reset(): void {
    this.n = 0;
    this.pending = undefined;
  }

  /** Adds a key (the caller deduplicates); returns its slot. */
  add(key: number): number {
    if (this.n === this.keys.length) {
      const k = sharedU32(this.keys.length * 2);
      k.set(this.keys);
      this.keys = k;
    }
    this.keys[this.n] = key;
    return this.n++;
  }

  /** Makes room for the values of all keys (before the pull). */
  ensure(): void {
    const need = this.n * this.dim;
    if (this.vals.length < need) {
      const cap = Math.max(need, this.vals.length * 2);
      this.vals = sharedF32(cap);
      this.orig = sharedF32(cap);
    }
  }
}

/** Sentences whose localize requests go out as one request per table, at most. */
const LOCALIZE_BATCH = 16;
/** A deferred batch is closed (its pull sent) after this many pairs or sentences. */
const DEFERRED_CLOSE_PAIRS = 512;
const DEFERRED_CLOSE_EVERY = 4;

/** Keys to localize, deduplicated until the next reset (stamps, no hashing). */
class LocalizeBuffer {
  readonly keys: Uint32Array;
  n = 0;
  private readonly stamp: Int32Array;
  private serial = 1;

  constructor(vocab: number, max: number) {
    this.keys = sharedU32(max);
    this.stamp = sharedI32(vocab);
  }

  add(k: number): void {
    if (this.stamp[k] === this.serial || this.n === this.keys.length) return;
    this.stamp[k] = this.serial;
    this.keys[this.n++] = k;
  }

  reset(): void {
    this.n = 0;
    this.serial++;
  }
}

/** Deferred batches in flight at most (one open, the others pulling or ready). */
const DEFERRED_BATCHES = 16;

/**
 * Pairs whose key was expected local but was not when they trained (it moved away): triples
 * (context, target, label), trained later on copies pulled asynchronously. So a key taken away
 * by another node costs no stall, only a few sentences of delay for those pairs.
 */
class DeferredBatch {
  triples = sharedI32(3 * 256);
  /** Per triple: offsets of its input and output copies. */
  at = sharedI32(2 * 256);
  n = 0;
  readonly cin: Copies;
  readonly cout: Copies;
  ready = false;
  pending: Promise<void> | undefined = undefined;

  constructor(dim: number) {
    this.cin = new Copies(dim);
    this.cout = new Copies(dim);
  }

  add(c: number, t: number, label: number): void {
    if (3 * this.n + 3 > this.triples.length) {
      const d = sharedI32(this.triples.length * 2);
      d.set(this.triples);
      this.triples = d;
      this.at = sharedI32(this.triples.length);
    }
    const tr = this.triples, o = 3 * this.n++;
    tr[o] = c;
    tr[o + 1] = t;
    tr[o + 2] = label;
  }

  reset(): void {
    this.n = 0;
    this.ready = false;
    this.pending = undefined;
    this.cin.reset();
    this.cout.reset();
  }
}

/** One entry of the ring of prepared sentences. */
class Slot {
  readonly s: PreparedSentence;
  readonly cin: Copies;
  readonly cout: Copies;
  /** Per position: copy slot of the word in words_in / words_out, or -1 (in place). */
  inSlot: Int32Array;
  outSlot: Int32Array;
  /** Per negative: copy slot in words_out, or -1. */
  negSlot = sharedI32(256);

  constructor(maxSentence: number, dim: number) {
    this.s = new PreparedSentence(maxSentence);
    this.cin = new Copies(dim);
    this.cout = new Copies(dim);
    this.inSlot = sharedI32(maxSentence);
    this.outSlot = sharedI32(maxSentence);
  }
}

/** Per-key "seen in this batch" stamps and slots: dedup without hashing or allocation. */
class Stamps {
  readonly stamp: Int32Array;
  readonly slot: Int32Array;
  serial = 0;
  constructor(keys: number) {
    this.stamp = sharedI32(keys);
    this.slot = sharedI32(keys);
  }
  next(): void {
    this.serial++;
  }
}

function ignore(p: Promise<void> | undefined): void {
  if (p) p.catch(() => {});
}

/** Localizes `keys[0..n)` in chunks of at most `max` keys, not awaited. */
function localizeAll(ps: ParameterServer, t: number, keys: Keys, n: number, max: number): void {
  for (let i = 0; i < n; i += max) {
    ignore(ps.localize(t, keys.subarray(i, Math.min(n, i + max))));
  }
}

/**
 * Where a w2v worker starts: epoch 0, or, resumed, the epoch after the checkpoint with, for
 * the worker that wrote the state, its generator (subsampling, windows, negatives), negative
 * pool and counters as they were: the same training as a run that was never interrupted. On
 * another cluster shape the worker draws from a fresh stream of its own.
 */
function w2vResume(
  ctx: TaskContext,
  epochs: number,
  vocabHash: number,
  rng: Rng,
  pool: NegativePool | null,
): { firstEpoch: number; prepared: number; sinceClock: number } {
  const state = ctx.resumeState;
  if (!state) return { firstEpoch: 0, prepared: 0, sinceClock: 0 };
  const { firstEpoch, sameWorker } = resumeFrom("w2v", state, { ...ctx, epochs });
  if (state.vocab !== vocabHash) {
    throw userError(
      `w2v: the checkpoint was trained on another vocabulary (corpus or data.min_count ` +
        `changed): resume with the data it was written with`,
    );
  }
  let prepared = 0, sinceClock = 0;
  if (sameWorker) {
    rng.setState(state.rng);
    prepared = Number(state.prepared) || 0;
    sinceClock = Number(state.since_clock) || 0;
    if (pool !== null) {
      const saved = state.pool as unknown[] | null;
      const ok = Array.isArray(saved) && decodeInts(saved[0], pool.current) &&
        decodeInts(saved[1], pool.next);
      // model.negative_pool changed: the pool drawn afresh (the run then differs from one
      // never interrupted, as it would anyway).
      if (!ok) ctx.log(`w2v worker ${ctx.worker}: negative pool drawn afresh (its size changed)`);
    }
  } else rng.reseed(hash32(ctx.seed, 0x77327673 ^ firstEpoch, ctx.worker));
  ctx.log(`w2v worker ${ctx.worker}/${ctx.workers}: resumed at epoch ${firstEpoch}`);
  return { firstEpoch, prepared, sinceClock };
}

/** Localizes the keys among `keys[0..n)` that are not hot (`>= hot`), not awaited. */
function localizeCold(
  ps: ParameterServer,
  t: number,
  keys: Keys,
  n: number,
  max: number,
  hot: number,
  buf: Uint32Array,
): void {
  let m = 0;
  for (let i = 0; i < n; i++) if (keys[i] >= hot) buf[m++] = keys[i];
  localizeAll(ps, t, buf, m, max);
}

/** A yield to the event loop (replies of un-awaited requests run) without a timer's clamp. */
class Yielder {
  private readonly ch = new MessageChannel();
  private resolve: (() => void) | null = null;
  constructor() {
    this.ch.port1.onmessage = () => {
      const r = this.resolve;
      this.resolve = null;
      if (r) r();
    };
  }
  next(): Promise<void> {
    return new Promise<void>((r) => {
      this.resolve = r;
      this.ch.port2.postMessage(0);
    });
  }
  close(): void {
    this.ch.port1.close();
    this.ch.port2.close();
  }
}

/** The training loop of one worker. */
async function run(ctx: TaskContext): Promise<void> {
  const { ps, config } = ctx;
  const s = w2vSettings(config);
  const t0 = performance.now();
  const { vocab, sentences } = loadW2vData(s, ctx.worker, ctx.workers);
  const tIn = ps.table("words_in").id, tOut = ps.table("words_out").id;
  const V = vocab.words.length;
  if (ps.table("words_in").keys !== V) {
    throw new Error(
      `w2v worker ${ctx.worker}: vocabulary of ${V} words, but the tables have ` +
        `${ps.table("words_in").keys} keys: the corpus changed while the job started?`,
    );
  }
  const dim = s.dim, window = s.window, neg = s.negatives;
  let sliceWords = 0;
  for (let i = 0; i < sentences.count; i++) {
    sliceWords += sentences.starts[i + 1] - sentences.starts[i];
  }
  ctx.log(
    `w2v worker ${ctx.worker}/${ctx.workers}: vocabulary ${V} words (of ${vocab.distinct}), ` +
      `${vocab.trainWords} training words in the corpus, ${sentences.count} sentences and ` +
      `${sliceWords} words in my slice, loaded in ${((performance.now() - t0) / 1000).toFixed(2)}s`,
  );
  ctx.epochPoints(sliceWords);

  const keep = keepProbabilities(vocab, s.sample);
  const table = unigramTable(vocab, unigramTableSize(V));
  const rng = new Rng(hash32(ctx.seed, 0x77327673, ctx.worker));
  const pool = s.negativePool > 0 ? new NegativePool(s.negativePool, table, rng) : null;
  // Resumed (lapse train --resume): the generator, the pool and the counters where they were.
  const resumed = w2vResume(ctx, s.epochs, vocab.fingerprint, rng, pool);
  const tableLen = table.length;
  const drawNegative = pool !== null
    ? (r: Rng) => pool.draw(r)
    : (r: Rng) => table[r.nextInt(tableLen)];
  const lapse = config.ps.mode === "lapse";
  // Keys can be acquired in place only in classic and lapse: classic_remote and stale go
  // through the server thread or the worker's cache for every key (acquire always fails).
  const localAccess = config.ps.mode === "classic" || config.ps.mode === "lapse";
  // Drawing only local negatives needs local access: without it every negative would be
  // skipped (the model then trains on positives only), so those modes use prefetched ones.
  const localNegs = s.localNegatives && localAccess;
  const maxKeys = Math.max(1, Math.floor(config.ps?.batch_keys_max ?? 1 << 20));
  const ahead = Math.max(s.aheadIn, s.aheadOut);
  // The words of a sentence are localized (not prefetched) when a directive covers the table.
  const aheadIn = lapse && s.aheadIn > 0, aheadOut = lapse && s.aheadOut > 0;
  // Negatives from a localized pool are expected local; others are prefetched if not local.
  const poolLocal = lapse && pool !== null && s.localizePool;
  const R = ahead + 1;
  const ring: Slot[] = [];
  for (let i = 0; i < R; i++) ring.push(new Slot(s.maxSentence, dim));
  const stIn = new Stamps(V), stOut = new Stamps(V);
  // Localize requests of several prepared sentences go out together (fewer messages): 4, or a
  // quarter of a longer lookahead (so the last sentence's still go out early), at most 16.
  const locBatch = Math.max(1, Math.min(ahead, LOCALIZE_BATCH, Math.max(4, Math.floor(ahead / 4))));
  // a key already requested in the batch is not requested again.
  const locIn = new LocalizeBuffer(V, locBatch * s.maxSentence);
  const locOut = new LocalizeBuffer(V, locBatch * s.maxSentence);
  const neu1e = sharedF32(dim);
  let deltaBuf = sharedF32(0);
  /** True if key `k` of table `t` can be acquired here now (classic_remote, stale: never). */
  const localNow = (t: number, k: number) => localAccess && ps.isLocal(t, k);

  // Hot words (model.hot_words): the first H keys (the vocabulary is sorted by count). Under
  // lapse they are spread over the nodes once (key k on node k mod nodes), then never move.
  const H = Math.min(s.hotWords, V), Hin = Math.min(s.hotWordsIn, V);
  // With model.spread every key is dealt so (local negatives then sample the whole vocabulary).
  const dealt = s.spread ? V : Math.max(H, Hin);
  if (dealt > 0 && lapse && ctx.nodes > 1 && ctx.worker % (ctx.workers / ctx.nodes) === 0) {
    const mine = sharedU32(Math.ceil(dealt / ctx.nodes));
    let m = 0;
    for (let k = ctx.node; k < dealt; k += ctx.nodes) mine[m++] = k;
    for (const t of [tIn, tOut]) {
      for (let i = 0; i < m; i += maxKeys) {
        const p = ps.localize(t, mine.subarray(i, Math.min(m, i + maxKeys)));
        if (p) await p;
      }
    }
  }
  if (dealt > 0) await ps.barrier();
  const hotIn = new HotReplica(ps, tIn, V, Hin, dim, (k) => localNow(tIn, k));
  const hotOut = new HotReplica(ps, tOut, V, H, dim, (k) => localNow(tOut, k));
  await hotIn.load(maxKeys);
  await hotOut.load(maxKeys);
  const hinRow = hotIn.row, houtRow = hotOut.row;
  const poolBuf = sharedU32(pool !== null ? pool.size : 1);
  if (poolLocal) {
    localizeCold(ps, tOut, pool.current, pool.size, maxKeys, H, poolBuf);
    localizeCold(ps, tOut, pool.next, pool.size, maxKeys, H, poolBuf);
  }
  let prepared = resumed.prepared; // sentences prepared so far in this run (for the pool refresh)
  let batched = 0; // sentences prepared since the last localize flush
  const flushLocalize = () => {
    batched = 0;
    localized += locIn.n + locOut.n;
    if (locIn.n > 0) localizeAll(ps, tIn, locIn.keys, locIn.n, maxKeys);
    if (locOut.n > 0) localizeAll(ps, tOut, locOut.keys, locOut.n, maxKeys);
    locIn.reset();
    locOut.reset();
  };

  /** Prepares sentence `i` of my slice into slot `slot`: sample, localize, prefetch. */
  const prepare = (slot: Slot, i: number) => {
    const p = slot.s;
    prepareSentence(
      p,
      sentences.words,
      sentences.starts[i],
      sentences.starts[i + 1],
      keep,
      window,
      neg,
      rng,
      localNegs ? null : drawNegative,
    );
    if (pool !== null && ++prepared % s.poolRefresh === 0) {
      const next = pool.refresh(rng);
      if (poolLocal) localizeCold(ps, tOut, next, pool.size, maxKeys, H, poolBuf);
    }
    const n = p.n;
    slot.cin.reset();
    slot.cout.reset();
    // words_in: the sentence's words.
    stIn.next();
    for (let pos = 0; pos < n; pos++) {
      const w = p.words[pos];
      if (stIn.stamp[w] !== stIn.serial) {
        stIn.stamp[w] = stIn.serial;
        if (hinRow[w] >= 0) stIn.slot[w] = -2 - hinRow[w];
        else if (aheadIn) {
          stIn.slot[w] = -1;
          if (w >= Hin && !ps.isLocal(tIn, w)) {
            locIn.add(w);
          }
        } else stIn.slot[w] = localNow(tIn, w) ? -1 : slot.cin.add(w);
      }
      slot.inSlot[pos] = stIn.slot[w];
    }
    // words_out: the sentence's words and the negatives.
    stOut.next();
    for (let pos = 0; pos < n; pos++) {
      const w = p.words[pos];
      if (stOut.stamp[w] !== stOut.serial) {
        stOut.stamp[w] = stOut.serial;
        if (houtRow[w] >= 0) stOut.slot[w] = -2 - houtRow[w];
        else if (aheadOut) {
          stOut.slot[w] = -1;
          if (w >= H && !ps.isLocal(tOut, w)) locOut.add(w);
        } else stOut.slot[w] = localNow(tOut, w) ? -1 : slot.cout.add(w);
      }
      slot.outSlot[pos] = stOut.slot[w];
    }
    if (++batched === locBatch) flushLocalize();
    if (slot.negSlot.length < p.nNeg) slot.negSlot = sharedI32(p.negs.length);
    for (let q = 0; q < p.nNeg; q++) {
      const w = p.negs[q];
      if (stOut.stamp[w] !== stOut.serial) {
        stOut.stamp[w] = stOut.serial;
        stOut.slot[w] = houtRow[w] >= 0
          ? -2 - houtRow[w]
          : poolLocal || localNow(tOut, w)
          ? -1
          : slot.cout.add(w);
      }
      slot.negSlot[q] = stOut.slot[w];
    }
    // Prefetch: asynchronous pulls of the copies (awaited when the sentence is trained).
    const pulls: Promise<void>[] = [];
    for (const [c, t] of [[slot.cin, tIn], [slot.cout, tOut]] as const) {
      if (c.n === 0) continue;
      c.ensure();
      for (let i0 = 0; i0 < c.n; i0 += maxKeys) {
        const i1 = Math.min(c.n, i0 + maxKeys);
        const pr = ps.pull(t, c.keys.subarray(i0, i1), c.vals.subarray(i0 * dim, i1 * dim));
        if (pr) pulls.push(pr);
      }
    }
    const pending = pulls.length === 0
      ? undefined
      : pulls.length === 1
      ? pulls[0]
      : Promise.all(pulls).then(() => {});
    slot.cin.pending = pending;
  };

  // Deferred pairs (a key expected local was not): collected per sentence into a batch whose
  // copies are pulled asynchronously and trained a few sentences later (see DeferredBatch).
  const batches: DeferredBatch[] = [];
  for (let i = 0; i < DEFERRED_BATCHES; i++) batches.push(new DeferredBatch(dim));
  let open = batches[0];
  const queue: DeferredBatch[] = []; // closed batches, oldest first
  const defer = (c: number, t: number, label: number) => open.add(c, t, label);

  // Loss, split by label: skipped negatives (local_negatives) must not lower it (see summarize).
  let posLoss = 0, posSteps = 0, negLoss = 0, negSteps = 0;
  let pairs = 0, skippedNeg = 0, deferredPairs = 0, deferredNeg = 0, hotMerges = 0;
  // Keys sent to localize for the sentences (the pool's are not counted); milliseconds the
  // training loop waited for the PS (prefetched copies, a full deferred queue).
  let localized = 0, waitMs = 0;

  /** Trains the prepared sentence of `slot` with learning rate `alpha`. */
  const train = (slot: Slot, alpha: number) => {
    const p = slot.s, n = p.n, words = p.words, shrink = p.shrink, negs = p.negs;
    const inSlot = slot.inSlot, outSlot = slot.outSlot, negSlot = slot.negSlot;
    const cinV = slot.cin.vals, coutV = slot.cout.vals;
    const hinV = hotIn.vals, houtV = hotOut.vals;
    const hinT = hotIn.touched, houtT = hotOut.touched;
    let q = 0;
    for (let pos = 0; pos < n; pos++) {
      const w = words[pos], b = shrink[pos], ow = outSlot[pos];
      const lo = Math.max(0, pos - window + b), hi = Math.min(n - 1, pos + window - b);
      for (let cpos = lo; cpos <= hi; cpos++) {
        if (cpos === pos) continue;
        const c = words[cpos];
        pairs++;
        let inA: Float32Array, io: number, inHeld = false;
        const ic = inSlot[cpos];
        if (ic >= 0) {
          inA = cinV;
          io = ic * dim;
        } else if (ic < -1) {
          inA = hinV;
          io = (-2 - ic) * dim;
          hinT[-2 - ic] = 1;
        } else {
          io = ps.acquire(tIn, c);
          if (io < 0) {
            // Moved away since it was prepared: train this context's pairs at the end.
            // Its negatives go along (local negatives: drawn now, trained on the copies too;
            // dropping them trained these pairs on the positive alone).
            defer(c, w, 1);
            if (!localNegs) {
              for (let d = 0; d < neg; d++) if (negs[q + d] !== w) defer(c, negs[q + d], 0);
              q += neg;
            } else {
              for (let d = 0; d < neg; d++) {
                // Preferably one local now (its copy is then read here, not fetched).
                let t = drawNegative(rng);
                for (let tries = 1; tries < LOCAL_NEGATIVE_TRIES; tries++) {
                  if (t !== w && (houtRow[t] >= 0 || ps.isLocal(tOut, t))) break;
                  t = drawNegative(rng);
                }
                if (t !== w) defer(c, t, 0);
              }
            }
            continue;
          }
          inA = ps.values(tIn);
          inHeld = true;
        }
        neu1e.fill(0);
        // The positive target.
        if (ow >= 0) {
          posLoss += sgnsStep(inA, io, coutV, ow * dim, 1, alpha, dim, neu1e);
          posSteps++;
        } else if (ow < -1) {
          houtT[-2 - ow] = 1;
          posLoss += sgnsStep(inA, io, houtV, (-2 - ow) * dim, 1, alpha, dim, neu1e);
          posSteps++;
        } else {
          const oo = ps.acquire(tOut, w);
          if (oo < 0) {
            defer(c, w, 1);
          } else {
            posLoss += sgnsStep(inA, io, ps.values(tOut), oo, 1, alpha, dim, neu1e);
            posSteps++;
            ps.release(tOut, w);
          }
        }
        // The negatives.
        if (localNegs) {
          for (let d = 0; d < neg; d++) {
            let found = false;
            for (let tries = 0; tries < LOCAL_NEGATIVE_TRIES; tries++) {
              const t = drawNegative(rng);
              if (t === w) continue;
              const hr = houtRow[t];
              if (hr >= 0) {
                houtT[hr] = 1;
                negLoss += sgnsStep(inA, io, houtV, hr * dim, 0, alpha, dim, neu1e);
                negSteps++;
                found = true;
                break;
              }
              const oo = ps.acquire(tOut, t);
              if (oo < 0) continue;
              negLoss += sgnsStep(inA, io, ps.values(tOut), oo, 0, alpha, dim, neu1e);
              negSteps++;
              ps.release(tOut, t);
              found = true;
              break;
            }
            if (!found) skippedNeg++;
          }
        } else {
          for (let d = 0; d < neg; d++, q++) {
            const t = negs[q];
            if (t === w) continue;
            const ot = negSlot[q];
            if (ot >= 0) {
              negLoss += sgnsStep(inA, io, coutV, ot * dim, 0, alpha, dim, neu1e);
              negSteps++;
            } else if (ot < -1) {
              houtT[-2 - ot] = 1;
              negLoss += sgnsStep(inA, io, houtV, (-2 - ot) * dim, 0, alpha, dim, neu1e);
              negSteps++;
            } else {
              const oo = ps.acquire(tOut, t);
              if (oo < 0) defer(c, t, 0);
              else {
                negLoss += sgnsStep(inA, io, ps.values(tOut), oo, 0, alpha, dim, neu1e);
                negSteps++;
                ps.release(tOut, t);
              }
            }
          }
        }
        if (inHeld) {
          // values() again: the slab may have grown while output keys were acquired.
          addTo(ps.values(tIn), io, neu1e, dim);
          ps.release(tIn, c);
        } else addTo(inA, io, neu1e, dim);
      }
    }
  };

  /** Pushes the differences of a sentence's copies (not awaited: push copies what it sends). */
  const pushCopies = (c: Copies, t: number) => {
    if (c.n === 0) return;
    const len = c.n * dim;
    if (deltaBuf.length < len) deltaBuf = sharedF32(Math.max(len, deltaBuf.length * 2));
    for (let x = 0; x < len; x++) deltaBuf[x] = c.vals[x] - c.orig[x];
    for (let i0 = 0; i0 < c.n; i0 += maxKeys) {
      const i1 = Math.min(c.n, i0 + maxKeys);
      ignore(ps.push(t, c.keys.subarray(i0, i1), deltaBuf.subarray(i0 * dim, i1 * dim)));
    }
  };

  /** Closes the open batch: dedups its keys and pulls their copies (not awaited). */
  const closeBatch = () => {
    const bt = open;
    stIn.next();
    stOut.next();
    for (let x = 0; x < bt.n; x++) {
      const c = bt.triples[3 * x], t = bt.triples[3 * x + 1];
      if (stIn.stamp[c] !== stIn.serial) {
        stIn.stamp[c] = stIn.serial;
        stIn.slot[c] = bt.cin.add(c);
      }
      if (stOut.stamp[t] !== stOut.serial) {
        stOut.stamp[t] = stOut.serial;
        stOut.slot[t] = bt.cout.add(t);
      }
      bt.at[2 * x] = stIn.slot[c] * dim;
      bt.at[2 * x + 1] = stOut.slot[t] * dim;
    }
    const pulls: Promise<void>[] = [];
    for (const [c, t] of [[bt.cin, tIn], [bt.cout, tOut]] as const) {
      c.ensure();
      for (let i0 = 0; i0 < c.n; i0 += maxKeys) {
        const i1 = Math.min(c.n, i0 + maxKeys);
        const pr = ps.pull(t, c.keys.subarray(i0, i1), c.vals.subarray(i0 * dim, i1 * dim));
        if (pr) pulls.push(pr);
      }
    }
    bt.ready = pulls.length === 0;
    bt.pending = pulls.length === 0 ? undefined : Promise.all(pulls).then(() => {
      bt.ready = true;
    });
    queue.push(bt);
    open = batches.find((x) => x.n === 0 && !queue.includes(x))!;
  };

  /** Trains a closed batch whose copies arrived, and pushes its differences. */
  const trainBatch = (bt: DeferredBatch, alpha: number) => {
    const cin = bt.cin.vals, cout = bt.cout.vals, tr = bt.triples, at = bt.at;
    bt.cin.orig.set(cin.subarray(0, bt.cin.n * dim));
    bt.cout.orig.set(cout.subarray(0, bt.cout.n * dim));
    for (let x = 0; x < bt.n; x++) {
      neu1e.fill(0);
      const label = tr[3 * x + 2];
      const l = sgnsStep(cin, at[2 * x], cout, at[2 * x + 1], label, alpha, dim, neu1e);
      if (label === 1) {
        posLoss += l;
        posSteps++;
      } else {
        negLoss += l;
        negSteps++;
        deferredNeg++;
      }
      addTo(cin, at[2 * x], neu1e, dim);
    }
    deferredPairs += bt.n;
    pushCopies(bt.cin, tIn);
    pushCopies(bt.cout, tOut);
    bt.reset();
  };

  /** Trains the batches that are ready (all, waiting for them, if `all`), oldest first. */
  const drainBatches = async (alpha: number, all: boolean) => {
    while (queue.length > 0) {
      const bt = queue[0];
      if (!bt.ready) {
        if (!all && queue.length < DEFERRED_BATCHES - 1) return;
        const w0 = performance.now();
        await bt.pending;
        waitMs += performance.now() - w0;
      }
      queue.shift();
      trainBatch(bt, alpha);
    }
  };

  // Everybody has loaded its data: epoch times are measured from here (see TaskContext).
  await ps.barrier();
  const yielder = new Yielder();
  try {
    const runWords = Math.max(1, s.epochs * sliceWords);
    let sinceProgress = 0, sinceClock = resumed.sinceClock;
    let alpha = s.alpha;
    for (let epoch = resumed.firstEpoch; epoch < s.epochs; epoch++) {
      posLoss =
        posSteps =
        negLoss =
        negSteps =
          0;
      pairs = 0;
      skippedNeg = 0;
      deferredPairs = 0;
      deferredNeg = 0;
      hotMerges = 0;
      localized = 0;
      waitMs = 0;
      const hotRows0 = hotIn.rowsMerged + hotOut.rowsMerged;
      let done = 0;
      const count = sentences.count;
      for (let i = 0; i < Math.min(R, count); i++) prepare(ring[i % R], i);
      for (let i = 0; i < count; i++) {
        const slot = ring[i % R];
        if (slot.cin.pending !== undefined) {
          const w0 = performance.now();
          await slot.cin.pending;
          waitMs += performance.now() - w0;
          slot.cin.pending = undefined;
        }
        if (slot.cin.n > 0) slot.cin.orig.set(slot.cin.vals.subarray(0, slot.cin.n * dim));
        if (slot.cout.n > 0) slot.cout.orig.set(slot.cout.vals.subarray(0, slot.cout.n * dim));
        alpha = s.alpha > 0 ? alphaAt(s.alpha, (epoch * sliceWords + done) / runWords) : 0;
        train(slot, alpha);
        if (open.n >= DEFERRED_CLOSE_PAIRS || (open.n > 0 && i % DEFERRED_CLOSE_EVERY === 0)) {
          closeBatch();
        }
        if (queue.length > 0) await drainBatches(alpha, false);
        pushCopies(slot.cin, tIn);
        pushCopies(slot.cout, tOut);
        const raw = slot.s.raw;
        done += raw;
        sinceProgress += raw;
        sinceClock += raw;
        if (i + R < count) prepare(slot, i + R);
        if (sinceProgress >= PROGRESS_EVERY) {
          ctx.progress(sinceProgress);
          sinceProgress = 0;
        }
        if (s.clockEvery > 0 && sinceClock >= s.clockEvery) {
          sinceClock = 0;
          const cp = ps.clock();
          if (cp) await cp;
        }
        if (H > 0 || Hin > 0) {
          if (hotIn.poll()) hotMerges++;
          if (hotOut.poll()) hotMerges++;
          if (i % s.hotSync === s.hotSync - 1) {
            hotIn.merge(maxKeys);
            hotOut.merge(maxKeys);
          }
        }
        if (i % YIELD_EVERY === YIELD_EVERY - 1) await yielder.next();
      }
      if (open.n > 0) closeBatch();
      await drainBatches(alpha, true);
      // The replicas' changes go to the PS before the epoch ends (the vectors written at the end
      // and the next epoch start from them).
      for (const h of [hotIn, hotOut]) {
        await h.settle();
        h.merge(maxKeys);
        await h.settle();
      }
      flushLocalize();
      if (sinceProgress > 0) {
        ctx.progress(sinceProgress);
        sinceProgress = 0;
      }
      await ps.wait();
      ctx.epochEnd(epoch, {
        pos_loss_sum: posLoss,
        pos_steps: posSteps,
        neg_loss_sum: negLoss,
        neg_steps: negSteps,
        negatives_max: neg,
        pairs,
        words: done,
        lr_sum: alpha,
        workers: 1,
        skipped_neg: skippedNeg,
        deferred: deferredPairs,
        deferred_neg: deferredNeg,
        hot_merges: hotMerges,
        localized,
        wait_ms_max: waitMs,
        hot_rows: hotIn.rowsMerged + hotOut.rowsMerged - hotRows0,
        hot_replicated_max: hotIn.n + hotOut.n,
        vocab_max: V,
        vocab_hash_max: vocab.fingerprint,
        vocab_hash_neg_max: -vocab.fingerprint,
      });
      await ps.barrier();
      // The learning rate needs no state: it follows from the epoch (see alphaAt above). The
      // hot words' replicas need none either: merged into the PS above, reloaded at start.
      await ctx.checkpoint?.(epoch, {
        epoch: epoch + 1,
        seed: ctx.seed,
        worker: ctx.worker,
        workers: ctx.workers,
        vocab: vocab.fingerprint,
        rng: rng.getState(),
        pool: pool === null ? null : [encodeInts(pool.current), encodeInts(pool.next)],
        prepared,
        since_clock: sinceClock,
      });
    }
  } finally {
    yielder.close();
  }

  if (s.out !== "" && ctx.worker === 0) {
    const keys = sharedU32(Math.min(4096, maxKeys));
    const w0 = performance.now();
    await writeWordVectors(
      s.out,
      vocab.words,
      dim,
      async (start, count, out) => {
        for (let i = 0; i < count; i++) keys[i] = start + i;
        const p = ps.pull(tIn, keys.subarray(0, count), out);
        if (p) await p;
      },
      formatForPath(s.out),
      keys.length,
    );
    ctx.log(
      `w2v: wrote ${V} vectors of ${dim} floats to ${s.out} (${formatForPath(s.out)}) in ${
        ((performance.now() - w0) / 1000).toFixed(2)
      }s`,
    );
  }
}

/** The tables: one key per vocabulary word (the vocabulary is counted here, once per thread). */
function tables(config: JobConfig): TableSpec[] {
  const s = w2vSettings(config);
  const V = w2vVocab(s).words.length;
  return [
    { name: "words_in", keys: V, dim: s.dim, init: { kind: "uniform", scale: 0.5 / s.dim } },
    { name: "words_out", keys: V, dim: s.dim, init: { kind: "zero" } },
  ];
}

function summarize(sums: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  const loss = w2vLoss(
    sums.pos_loss_sum,
    sums.pos_steps,
    sums.neg_loss_sum,
    sums.neg_steps,
    sums.negatives_max,
  );
  if (!Number.isNaN(loss)) out.loss = loss;
  if (sums.workers > 0) out.lr = sums.lr_sum / sums.workers;
  if (sums.words !== undefined) out.words = sums.words;
  if (sums.vocab_max !== undefined) out.vocab = sums.vocab_max;
  if (sums.skipped_neg > 0) out.skipped_neg = sums.skipped_neg;
  if (sums.deferred > 0) out.deferred = sums.deferred;
  if (sums.deferred_neg > 0) out.deferred_neg = sums.deferred_neg;
  if (sums.hot_merges > 0) out.hot_merges = sums.hot_merges;
  if (sums.localized > 0) out.localized = sums.localized;
  if (sums.wait_ms_max > 0) out.wait_ms_max = sums.wait_ms_max;
  if (sums.hot_rows > 0) out.hot_rows = sums.hot_rows;
  if (sums.hot_replicated_max > 0) out.hot_replicated = sums.hot_replicated_max;
  if (
    sums.vocab_hash_max !== undefined && sums.vocab_hash_max !== -sums.vocab_hash_neg_max
  ) out.vocab_mismatch = 1;
  return out;
}

function verdict(metrics: Record<string, number>): string | null {
  return metrics.vocab_mismatch
    ? "w2v: the workers counted different vocabularies (was the corpus changed during the job?)"
    : null;
}

/** The w2v task. */
export const task: TaskDefinition = {
  name: "w2v",
  schema: W2V_SCHEMA,
  tables,
  run,
  summarize,
  verdict,
  checkpoints: true,
};
