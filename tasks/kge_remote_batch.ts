/**
 * Remote triples of task `kge` (lapse) trained in batches whose values are pulled while the
 * worker trains other triples: no round trip is waited for one triple.
 *
 * Why: a triple whose entities are not local (hot entities that every worker wants, which the
 * worker leaves where they are, or keys still away after the triple's deferrals) used to be
 * trained alone with an awaited pull, a round trip through several server threads: 1.5-4 ms on
 * the loaded 2-core machine, against ~25 us of compute. Generated 300k triples, 4 nodes: the
 * slowest worker waited 8.5 of its 11.3 s for 5.8k such round trips.
 *
 * Here the triples collect in a batch. When it is full, or `maxAge` steps after its first
 * triple, one pull of the batch's distinct keys is issued (one message per node) and the worker
 * goes on; the batch before it (whose pull has had that time to arrive) is trained then, or
 * `maxAge` steps after its pull at the latest: the values of the keys that are local by now
 * are read fresh, the triples train one after the other on these copies (each update is added
 * to the copy too, so later triples of the batch see it, as with synchronous operations), and
 * the summed update of every key is pushed once. The push goes out before the next batch's pull, on the same route (hot keys do not
 * move), so a batch sees the worker's own earlier updates; the copies miss only other
 * workers' updates made while the pull was in flight (the staleness of the classic prefetch).
 *
 * @module
 */
import type { ParameterServer } from "../mod.ts";
import type { StepParams, TrainStep } from "./kge_model.ts";

/** Triples a worker trains remotely in one batch (at most). */
export const REMOTE_BATCH_MAX = 512;

/** One batch: its triples, the distinct keys, their copies and summed updates. */
class Batch {
  size = 0;
  /** The step of its first triple, then the step its pull was issued at. */
  step = 0;
  nE = 0;
  nR = 0;
  pending: Promise<void> | undefined = undefined;
  readonly keys: Uint32Array;
  readonly rels: Uint32Array;
  /** Per slot of a triple: the row of its key in the copies. */
  readonly slotRow: Int32Array;
  readonly relRow: Int32Array;
  readonly uniqE: Uint32Array;
  readonly uniqR: Uint32Array;
  readonly valsE: Float32Array;
  readonly valsR: Float32Array;
  readonly sumE: Float32Array;
  readonly sumR: Float32Array;

  /** Room for `capacity` triples of `slots` entities, at most `entities` / `relations` distinct. */
  constructor(
    capacity: number,
    slots: number,
    entities: number,
    relations: number,
    ed: number,
    rd: number,
  ) {
    const ne = capacity * slots, ue = Math.min(ne, entities), ur = Math.min(capacity, relations);
    this.keys = new Uint32Array(ne);
    this.rels = new Uint32Array(capacity);
    this.slotRow = new Int32Array(ne);
    this.relRow = new Int32Array(capacity);
    this.uniqE = new Uint32Array(ue);
    this.uniqR = new Uint32Array(ur);
    this.valsE = new Float32Array(ue * ed);
    this.valsR = new Float32Array(ur * rd);
    this.sumE = new Float32Array(ue * ed);
    this.sumR = new Float32Array(ur * rd);
  }
}

/** Two batches: one filling, one whose pull is in flight. */
export class RemoteBatches {
  /** Triples trained remotely so far, and the batches they went in. */
  trained = 0;
  batches = 0;
  /** Time spent waiting for a batch's pull (ms), and the longest such wait. */
  waitMs = 0;
  waitMaxMs = 0;
  readonly #capacity: number;
  readonly #slots: number;
  readonly #ed: number;
  readonly #rd: number;
  /** Per entity / relation: its row in the batch being issued, or -1 (reset after each). */
  readonly #rowE: Int32Array;
  readonly #rowR: Int32Array;
  #filling: Batch;
  #inflight: Batch;

  /**
   * Batches of at most `capacity` triples of `step.slots` entities each, for tables of
   * `entities` and `relations` keys; a batch waits at most `maxAge` steps to fill, and as long
   * in flight (see {@linkcode RemoteBatches.tick}).
   */
  constructor(
    private readonly ps: ParameterServer,
    private readonly tE: number,
    private readonly tR: number,
    private readonly step: TrainStep,
    entities: number,
    relations: number,
    capacity: number,
    readonly maxAge: number = Infinity,
  ) {
    if (!(capacity >= 1)) {
      throw new RangeError(`RemoteBatches: capacity must be >= 1, got ${capacity}`);
    }
    const sl = this.#slots = step.slots;
    this.#capacity = capacity;
    this.#ed = step.ent.length / sl;
    this.#rd = step.rel.length;
    this.#rowE = new Int32Array(entities).fill(-1);
    this.#rowR = new Int32Array(relations).fill(-1);
    // Allocated on first use: most workers of a small job never need them.
    this.#filling = this.#inflight = new Batch(0, sl, 0, 0, 0, 0);
  }

  /** Triples waiting in the batches (filling and in flight). */
  get size(): number {
    return this.#filling.size + this.#inflight.size;
  }

  /**
   * Adds a triple (its `slots` entity keys copied). When that fills the batch, its pull is
   * issued and the batch before it trained: returns a Promise then (resolving to the loss of
   * the triples trained), else `undefined`.
   */
  add(
    keys: Uint32Array,
    rel: number,
    step: number,
    params: StepParams,
  ): Promise<number> | undefined {
    let b = this.#filling;
    if (b.keys.length === 0) {
      const c = this.#capacity, sl = this.#slots, ed = this.#ed, rd = this.#rd;
      const ne = this.#rowE.length, nr = this.#rowR.length;
      b = this.#filling = new Batch(c, sl, ne, nr, ed, rd);
      this.#inflight = new Batch(c, sl, ne, nr, ed, rd);
    }
    if (b.size === 0) b.step = step;
    b.keys.set(keys, b.size * this.#slots);
    b.rels[b.size++] = rel;
    return b.size < this.#capacity ? undefined : this.#next(step, params);
  }

  /**
   * Called every step: once a batch has waited `maxAge` steps since its first triple (filling)
   * or since its pull (in flight), the one in flight is trained and the filling one issued, so
   * that copies are never older than about two `maxAge` (on a small graph a batch takes long to
   * fill: wn_body, 2 nodes, test MRR 0.67 without this). Returns a Promise when it trains.
   */
  tick(step: number, params: StepParams): Promise<number> | undefined {
    const f = this.#filling, i = this.#inflight;
    if (
      (f.size > 0 && step - f.step >= this.maxAge) ||
      (i.size > 0 && step - i.step >= this.maxAge)
    ) {
      return this.#next(step, params);
    }
    return undefined;
  }

  /** Trains the batch in flight (if any) and issues the filling one (if any). */
  #next(step: number, params: StepParams): Promise<number> | undefined {
    if (this.#inflight.size > 0) return this.#cycle(step, params);
    this.#swap(step);
    return undefined;
  }

  /** Trains every triple in the batches (the end of an epoch); resolves to their loss. */
  async drain(params: StepParams): Promise<number> {
    let loss = 0;
    if (this.#inflight.size > 0) loss += await this.#train(this.#inflight, params);
    const b = this.#filling;
    if (b.size > 0) {
      this.#issue(b);
      loss += await this.#train(b, params);
    }
    return loss;
  }

  async #cycle(step: number, params: StepParams): Promise<number> {
    const loss = await this.#train(this.#inflight, params);
    this.#swap(step);
    return loss;
  }

  /** Issues the filling batch's pull (if it has triples); it goes in flight, the empty one fills. */
  #swap(step: number): void {
    const b = this.#filling;
    if (b.size === 0) return;
    b.step = step;
    this.#issue(b);
    this.#filling = this.#inflight;
    this.#inflight = b;
  }

  /** Finds the batch's distinct keys and pulls them (the local ones are copied at once). */
  #issue(b: Batch): void {
    const n = b.size, sl = this.#slots, rowE = this.#rowE, rowR = this.#rowR;
    const keys = b.keys, uniqE = b.uniqE, uniqR = b.uniqR;
    let nE = 0, nR = 0;
    for (let i = 0; i < n * sl; i++) {
      const k = keys[i];
      let r = rowE[k];
      if (r < 0) uniqE[r = rowE[k] = nE++] = k;
      b.slotRow[i] = r;
    }
    for (let i = 0; i < n; i++) {
      const k = b.rels[i];
      let r = rowR[k];
      if (r < 0) uniqR[r = rowR[k] = nR++] = k;
      b.relRow[i] = r;
    }
    for (let i = 0; i < nE; i++) rowE[uniqE[i]] = -1;
    for (let i = 0; i < nR; i++) rowR[uniqR[i]] = -1;
    b.nE = nE;
    b.nR = nR;
    const pe = this.ps.pull(this.tE, uniqE.subarray(0, nE), b.valsE.subarray(0, nE * this.#ed));
    const pr = this.ps.pull(this.tR, uniqR.subarray(0, nR), b.valsR.subarray(0, nR * this.#rd));
    b.pending = pe && pr ? Promise.all([pe, pr]).then(() => {}) : (pe ?? pr);
    // Awaited in #train; this keeps a failure from being reported as unhandled before then.
    b.pending?.catch(() => {});
  }

  /** Waits for the batch's values, trains its triples, pushes the updates; empties it. */
  async #train(b: Batch, params: StepParams): Promise<number> {
    const n = b.size, sl = this.#slots, ed = this.#ed, rd = this.#rd, nE = b.nE, nR = b.nR;
    const step = this.step, ps = this.ps;
    try {
      if (b.pending) {
        const w0 = performance.now();
        await b.pending;
        const w = performance.now() - w0;
        this.waitMs += w;
        if (w > this.waitMaxMs) this.waitMaxMs = w;
      }
      const valsE = b.valsE, valsR = b.valsR, sumE = b.sumE, sumR = b.sumR;
      // Keys that are local now: their current values (this worker's updates since the pull).
      for (let i = 0; i < nE; i++) ps.pullIfLocal(this.tE, b.uniqE[i], valsE, i * ed);
      for (let i = 0; i < nR; i++) ps.pullIfLocal(this.tR, b.uniqR[i], valsR, i * rd);
      sumE.fill(0, 0, nE * ed);
      sumR.fill(0, 0, nR * rd);
      let loss = 0;
      const ent = step.ent, rel = step.rel, dE = step.entDelta, dR = step.relDelta;
      for (let i = 0; i < n; i++) {
        for (let s = 0; s < sl; s++) {
          const o = b.slotRow[i * sl + s] * ed;
          ent.set(valsE.subarray(o, o + ed), s * ed);
        }
        const ro = b.relRow[i] * rd;
        rel.set(valsR.subarray(ro, ro + rd));
        loss += step.run(params);
        // The update goes into the copy (later triples of the batch see it) and into the sum
        // that is pushed (a key met twice in a triple gets both deltas, as a push would add).
        for (let s = 0; s < sl; s++) {
          const o = b.slotRow[i * sl + s] * ed, d = s * ed;
          for (let f = 0; f < ed; f++) {
            const x = dE[d + f];
            valsE[o + f] += x;
            sumE[o + f] += x;
          }
        }
        for (let f = 0; f < rd; f++) {
          const x = dR[f];
          valsR[ro + f] += x;
          sumR[ro + f] += x;
        }
      }
      // Not awaited (ps.wait() at the epoch's end): push copies its input during the call.
      const qe = ps.push(this.tE, b.uniqE.subarray(0, nE), sumE.subarray(0, nE * ed));
      const qr = ps.push(this.tR, b.uniqR.subarray(0, nR), sumR.subarray(0, nR * rd));
      if (qe) qe.catch(() => {});
      if (qr) qr.catch(() => {});
      this.trained += n;
      this.batches++;
      return loss;
    } finally {
      b.size = 0;
      b.pending = undefined;
    }
  }
}
