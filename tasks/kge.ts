/**
 * Knowledge-graph embeddings (task `kge`): ComplEx, DistMult or RESCAL (`model.algorithm`)
 * trained with a logistic loss on each positive triple and `model.negatives` corrupted subjects
 * plus `model.negatives` corrupted objects (entities drawn uniformly), L2 regularisation, and
 * AdaGrad whose accumulator is stored in the same key right after the embedding (see
 * `tasks/kge_model.ts`). Tables: `entities` (2 * dim floats a key) and `relations` (2 * dim, or
 * 2 * dim * dim for RESCAL). Each worker trains its triples one by one (a step = a positive and
 * its negatives, all gradients at the values read, one AdaGrad update per key).
 *
 * Localize directives understood (the defaults):
 *
 * - `{ table: relations, when: start, keys: partition }` (data clustering): the relations are
 *   assigned to workers greedily by triple count, each worker trains exactly the triples of its
 *   relations and localizes those relations once. Without it, triple i goes to worker
 *   i mod workers and relations stay where they are.
 * - `{ table: entities, when: ahead, steps: K }` (latency hiding): while triple t is trained, the
 *   subject, object and (presampled) negatives of triple t + K are localized, in one call for
 *   every K/8 triples (at most 256): a call per triple would cost a message to the server
 *   thread each. A triple whose entities are not all local when its turn comes (the move is
 *   late, or another worker took a key meanwhile) is deferred: its missing keys are localized
 *   and it is trained K triples later; after six deferrals (or with 4096 triples waiting) it
 *   joins a batch of remote triples (see {@linkcode RemoteBatches}: one pull for up to 512
 *   triples, trained about K triples after it was issued), so the worker does not wait for a
 *   round trip per triple.
 *
 * Shared hot entities (`model.hot_entities: H`, lapse with the ahead directive): the H most
 * frequent entities of the training triples are each placed once, at the start, on the worker
 * whose triples use it most, and are never localized again (not ahead, not in negative pools).
 * On a graph with Zipf-distributed entities every worker needs the same hubs all the time:
 * localized on demand they bounced between the nodes, the worker holding the most hubs ran
 * 2.5x faster than the others, and the epoch waited for the slowest. A triple that needs a hot
 * entity held elsewhere goes to the remote batches at once (its other keys localized first).
 *
 * Negatives (off by default): with `model.negative_pool: P`, each worker draws its negatives
 * uniformly from a pool of P entities (themselves drawn uniformly); the next pool is drawn and
 * localized ahead and becomes current every `model.pool_refresh` triples, and the ahead
 * directive then localizes only the subject and object of the triple K ahead (the pool's
 * entities are already here). With `model.local_negatives: true`, a negative that is not local
 * when its triple is trained is redrawn (from the pool, or uniformly) up to 8 times until one is;
 * if none is, the first draw stays (a remote access); the pools are then drawn the same way
 * (each entity redrawn up to 8 times until it is local), so that a refresh moves few keys
 * (WordNet, 2 nodes: 155 instead of 236 MB moved per epoch, test MRR 0.824 vs 0.833 after 4
 * epochs). Lapse mode only: in the classic modes the
 * local keys are the fixed share homed on the node, a biased sample, so it is ignored there.
 * Uniform negatives from all entities
 * are mostly remote at several nodes: each one is a key move per triple.
 *
 * In the classic modes localize is a no-op; the same loop then pulls the keys of triple t + K
 * asynchronously (the prefetch of a classic PS with latency hiding) and trains triple t on
 * those values (at most 32 triples ahead: further copies only grow staler), refreshed from
 * local memory for keys that are local; the worker adds its own
 * updates of a remote key to the copies of it prefetched before (a worker always sees its own
 * updates, as with synchronous operations; see {@linkcode RingIndex}).
 *
 * Evaluation: filtered MRR and Hits@1/3/10 over head and tail prediction (every other known
 * true triple of train, valid and test filtered out; ties count half: rank = 1 + greater +
 * floor(equal / 2)), computed by all workers over their share of the sample (see
 * {@linkcode evalSample}): every `model.eval_every` epochs on `model.eval_split`, and on
 * `test` after the last epoch. `model.epochs: 0` evaluates the initial (random) embeddings.
 *
 * Per-epoch sums: `loss_sum`, `train_n`, and per evaluated split `<split>_rr`, `_h1`, `_h3`,
 * `_h10`, `_n`; {@linkcode task.summarize} turns them into `train_loss`, `<split>_mrr`,
 * `<split>_hits1/3/10`.
 *
 * @module
 */
import type {
  JobConfig,
  LocalizeDirective,
  ParameterServer,
  TableSpec,
  TaskContext,
  TaskDefinition,
  TaskSchema,
} from "../mod.ts";
import { hash32, Rng } from "../core/rng.ts";
import {
  assignRelations,
  countRelations,
  evalSample,
  FilterIndex,
  hotEntityOwners,
  type KgData,
  kgDirSize,
  type KgGenerateConfig,
  KgGenerator,
  readKgDir,
  selectTriples,
  shuffleTriples,
  type Triples,
} from "../data/kge_data.ts";
import { writeKgeEmbeddings } from "./kge_out.ts";
import { REMOTE_BATCH_MAX, RemoteBatches } from "./kge_remote_batch.ts";
import { decodeInts, encodeInts, resumeFrom } from "./resume_state.ts";
import { dot, type KgeAlgorithm, type KgeModel, makeModel, TrainStep } from "./kge_model.ts";

/** Model defaults (also in the schema). */
export const KGE_DEFAULTS = {
  algorithm: "complex" as KgeAlgorithm,
  dim: 100,
  negatives: 6,
  epochs: 10,
  lr: 0.1,
  lambda: 0,
  init_scale: 0.1,
  adagrad_eps: 1e-6,
  clock_every: 1000,
  eval_every: 1,
  eval_max_triples: 1000,
  eval_split: "valid" as "valid" | "test",
  negative_pool: 0,
  pool_refresh: 1000,
  local_negatives: false,
  hot_entities: 0,
};

/** Draws of a local negative before keeping the first draw (`model.local_negatives`). */
const LOCAL_NEGATIVE_TRIES = 8;
/** Largest negative pool (entities a worker keeps localized for its negatives). */
const NEGATIVE_POOL_MAX = 1 << 20;
/** Triples waiting for their keys (lapse, see {@linkcode DeferQueue}); a full queue trains remotely. */
const DEFER_MAX = 4096;
/**
 * Times a triple is deferred before it is trained with remote accesses (awaited round trips).
 * Generated 300k triples over 500k entities, 4 nodes: 2 left 5-12% of triples remote (31k
 * triples/s), 6 about 1-7% (38k),
 * 12 more bytes moved by hubs going back and forth (32k).
 */
const DEFER_TRIES = 6;
/** Longest prefetch distance of the classic modes (triples ahead). */
const CLASSIC_PREFETCH_MAX = 32;
/** Largest number of triples whose ahead keys go into one localize call. */
const LOCALIZE_BATCH_MAX = 256;

/** The kge part of a job config, checked, defaults filled in. */
export interface KgeSettings {
  dir?: string;
  format?: "names" | "ids";
  /** Where worker 0 writes the embeddings after training (`model.out`, `lapse train --out`). */
  out?: string;
  generate?: KgGenerateConfig;
  algorithm: KgeAlgorithm;
  dim: number;
  negatives: number;
  epochs: number;
  lr: number;
  lambda: number;
  initScale: number;
  adagradEps: number;
  clockEvery: number;
  evalEvery: number;
  evalMaxTriples: number;
  evalSplit: "valid" | "test";
  /** Data clustering directive on. */
  clusterRelations: boolean;
  /** Latency hiding: localize (or prefetch) this many triples ahead; 0 = off. */
  ahead: number;
  /** Entities in a worker's negative pool; 0 = negatives drawn from all entities. */
  negativePool: number;
  /** Triples between two pool refreshes. */
  poolRefresh: number;
  /** Redraw negatives that are not local when their triple is trained. */
  localNegatives: boolean;
  /**
   * Lapse with the ahead directive: the most frequent entities of the training triples, each
   * placed once at the worker that uses it most and never moved again (0 = off).
   */
  hotEntities: number;
}

const DEFAULT_LOCALIZE: LocalizeDirective[] = [
  { table: "relations", when: "start", keys: "partition" },
  { table: "entities", when: "ahead", steps: 256, keys: "next" },
];

function num(v: unknown, fallback: number): number {
  return typeof v === "number" ? v : fallback;
}

/** Checks the kge part of a config and fills defaults; throws a clear `RangeError`. */
export function kgeSettings(config: JobConfig): KgeSettings {
  const data = config.data ?? {};
  const model = config.model ?? {};
  const hasGen = data.generate !== undefined && data.generate !== null;
  const hasDir = typeof data.dir === "string" && data.dir.length > 0;
  if (hasGen === hasDir) {
    throw new RangeError(
      hasGen
        ? "kge: data.generate and data.dir are both given; give exactly one"
        : "kge: give exactly one of data.dir (triple files) and data.generate (a synthetic graph)",
    );
  }
  let generate: KgGenerateConfig | undefined;
  if (hasGen) {
    const g = data.generate;
    generate = {
      entities: g.entities,
      relations: g.relations,
      triples: g.triples,
      zipf_entities: num(g.zipf_entities, 1),
      zipf_relations: num(g.zipf_relations, 1),
      valid: num(g.valid, 1000),
      test: num(g.test, 1000),
      seed: num(g.seed, 1),
    };
  }
  const s: KgeSettings = {
    dir: hasDir ? data.dir : undefined,
    format: data.format,
    out: typeof model.out === "string" && model.out.length > 0 ? model.out : undefined,
    generate,
    algorithm: model.algorithm ?? KGE_DEFAULTS.algorithm,
    dim: num(model.dim, KGE_DEFAULTS.dim),
    negatives: num(model.negatives, KGE_DEFAULTS.negatives),
    epochs: num(model.epochs, KGE_DEFAULTS.epochs),
    lr: num(model.lr, KGE_DEFAULTS.lr),
    lambda: num(model.lambda, KGE_DEFAULTS.lambda),
    initScale: num(model.init_scale, KGE_DEFAULTS.init_scale),
    adagradEps: num(model.adagrad_eps, KGE_DEFAULTS.adagrad_eps),
    clockEvery: num(model.clock_every, KGE_DEFAULTS.clock_every),
    evalEvery: num(model.eval_every, KGE_DEFAULTS.eval_every),
    evalMaxTriples: num(model.eval_max_triples, KGE_DEFAULTS.eval_max_triples),
    evalSplit: model.eval_split ?? KGE_DEFAULTS.eval_split,
    clusterRelations: false,
    ahead: 0,
    negativePool: num(model.negative_pool, KGE_DEFAULTS.negative_pool),
    poolRefresh: num(model.pool_refresh, KGE_DEFAULTS.pool_refresh),
    localNegatives: model.local_negatives === true,
    hotEntities: num(model.hot_entities, KGE_DEFAULTS.hot_entities),
  };
  makeModel(s.algorithm, s.dim); // checks algorithm and dim
  if (!Number.isInteger(s.dim) || s.dim < 1 || s.dim > 4096) {
    throw new RangeError(`kge: model.dim must be an integer from 1 to 4096, got ${s.dim}`);
  }
  if (s.algorithm === "rescal" && s.dim > 1024) {
    throw new RangeError(
      `kge: model.dim ${s.dim} does not fit RESCAL (a relation is dim x dim floats): use dim <= 1024`,
    );
  }
  if (!Number.isInteger(s.negatives) || s.negatives < 0 || s.negatives > 1024) {
    throw new RangeError(`kge: model.negatives must be an integer from 0 to 1024`);
  }
  if (
    !Number.isInteger(s.negativePool) || s.negativePool < 0 || s.negativePool > NEGATIVE_POOL_MAX
  ) {
    throw new RangeError(
      `kge: model.negative_pool must be an integer from 0 (off) to ${NEGATIVE_POOL_MAX}, got ${s.negativePool}`,
    );
  }
  if (!Number.isInteger(s.poolRefresh) || s.poolRefresh < 1) {
    throw new RangeError(`kge: model.pool_refresh must be an integer >= 1, got ${s.poolRefresh}`);
  }
  if (!(s.lr > 0)) throw new RangeError(`kge: model.lr must be > 0`);
  if (!(s.lambda >= 0)) throw new RangeError(`kge: model.lambda must be >= 0`);
  for (const d of config.localize ?? []) {
    if (d.table === "relations" && d.when === "start" && (d.keys ?? "partition") === "partition") {
      s.clusterRelations = true;
    } else if (d.table === "entities" && d.when === "ahead" && (d.keys ?? "next") === "next") {
      const k = d.steps ?? 256;
      if (!Number.isInteger(k) || k < 1 || k > 65536) {
        throw new RangeError(
          `kge: the entities directive needs steps: an integer from 1 to 65536, got ${k}`,
        );
      }
      s.ahead = k;
    } else {
      throw new RangeError(
        `kge does not understand the localize directive ${JSON.stringify(d)}; it understands ` +
          `{table: relations, when: start, keys: partition} and {table: entities, when: ahead, steps: K}`,
      );
    }
  }
  return s;
}

/** Sizes of the graph (the tables), from the files or the generator config. */
function graphSize(s: KgeSettings): { entities: number; relations: number } {
  if (s.generate) return { entities: s.generate.entities, relations: s.generate.relations };
  return kgDirSize(s.dir!, s.format);
}

/** What one worker trains and evaluates. */
export interface WorkerData {
  entities: number;
  relations: number;
  entityNames?: string[];
  relationNames?: string[];
  /** This worker's training triples. */
  train: Triples;
  /** Training triples of all workers. */
  trainTotal: number;
  /** This worker's relations (data clustering), sorted. */
  myRelations: Uint32Array;
  /** The evaluation sample of `split` (all workers), and the known triples for filtering. */
  evalSet(split: "valid" | "test"): Triples;
  known(): Triples[];
  /** The worker that holds each of the `hot` shared entities, -1 for the others (see hotEntityOwners). */
  hotOwners(hot: number): Int32Array;
}

/**
 * Loads worker `w` of `n`'s data. Files: every worker reads them (the dictionaries are then the
 * same everywhere) and keeps its triples. Generated: each worker generates only its part (its
 * relations under data clustering, else every n-th triple of each relation).
 */
export function loadKgeData(s: KgeSettings, w: number, n: number): WorkerData {
  if (s.generate) {
    const gen = new KgGenerator(s.generate);
    const owner = assignRelations(gen.counts, n);
    const train = s.clusterRelations
      ? gen.train((r) => owner[r] === w)
      : gen.train(() => true, { w, n });
    let all: Triples | undefined;
    const held = new Map<number, Triples>();
    return {
      entities: s.generate.entities,
      relations: s.generate.relations,
      train,
      trainTotal: s.generate.triples,
      myRelations: relationsOf(owner, w),
      evalSet: (split) => evalSample(heldOut(gen, held, split), s.evalMaxTriples),
      known: () => [
        all ??= gen.train(),
        heldOut(gen, held, "valid"),
        heldOut(gen, held, "test"),
      ],
      hotOwners: (hot) => {
        all ??= gen.train();
        // gen.train() lays the triples out relation by relation, triple j of relation r at
        // start[r] + j; without data clustering triple j goes to worker j mod n.
        const start = new Float64Array(s.generate!.relations + 1);
        for (let r = 0; r < gen.counts.length; r++) start[r + 1] = start[r] + gen.counts[r];
        const relOf = all.rels;
        return hotEntityOwners(
          all,
          s.generate!.entities,
          n,
          hot,
          s.clusterRelations ? (i) => owner[relOf[i]] : (i) => (i - start[relOf[i]]) % n,
        );
      },
    };
  }
  const d: KgData = readKgDir(s.dir!, s.format);
  const owner = assignRelations(countRelations(d.train, d.relations), n);
  const train = s.clusterRelations
    ? selectTriples(d.train, (i) => owner[d.train.rels[i]] === w)
    : selectTriples(d.train, (i) => i % n === w);
  return {
    entities: d.entities,
    relations: d.relations,
    entityNames: d.entityNames,
    relationNames: d.relationNames,
    train,
    trainTotal: d.train.heads.length,
    myRelations: relationsOf(owner, w),
    evalSet: (split) => evalSample(split === "valid" ? d.valid : d.test, s.evalMaxTriples),
    known: () => [d.train, d.valid, d.test],
    hotOwners: (hot) =>
      hotEntityOwners(
        d.train,
        d.entities,
        n,
        hot,
        s.clusterRelations ? (i) => owner[d.train.rels[i]] : (i) => i % n,
      ),
  };
}

function heldOut(gen: KgGenerator, cache: Map<number, Triples>, split: "valid" | "test") {
  const k = split === "valid" ? 1 : 2;
  let t = cache.get(k);
  if (t === undefined) cache.set(k, t = gen.heldOut(k));
  return t;
}

function relationsOf(owner: Int32Array, w: number): Uint32Array {
  const out: number[] = [];
  for (let r = 0; r < owner.length; r++) if (owner[r] === w) out.push(r);
  return Uint32Array.from(out);
}

/** Every `n`-th triple starting at `w` (a worker's share of the evaluation sample). */
export function shareOf(t: Triples, w: number, n: number): Triples {
  return selectTriples(t, (i) => i % n === w);
}

/** Sums of filtered ranking metrics. */
export interface RankSums {
  rr: number;
  h1: number;
  h3: number;
  h10: number;
  /** Ranked sides (2 per triple: head and tail). */
  n: number;
}

/** Adds one filtered rank to `sums`. */
function addRank(sums: RankSums, greater: number, equal: number): void {
  const rank = 1 + greater + Math.floor(equal / 2);
  sums.rr += 1 / rank;
  if (rank <= 1) sums.h1++;
  if (rank <= 3) sums.h3++;
  if (rank <= 10) sums.h10++;
  sums.n++;
}

/** Reads values of keys; the source of embeddings for {@linkcode rankQueries}. */
export type PullFn = (
  table: "entities" | "relations",
  keys: Uint32Array,
  out: Float32Array,
) => Promise<void> | undefined;

/**
 * Filtered ranking of `queries` (both sides) against all `entities`, reading embeddings through
 * `pull` (PS or plain arrays). Streams the entities in chunks of `chunk` keys.
 */
export async function rankQueries(
  model: KgeModel,
  queries: Triples,
  entities: number,
  filter: FilterIndex,
  pull: PullFn,
  chunk = 4096,
): Promise<RankSums> {
  const sums: RankSums = { rr: 0, h1: 0, h3: 0, h10: 0, n: 0 };
  const nq = queries.heads.length;
  if (nq === 0) return sums;
  const d = model.dim, ed = 2 * d, rf = model.relFloats;
  // Distinct relations of the queries.
  const relList = [...new Set(queries.rels)].sort((a, b) => a - b);
  const relIdx = new Map(relList.map((r, i) => [r, i]));
  const relVals = new Float32Array(relList.length * 2 * rf);
  const hv = new Float32Array(nq * ed), tv = new Float32Array(nq * ed);
  const ps = [
    pull("relations", Uint32Array.from(relList), relVals),
    pull("entities", queries.heads, hv),
    pull("entities", queries.tails, tv),
  ];
  for (const p of ps) if (p) await p;
  const qt = new Float64Array(nq * d), qh = new Float64Array(nq * d);
  const trueT = new Float64Array(nq), trueH = new Float64Array(nq);
  for (let q = 0; q < nq; q++) {
    const ro = relIdx.get(queries.rels[q])! * 2 * rf;
    model.tailQuery(hv, q * ed, relVals, ro, qt, q * d);
    model.headQuery(relVals, ro, tv, q * ed, qh, q * d);
  }
  const gT = new Int32Array(nq), eT = new Int32Array(nq);
  const gH = new Int32Array(nq), eH = new Int32Array(nq);
  const curT = new Int32Array(nq), curH = new Int32Array(nq);
  const endT = new Int32Array(nq), endH = new Int32Array(nq);
  const { start, answers } = filter;
  for (let q = 0; q < nq; q++) {
    curT[q] = start[filter.tailGroup[q]];
    endT[q] = start[filter.tailGroup[q] + 1];
    curH[q] = start[filter.headGroup[q]];
    endH[q] = start[filter.headGroup[q] + 1];
  }
  // The true scores, computed like every other score (same function, same values).
  const chunkKeys = new Uint32Array(chunk);
  const buf = new Float32Array(chunk * ed);
  for (let q = 0; q < nq; q++) {
    trueT[q] = dot(qt, q * d, tv, q * ed, d);
    trueH[q] = dot(qh, q * d, hv, q * ed, d);
  }
  const TILE = 256;
  for (let a = 0; a < entities; a += chunk) {
    const b = Math.min(entities, a + chunk), n = b - a;
    for (let i = 0; i < n; i++) chunkKeys[i] = a + i;
    const p = pull("entities", chunkKeys.subarray(0, n), buf.subarray(0, n * ed));
    if (p) await p;
    for (let t0 = 0; t0 < n; t0 += TILE) {
      const t1 = Math.min(n, t0 + TILE);
      for (let q = 0; q < nq; q++) {
        const qo = q * d, tt = trueT[q], th = trueH[q];
        let gt = 0, et = 0, gh = 0, eh = 0;
        for (let i = t0; i < t1; i++) {
          const st = dot(qt, qo, buf, i * ed, d);
          if (st > tt) gt++;
          else if (st === tt) et++;
          const sh = dot(qh, qo, buf, i * ed, d);
          if (sh > th) gh++;
          else if (sh === th) eh++;
        }
        gT[q] += gt;
        eT[q] += et;
        gH[q] += gh;
        eH[q] += eh;
      }
    }
    // Filtered: known answers in this chunk do not count (the true one included).
    for (let q = 0; q < nq; q++) {
      const qo = q * d;
      for (let c = curT[q]; c < endT[q] && answers[c] < b; c = ++curT[q]) {
        const sc = dot(qt, qo, buf, (answers[c] - a) * ed, d);
        if (sc > trueT[q]) gT[q]--;
        else if (sc === trueT[q]) eT[q]--;
      }
      for (let c = curH[q]; c < endH[q] && answers[c] < b; c = ++curH[q]) {
        const sc = dot(qh, qo, buf, (answers[c] - a) * ed, d);
        if (sc > trueH[q]) gH[q]--;
        else if (sc === trueH[q]) eH[q]--;
      }
    }
  }
  for (let q = 0; q < nq; q++) {
    addRank(sums, gT[q], eT[q]);
    addRank(sums, gH[q], eH[q]);
  }
  return sums;
}

/** The ring of triples ahead: their keys (presampled negatives) and, classic, prefetched values. */
class AheadRing {
  readonly size: number;
  readonly keys: Uint32Array;
  readonly relKeys: Uint32Array;
  readonly ent: Float32Array | null;
  readonly rel: Float32Array | null;
  readonly pending: (Promise<void> | undefined)[];

  constructor(ahead: number, readonly slots: number, ed: number, rkd: number, prefetch: boolean) {
    this.size = ahead + 1;
    this.keys = new Uint32Array(this.size * slots);
    this.relKeys = new Uint32Array(this.size);
    this.ent = prefetch ? new Float32Array(this.size * slots * ed) : null;
    this.rel = prefetch ? new Float32Array(this.size * rkd) : null;
    this.pending = new Array(this.size).fill(undefined);
  }
}

/**
 * A worker's pool of negatives: `size` entities drawn uniformly, and the next pool drawn ahead
 * (so that it can be localized before it is used). {@linkcode EntityPool.refresh} makes the next
 * pool current and draws a new next one.
 */
export class EntityPool {
  current: Uint32Array;
  next: Uint32Array;

  constructor(readonly size: number, private readonly entities: number, rng: Rng) {
    this.current = new Uint32Array(size);
    this.next = new Uint32Array(size);
    this.#fill(this.current, rng);
    this.#fill(this.next, rng);
  }

  #fill(a: Uint32Array, rng: Rng): void {
    for (let i = 0; i < a.length; i++) a[i] = rng.nextInt(this.entities);
  }

  /**
   * The next pool becomes current; a new next pool is drawn (returned, to localize it). With
   * `prefer`, each entity is redrawn up to {@linkcode LOCAL_NEGATIVE_TRIES} times until
   * `prefer` accepts it (local negatives: a pool of entities that are here needs no moves).
   */
  refresh(rng: Rng, prefer?: (entity: number) => boolean): Uint32Array {
    const c = this.current;
    this.current = this.next;
    this.next = c;
    if (prefer === undefined) this.#fill(c, rng);
    else {
      for (let i = 0; i < c.length; i++) {
        let e = rng.nextInt(this.entities);
        for (let k = 1; k < LOCAL_NEGATIVE_TRIES && !prefer(e); k++) e = rng.nextInt(this.entities);
        c[i] = e;
      }
    }
    return c;
  }

  /** A uniform draw from the current pool. */
  draw(rng: Rng): number {
    return this.current[rng.nextInt(this.size)];
  }
}

/**
 * Classic prefetch: the keys of the prefetched copies in the ring, linked per key (newest
 * first), so that this worker's update of a remote key is added to the copies of the same key
 * pulled before it (the triples ahead). Without this a worker would train on copies that miss
 * its own updates of the last K triples. Entry `e` holds key `keys[e]` for the triple numbered
 * `no[e]`; a slot is reused only after its triple trained, so the live entries of a key are
 * those met, newest first, with numbers above the current triple's and strictly falling.
 */
export class RingIndex {
  readonly head: Int32Array;
  readonly next: Int32Array;
  readonly no: Float64Array;

  constructor(keys: number, entries: number, readonly keyOf: Uint32Array) {
    this.head = new Int32Array(keys).fill(-1);
    this.next = new Int32Array(entries).fill(-1);
    this.no = new Float64Array(entries);
  }

  /** Entry `e` (whose key is `keyOf[e]`) now holds the copy for triple number `no`. */
  add(e: number, no: number): void {
    const k = this.keyOf[e];
    this.next[e] = this.head[k];
    this.head[k] = e;
    this.no[e] = no;
  }

  /**
   * Adds `delta[at..at+width)` to `copies` at every live entry of `key` after triple `cur`
   * (each entry's copy at `e * width`); returns how many copies were patched.
   */
  patch(
    key: number,
    cur: number,
    delta: Float32Array,
    at: number,
    copies: Float32Array,
    width: number,
  ): number {
    let n = 0, prev = Infinity;
    for (let e = this.head[key]; e >= 0; e = this.next[e]) {
      const no = this.no[e];
      if (no <= cur || no >= prev || this.keyOf[e] !== key) break;
      prev = no;
      const o = e * width;
      for (let i = 0; i < width; i++) copies[o + i] += delta[at + i];
      n++;
    }
    return n;
  }
}

/**
 * Triples whose entities were not all local when their turn came (lapse): they wait here,
 * their missing keys localized, and are trained `steps` triples later instead of stalling the
 * worker on a remote round trip. FIFO with fixed capacity; every entry is due at its `due`
 * step (non-decreasing, since entries are added at the current step plus a constant).
 */
export class DeferQueue {
  readonly keys: Uint32Array;
  readonly rel: Uint32Array;
  readonly due: Float64Array;
  readonly tries: Uint8Array;
  head = 0;
  size = 0;

  constructor(readonly capacity: number, readonly slots: number) {
    this.keys = new Uint32Array(capacity * slots);
    this.rel = new Uint32Array(capacity);
    this.due = new Float64Array(capacity);
    this.tries = new Uint8Array(capacity);
  }

  /** Appends a triple (its keys copied); false if the queue is full. */
  add(keys: Uint32Array, rel: number, due: number, tries: number): boolean {
    if (this.size === this.capacity) return false;
    const at = (this.head + this.size) % this.capacity;
    this.keys.set(keys, at * this.slots);
    this.rel[at] = rel;
    this.due[at] = due;
    this.tries[at] = tries;
    this.size++;
    return true;
  }

  /** The keys of the oldest entry (valid until it is shifted out and its slot reused). */
  headKeys(): Uint32Array {
    return this.keys.subarray(this.head * this.slots, (this.head + 1) * this.slots);
  }

  /** Drops the oldest entry. */
  shift(): void {
    this.head = (this.head + 1) % this.capacity;
    this.size--;
  }
}

/** Fills the keys of triple `t` into ring position `at`: s, o, corrupted s, corrupted o. */
function presample(
  ring: AheadRing,
  at: number,
  train: Triples,
  t: number,
  negatives: number,
  entities: number,
  rng: Rng,
  pool: EntityPool | null,
): void {
  const k = ring.keys, o = at * ring.slots;
  k[o] = train.heads[t];
  k[o + 1] = train.tails[t];
  if (pool !== null) {
    for (let j = 0; j < 2 * negatives; j++) k[o + 2 + j] = pool.draw(rng);
  } else {
    for (let j = 0; j < 2 * negatives; j++) k[o + 2 + j] = rng.nextInt(entities);
  }
  ring.relKeys[at] = train.rels[t];
}

async function inChunks(
  keys: Uint32Array,
  max: number,
  op: (keys: Uint32Array) => Promise<void> | undefined,
): Promise<void> {
  const pending: Promise<void>[] = [];
  for (let i = 0; i < keys.length; i += max) {
    const p = op(keys.subarray(i, Math.min(keys.length, i + max)));
    if (p) pending.push(p);
  }
  if (pending.length > 0) await Promise.all(pending);
}

/** The evaluation of one split by this worker, through the PS. */
async function evaluatePs(
  ps: ParameterServer,
  tE: number,
  tR: number,
  model: KgeModel,
  data: WorkerData,
  split: "valid" | "test",
  me: number,
  n: number,
  maxKeys: number,
): Promise<RankSums> {
  const queries = shareOf(data.evalSet(split), me, n);
  const filter = new FilterIndex(queries, data.relations, data.known());
  const pull: PullFn = (table, keys, out) => ps.pull(table === "entities" ? tE : tR, keys, out);
  return await rankQueries(
    model,
    queries,
    data.entities,
    filter,
    (table, keys, out) => {
      if (keys.length <= maxKeys) return pull(table, keys, out);
      const dim = out.length / keys.length;
      return inChunks(keys, maxKeys, (ks) => {
        const off = (ks.byteOffset - keys.byteOffset) / 4;
        return pull(table, ks, out.subarray(off * dim, (off + ks.length) * dim));
      });
    },
    Math.max(1, Math.min(4096, maxKeys)),
  );
}

/** A kge worker's checkpoint state, but for the loop's counters (`since_clock`, `presampled`). */
function kgeState(ctx: TaskContext, next: number, poolRng: Rng, pool: EntityPool | null) {
  return {
    epoch: next,
    seed: ctx.seed,
    worker: ctx.worker,
    workers: ctx.workers,
    // The training order and the uniform negatives are reseeded every epoch: only the pool's
    // generator and pools go on from epoch to epoch.
    pool_rng: poolRng.getState(),
    pool: pool === null ? null : [encodeInts(pool.current), encodeInts(pool.next)],
  };
}

/**
 * Where a kge worker starts: epoch 0, or, resumed, the epoch after the checkpoint with the
 * triples' order replayed to it (`shuffle` of every epoch before) and, for the worker that wrote
 * the state, the negative pool and counters as they were: the same training as a run that was
 * never interrupted. On another cluster shape the pool is drawn afresh.
 */
function kgeResume(
  ctx: TaskContext,
  epochs: number,
  shuffle: (epoch: number) => void,
  poolRng: Rng,
  pool: EntityPool | null,
): { firstEpoch: number; sinceClock: number; presampled: number } {
  const state = ctx.resumeState;
  if (!state) return { firstEpoch: 0, sinceClock: 0, presampled: 0 };
  const { firstEpoch, sameWorker } = resumeFrom("kge", state, { ...ctx, epochs });
  for (let e = 0; e < firstEpoch; e++) shuffle(e);
  let sinceClock = 0, presampled = 0;
  if (sameWorker) {
    sinceClock = Number(state.since_clock) || 0;
    presampled = Number(state.presampled) || 0;
    if (pool !== null) {
      const saved = state.pool as unknown[] | null;
      const ok = Array.isArray(saved) && decodeInts(saved[0], pool.current) &&
        decodeInts(saved[1], pool.next);
      // model.negative_pool changed: the pool drawn afresh (the run then differs from one
      // never interrupted, as it would anyway).
      if (!ok) ctx.log(`kge worker ${ctx.worker}: negative pool drawn afresh (its size changed)`);
      else poolRng.setState(state.pool_rng);
    }
  }
  ctx.log(`kge worker ${ctx.worker}/${ctx.workers}: resumed at epoch ${firstEpoch}`);
  return { firstEpoch, sinceClock, presampled };
}

/** The training loop of one worker. */
async function run(ctx: TaskContext): Promise<void> {
  const { ps, config } = ctx;
  const s = kgeSettings(config);
  const N = ctx.workers, me = ctx.worker;
  const maxKeys = Math.max(1, Math.floor(config.ps?.batch_keys_max ?? 1 << 20));
  const tE = ps.table("entities").id, tR = ps.table("relations").id;
  const model = makeModel(s.algorithm, s.dim);
  const step = new TrainStep(model, s.negatives);
  const D = s.dim, ED = 2 * D, RKD = 2 * model.relFloats, SL = step.slots;

  const t0 = performance.now();
  const data = loadKgeData(s, me, N);
  const train = data.train, nt = train.heads.length;
  ctx.log(
    `kge worker ${me}/${N}: ${nt} training triples, ${data.myRelations.length} relations ` +
      `(data clustering ${s.clusterRelations ? "on" : "off"}), ${data.entities} entities, ` +
      `loaded in ${((performance.now() - t0) / 1000).toFixed(2)}s`,
  );
  ctx.epochPoints(nt);
  if (s.clusterRelations) {
    await inChunks(data.myRelations, maxKeys, (ks) => ps.localize(tR, ks));
  }
  // Lapse, shared hot entities (model.hot_entities): each is placed once, at the worker whose
  // triples use it most, and never moved again (nobody else localizes it; the others train the
  // triples that need it in remote batches): moved on demand, as every worker wants them, they
  // would bounce between the nodes. hot[e]: 0 not hot, 1 held here, 2 held by another worker.
  const hot = new Uint8Array(config.ps.mode === "lapse" ? data.entities : 0);
  let hotHere = 0, hotElsewhere = 0;
  if (config.ps.mode === "lapse" && s.ahead > 0 && s.hotEntities > 0 && N > 1) {
    const owner = data.hotOwners(s.hotEntities);
    const mine: number[] = [];
    for (let e = 0; e < owner.length; e++) {
      if (owner[e] < 0) continue;
      hot[e] = owner[e] === me ? 1 : 2;
      if (owner[e] === me) mine.push(e);
      else hotElsewhere++;
    }
    hotHere = mine.length;
    await inChunks(Uint32Array.from(mine), maxKeys, (ks) => ps.localize(tE, ks));
  }
  await ps.barrier();

  const lapse = config.ps.mode === "lapse";
  // Classic: a prefetch only has to cover one pull's round trip (~20 triples here); a copy
  // pulled further ahead misses more of the other workers' updates (wn_body, 2 nodes: test MRR
  // 0.75 at 256 ahead vs 0.88 at 16, same speed), so the baseline gets its best distance.
  const K = lapse ? s.ahead : Math.min(s.ahead, CLASSIC_PREFETCH_MAX);
  // Classic modes: the prefetch of the triple K ahead is an asynchronous pull (a real one
  // only with more than one node: on one node every key is local). Not in the stale mode:
  // its worker cache is its latency hiding, and a prefetched copy would miss the worker's
  // own updates of the last K triples (pullIfLocal is false there for every key).
  const prefetch = !lapse && config.ps.mode !== "stale" && K > 0 && ctx.nodes > 1;
  const ring = new AheadRing(K, SL, ED, RKD, prefetch);
  // Classic prefetch: the copies of the triples ahead get this worker's own updates (see
  // RingIndex), so that a worker always sees its own updates, as on a PS with synchronous ops.
  const ringE = prefetch ? new RingIndex(data.entities, ring.size * SL, ring.keys) : null;
  const ringR = prefetch ? new RingIndex(data.relations, ring.size, ring.relKeys) : null;
  const slotNo = new Float64Array(ring.size);
  let presampleNo = 0, patched = 0;
  const R = ring.size;
  const rng = new Rng(0);
  const params = {
    negatives: s.negatives,
    lr: s.lr,
    lambda: s.lambda,
    accOffset: s.adagradEps,
  };
  const relKey = new Uint32Array(1);
  const PROGRESS_EVERY = 1024;
  const time = { train: 0, eval: 0, barrier: 0 };

  // The negative pool (model.negative_pool): its own generator, so that the triples' order
  // and the uniform draws do not depend on it; the current and next pools localized now.
  const poolRng = new Rng(hash32(ctx.seed ^ 0x706f, me));
  const pool = s.negativePool > 0 ? new EntityPool(s.negativePool, data.entities, poolRng) : null;
  // The triples' order: a chain of seeded shuffles, one per epoch (replayed on resume).
  const shuffleEpoch = (epoch: number) => {
    rng.reseed(hash32(ctx.seed, epoch, me));
    shuffleTriples(train, rng);
  };
  // Resumed (lapse train --resume): the order, the pool and the counters where they were.
  const resumed = kgeResume(ctx, s.epochs, shuffleEpoch, poolRng, pool);
  const localizePool = (pool: Uint32Array) => {
    // Shared hot entities stay where they are (see hot).
    const keys = hotElsewhere + hotHere > 0 ? pool.filter((e) => hot[e] === 0) : pool;
    const p = inChunks(keys, maxKeys, (ks) => ps.localize(tE, ks));
    p.catch(() => {});
  };
  if (pool !== null && lapse) {
    localizePool(pool.current);
    localizePool(pool.next);
  }
  let presampled = resumed.presampled; // triples presampled so far (for the pool refresh)
  // Pool negatives are localized with the pool: the ahead directive moves only s and o.
  const aheadSlots = pool !== null || (s.localNegatives && lapse) ? 2 : SL;
  let redrawn = 0, redrawMissed = 0;
  // Only lapse: in the classic modes the local keys are a fixed share of the entities (those
  // homed on this node), and negatives drawn only from them would be a biased sample.
  const localNegatives = s.localNegatives && lapse;
  const isLocalEntity = (e: number) => ps.isLocal(tE, e);

  // Lapse: the ahead keys of several triples go out in one localize call (one message to the
  // server thread, one per home node), B triples at a time; a single-key call costs a round
  // trip of latency and a message per triple. Deferred triples' missing keys join the batch.
  const B = Math.max(1, Math.min(LOCALIZE_BATCH_MAX, Math.floor(K / 8)));
  const locBuf = new Uint32Array((B + 1) * SL);
  let locN = 0, locTriples = 0;
  const flushLocalize = () => {
    if (locN === 0) return;
    const p = ps.localize(tE, locBuf.subarray(0, locN)); // copies what it sends
    if (p) p.catch(() => {});
    locN = 0;
    locTriples = 0;
  };
  const queueKey = (key: number) => {
    if (locN === locBuf.length) flushLocalize();
    locBuf[locN++] = key;
  };

  const ahead = (t: number) => {
    // Triple t enters the ring: presample its negatives, then localize or prefetch its keys.
    const at = t % R;
    if (pool !== null && ++presampled % s.poolRefresh === 0) {
      const next = pool.refresh(poolRng, localNegatives ? isLocalEntity : undefined);
      if (lapse) localizePool(next);
    }
    presample(ring, at, train, t, s.negatives, data.entities, rng, pool);
    if (K === 0) return;
    const keys = ring.keys.subarray(at * SL, at * SL + SL);
    if (lapse) {
      for (let sl = 0; sl < aheadSlots; sl++) if (hot[keys[sl]] === 0) queueKey(keys[sl]);
      if (++locTriples >= B) flushLocalize();
    } else if (prefetch) {
      const no = slotNo[at] = ++presampleNo;
      for (let sl = 0; sl < SL; sl++) ringE!.add(at * SL + sl, no);
      ringR!.add(at, no);
      const pe = ps.pull(tE, keys, ring.ent!.subarray(at * SL * ED, (at + 1) * SL * ED));
      const pr = ps.pull(
        tR,
        ring.relKeys.subarray(at, at + 1),
        ring.rel!.subarray(at * RKD, (at + 1) * RKD),
      );
      ring.pending[at] = pe && pr ? Promise.all([pe, pr]).then(() => {}) : (pe ?? pr);
    }
  };

  // Lapse with the ahead directive: a triple whose entities are not all local when its turn
  // comes waits in the queue (its missing keys localized) and is trained K triples later; only
  // after DEFER_TRIES waits, or with the queue full, does it take remote round trips.
  const deferOn = lapse && K > 0;
  const deferSteps = Math.max(8, K);
  const dq = new DeferQueue(deferOn ? DEFER_MAX : 1, SL);
  let deferred = 0, remoteTriples = 0;
  // Lapse: triples still remote after their deferrals (or needing hot entities held elsewhere)
  // train in batches whose values are pulled while the worker goes on (see RemoteBatches).
  const remote = new RemoteBatches(
    ps,
    tE,
    tR,
    step,
    deferOn ? data.entities : 0,
    deferOn ? data.relations : 0,
    Math.max(1, Math.min(REMOTE_BATCH_MAX, Math.floor(maxKeys / SL))),
    deferSteps,
  );
  const addRemote = async (p: Promise<number>) => {
    lossSum += await p;
  };

  /** Redraws the negatives of `keys` that are not local (model.local_negatives). */
  const redrawNegatives = (keys: Uint32Array) => {
    for (let sl = 2; sl < SL; sl++) {
      if (ps.isLocal(tE, keys[sl])) continue;
      let tries = 0;
      for (; tries < LOCAL_NEGATIVE_TRIES; tries++) {
        const e = pool !== null ? pool.draw(rng) : rng.nextInt(data.entities);
        if (ps.isLocal(tE, e)) {
          keys[sl] = e;
          break;
        }
      }
      if (tries < LOCAL_NEGATIVE_TRIES) redrawn++;
      else redrawMissed++;
    }
  };

  /**
   * Trains `keys` now if all are local; else defers it (queueing a localize of the missing
   * keys), or, after DEFER_TRIES deferrals or with the queue full, adds it to the remote batch.
   * Returns a Promise only when the remote batch is full and trains (awaited once per batch).
   */
  const trainOrDefer = (
    keys: Uint32Array,
    rel: number,
    tries: number,
    t: number,
  ): Promise<void> | undefined => {
    let missing = 0, hotMissing = 0;
    for (let sl = 0; sl < SL; sl++) {
      if (!ps.isLocal(tE, keys[sl])) {
        if (hot[keys[sl]] === 0) missing++;
        else hotMissing++;
      }
    }
    if (missing === 0 && hotMissing === 0 && ps.isLocal(tR, rel)) return trainTriple(keys, rel);
    if (
      missing > 0 && t !== Infinity && tries < DEFER_TRIES &&
      dq.add(keys, rel, t + deferSteps, tries + 1)
    ) {
      for (let sl = 0; sl < SL; sl++) {
        if (hot[keys[sl]] === 0 && !ps.isLocal(tE, keys[sl])) queueKey(keys[sl]);
      }
      deferred++;
      return undefined;
    }
    const p = remote.add(keys, rel, t, params);
    return p ? addRemote(p) : undefined;
  };

  let lossSum = 0;
  /**
   * Trains one triple: synchronous (undefined) when every key is local, else a Promise that
   * settles once the remote values have been read (the updates are pushed without waiting).
   */
  const trainTriple = (keys: Uint32Array, rel: number): Promise<void> | undefined => {
    relKey[0] = rel;
    const pr = ps.pull(tR, relKey, step.rel);
    const pe = ps.pull(tE, keys, step.ent);
    if (pr === undefined && pe === undefined) {
      lossSum += step.run(params);
      ps.push(tR, relKey, step.relDelta);
      ps.push(tE, keys, step.entDelta);
      return undefined;
    }
    remoteTriples++;
    return (async () => {
      if (pr) await pr;
      if (pe) await pe;
      lossSum += step.run(params);
      // Not awaited: push reads its arguments during the call, so they are free again at once.
      const qr = ps.push(tR, relKey, step.relDelta);
      const qe = ps.push(tE, keys, step.entDelta);
      if (qr) qr.catch(() => {});
      if (qe) qe.catch(() => {});
    })();
  };

  /** Trains (or defers again) the deferred triples due at step `t` (all with `t` Infinity). */
  const trainDue = async (t: number) => {
    while (dq.size > 0 && dq.due[dq.head] <= t) {
      const h = dq.head, keys = dq.headKeys();
      if (localNegatives) redrawNegatives(keys);
      // The entry is copied (deferred again or batched) or trained before it is shifted out;
      // shifting first would let a deferral reuse its slot.
      const p = trainOrDefer(keys, dq.rel[h], dq.tries[h], t);
      dq.shift();
      if (p) await p;
    }
  };

  const evaluate = async (epoch: number, final: boolean): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    const splits: ("valid" | "test")[] = [];
    if (s.evalEvery > 0 && (epoch + 1) % s.evalEvery === 0 && !(final && s.evalSplit === "test")) {
      splits.push(s.evalSplit);
    }
    if (final) splits.push("test");
    for (const split of splits) {
      const r = await evaluatePs(ps, tE, tR, model, data, split, me, N, maxKeys);
      out[`${split}_rr`] = r.rr;
      out[`${split}_h1`] = r.h1;
      out[`${split}_h3`] = r.h3;
      out[`${split}_h10`] = r.h10;
      out[`${split}_n`] = r.n;
    }
    return out;
  };

  if (s.epochs === 0) {
    const e0 = performance.now();
    const m = await evaluate(0, true);
    ctx.epochEnd(0, { ...m, eval_s_max: (performance.now() - e0) / 1000 });
    await ps.barrier();
    return;
  }

  const sec = (x: number) => (x / 1000).toFixed(2) + "s";
  let sinceProgress = 0, sinceClock = resumed.sinceClock;
  for (let epoch = resumed.firstEpoch; epoch < s.epochs; epoch++) {
    const c0 = performance.now();
    shuffleEpoch(epoch);
    rng.reseed(hash32(ctx.seed ^ 0x6e67, epoch, me));
    lossSum = 0;
    for (let t = 0; t < Math.min(K, nt); t++) ahead(t);
    for (let t = 0; t < nt; t++) {
      if (t + K < nt) ahead(t + K);
      else if (t + K === nt) flushLocalize();
      const at = t % R;
      const keys = ring.keys.subarray(at * SL, at * SL + SL);
      const rel = ring.relKeys[at];
      if (localNegatives) redrawNegatives(keys);
      if (prefetch) {
        // Classic with prefetch: values of local keys fresh, the rest as pulled K steps ago
        // plus this worker's updates since (patched into the copies as it pushed them).
        const pending = ring.pending[at];
        if (pending) await pending;
        ring.pending[at] = undefined;
        const ent = step.ent, rv = ring.ent!, base = at * SL * ED;
        for (let sl = 0; sl < SL; sl++) {
          if (!ps.pullIfLocal(tE, keys[sl], ent, sl * ED)) {
            ent.set(rv.subarray(base + sl * ED, base + (sl + 1) * ED), sl * ED);
          }
        }
        relKey[0] = rel;
        if (!ps.pullIfLocal(tR, rel, step.rel, 0)) {
          step.rel.set(ring.rel!.subarray(at * RKD, (at + 1) * RKD));
        }
        lossSum += step.run(params);
        const cur = slotNo[at];
        for (let sl = 0; sl < SL; sl++) {
          if (ps.isLocal(tE, keys[sl])) continue;
          patched += ringE!.patch(keys[sl], cur, step.entDelta, sl * ED, rv, ED);
        }
        if (!ps.isLocal(tR, rel)) {
          patched += ringR!.patch(rel, cur, step.relDelta, 0, ring.rel!, RKD);
        }
        const qr = ps.push(tR, relKey, step.relDelta);
        const qe = ps.push(tE, keys, step.entDelta);
        if (qr) qr.catch(() => {});
        if (qe) qe.catch(() => {});
      } else {
        const p = deferOn ? trainOrDefer(keys, rel, 0, t) : trainTriple(keys, rel);
        if (p) await p;
      }
      if (deferOn) {
        if (dq.size > 0) await trainDue(t);
        const p = remote.tick(t, params);
        if (p) await addRemote(p);
      }
      if (++sinceProgress >= PROGRESS_EVERY) {
        ctx.progress(sinceProgress);
        sinceProgress = 0;
      }
      if (++sinceClock >= s.clockEvery) {
        sinceClock = 0;
        const c = ps.clock();
        if (c) await c;
      }
    }
    if (deferOn) {
      // The epoch's last deferred triples: their keys are on the way. Waiting for them (one
      // round trip) keeps them out of the remote batches, which would otherwise take all the
      // deferred triples at once (wn_body, 2 nodes: 60% of the triples, test MRR 0.72 vs 0.85).
      flushLocalize();
      await ps.wait();
      await trainDue(Infinity);
      lossSum += await remote.drain(params);
    }
    if (sinceProgress > 0) {
      ctx.progress(sinceProgress);
      sinceProgress = 0;
    }
    const c1 = performance.now();
    time.train += c1 - c0;
    await ps.wait();
    await ps.barrier();
    const e0 = performance.now();
    time.barrier += e0 - c1;
    const m = await evaluate(epoch, epoch === s.epochs - 1);
    const e1 = performance.now();
    time.eval += e1 - e0;
    ctx.epochEnd(epoch, {
      loss_sum: lossSum,
      train_n: nt,
      ...m,
      eval_s_max: (e1 - e0) / 1000,
    });
    await ps.barrier();
    time.barrier += performance.now() - e1;
    await ctx.checkpoint?.(epoch, {
      ...kgeState(ctx, epoch + 1, poolRng, pool),
      since_clock: sinceClock,
      presampled,
    });
  }
  if (s.out !== undefined && me === 0) {
    const o0 = performance.now();
    const chunk = Math.max(1, Math.min(4096, maxKeys));
    const reader = (t: number) => (keys: Uint32Array, out: Float32Array) => ps.pull(t, keys, out);
    await writeKgeEmbeddings(s.out, {
      algorithm: s.algorithm,
      dim: D,
      entities: data.entities,
      relations: data.relations,
      relFloats: model.relFloats,
      entityNames: data.entityNames,
      relationNames: data.relationNames,
      readEntities: reader(tE),
      readRelations: reader(tR),
      chunk,
    });
    ctx.log(`kge: embeddings written to ${s.out} in ${sec(performance.now() - o0)}`);
  }
  // Nobody leaves (and ends the job) before worker 0 has read the model.
  if (s.out !== undefined) await ps.barrier();
  ctx.log(
    `kge worker ${me}/${N}: train ${sec(time.train)}, barriers ${sec(time.barrier)}, ` +
      `eval ${sec(time.eval)}` +
      (localNegatives ? `, negatives redrawn local ${redrawn}, left remote ${redrawMissed}` : "") +
      (hotHere + hotElsewhere > 0
        ? `, hot entities here ${hotHere} elsewhere ${hotElsewhere}`
        : "") +
      (deferOn
        ? `, triples deferred ${deferred}, trained remotely ${remote.trained} in ` +
          `${remote.batches} batches (waited ${sec(remote.waitMs)}, at most ` +
          `${sec(remote.waitMaxMs)}), alone ${remoteTriples}`
        : "") +
      (prefetch ? `, own updates added to prefetched copies ${patched}` : ""),
  );
}

const schema: TaskSchema = {
  data: {
    type: "object",
    doc: "The graph: exactly one of `dir` (triple files) and `generate` (synthetic).",
    required: true,
    fields: {
      dir: {
        type: "string",
        path: true,
        doc: "Directory with train/valid/test triple files (see data/README.md).",
      },
      format: {
        type: "string",
        enum: ["names", "ids"],
        doc: "names (.txt/.tsv head TAB relation TAB tail) or ids (.del); default detected.",
      },
      generate: {
        type: "object",
        doc: "Synthetic Zipf graph; each worker generates its part (see data/README.md).",
        fields: {
          entities: { type: "integer", min: 2, required: true, doc: "Entities." },
          relations: { type: "integer", min: 1, required: true, doc: "Relations." },
          triples: { type: "integer", min: 1, required: true, doc: "Training triples." },
          zipf_entities: {
            type: "number",
            min: 0,
            default: 1,
            doc: "Zipf exponent of entity frequencies.",
          },
          zipf_relations: {
            type: "number",
            min: 0,
            default: 1,
            doc: "Zipf exponent of relation frequencies.",
          },
          valid: { type: "integer", min: 0, default: 1000, doc: "Validation triples." },
          test: { type: "integer", min: 0, default: 1000, doc: "Test triples." },
          seed: { type: "integer", default: 1, doc: "Seed of the graph (not the job seed)." },
        },
      },
    },
  },
  model: {
    type: "object",
    doc: "The embedding model, training and evaluation.",
    default: {},
    fields: {
      algorithm: {
        type: "string",
        enum: ["complex", "distmult", "rescal"],
        default: KGE_DEFAULTS.algorithm,
        doc: "Scoring model.",
      },
      dim: {
        type: "integer",
        min: 1,
        max: 4096,
        default: KGE_DEFAULTS.dim,
        doc: "Floats of an entity embedding (ComplEx: even, dim/2 complex numbers).",
      },
      negatives: {
        type: "integer",
        min: 0,
        max: 1024,
        default: KGE_DEFAULTS.negatives,
        doc: "Negatives per positive and side (corrupted subjects, and as many objects).",
      },
      epochs: { type: "integer", min: 0, default: KGE_DEFAULTS.epochs, doc: "Epochs." },
      lr: { type: "number", min: 0, default: KGE_DEFAULTS.lr, doc: "AdaGrad learning rate." },
      lambda: { type: "number", min: 0, default: KGE_DEFAULTS.lambda, doc: "L2 regularisation." },
      init_scale: {
        type: "number",
        min: 0,
        default: KGE_DEFAULTS.init_scale,
        doc: "Values start uniform in [-init_scale, init_scale].",
      },
      adagrad_eps: {
        type: "number",
        min: 0,
        default: KGE_DEFAULTS.adagrad_eps,
        doc: "Added to the AdaGrad accumulator under the square root (its start value).",
      },
      out: {
        type: "string",
        path: true,
        doc: "Directory for the trained embeddings (lapse train --out DIR; see README kge).",
      },
      clock_every: {
        type: "integer",
        min: 1,
        default: KGE_DEFAULTS.clock_every,
        doc: "Triples between ps.clock() calls (bounded staleness).",
      },
      eval_every: {
        type: "integer",
        min: 0,
        default: KGE_DEFAULTS.eval_every,
        doc: "Evaluate eval_split every this many epochs (0: only test at the end).",
      },
      eval_max_triples: {
        type: "integer",
        min: 0,
        default: KGE_DEFAULTS.eval_max_triples,
        doc: "Evaluate at most this many triples (evenly spaced sample; 0: all).",
      },
      negative_pool: {
        type: "integer",
        min: 0,
        max: NEGATIVE_POOL_MAX,
        default: KGE_DEFAULTS.negative_pool,
        doc: "Entities in a worker's pool of negatives, localized ahead (0: draw from all).",
      },
      pool_refresh: {
        type: "integer",
        min: 1,
        default: KGE_DEFAULTS.pool_refresh,
        doc: "Triples between two refreshes of the negative pool.",
      },
      hot_entities: {
        type: "integer",
        min: 0,
        default: KGE_DEFAULTS.hot_entities,
        doc:
          "Lapse: the H most frequent entities are placed once (at their main user), never moved.",
      },
      local_negatives: {
        type: "boolean",
        default: KGE_DEFAULTS.local_negatives,
        doc:
          "Lapse: redraw a negative that is not local when its triple is trained (up to 8 draws).",
      },
      eval_split: {
        type: "string",
        enum: ["valid", "test"],
        default: KGE_DEFAULTS.eval_split,
        doc: "Split of the per-epoch evaluation (test is always evaluated at the end).",
      },
    },
  },
  localize: {
    tables: ["entities", "relations"],
    when: ["start", "ahead"],
    keys: ["partition", "next"],
  },
  defaultLocalize: DEFAULT_LOCALIZE,
};

/** The tables: entities and relations, each value followed by its AdaGrad accumulator. */
function tables(config: JobConfig): TableSpec[] {
  const s = kgeSettings(config);
  const { entities, relations } = graphSize(s);
  const model = makeModel(s.algorithm, s.dim);
  // Embeddings uniform in [-init_scale, init_scale], the AdaGrad accumulators after them zero.
  const init = (floats: number) => ({ kind: "uniform" as const, scale: s.initScale, floats });
  return [
    { name: "entities", keys: entities, dim: 2 * s.dim, init: init(s.dim) },
    { name: "relations", keys: relations, dim: 2 * model.relFloats, init: init(model.relFloats) },
  ];
}

function summarize(sums: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  if (sums.train_n > 0) out.train_loss = sums.loss_sum / sums.train_n;
  for (const split of ["valid", "test"]) {
    const n = sums[`${split}_n`];
    if (!(n > 0)) continue;
    out[`${split}_mrr`] = sums[`${split}_rr`] / n;
    out[`${split}_hits1`] = sums[`${split}_h1`] / n;
    out[`${split}_hits3`] = sums[`${split}_h3`] / n;
    out[`${split}_hits10`] = sums[`${split}_h10`] / n;
  }
  return out;
}

/** The kge task. */
export const task: TaskDefinition = {
  name: "kge",
  schema,
  tables,
  run,
  summarize,
  checkpoints: true,
};
