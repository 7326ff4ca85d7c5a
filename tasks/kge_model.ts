/**
 * The scoring models of the kge task (ComplEx, DistMult, RESCAL) and the training step shared
 * by the parameter-server loop (`tasks/kge.ts`) and the plain baseline (`tasks/kge_plain.ts`).
 *
 * All three scores are trilinear in (subject, relation, object), so for a fixed subject and
 * relation the score of any object `x` is a dot product `<q, x>` with a "tail query"
 * `q = tailQuery(s, r)`, and likewise `<headQuery(r, o), x>` for any subject `x`. The training
 * step and the evaluation are written on these two queries plus the relation gradient
 * `relGrad(a, b) = d score(a, r, b) / d r` (bilinear in a, b), which is all a model provides:
 *
 * - ComplEx: an entity is `dim/2` complex numbers (real parts, then imaginary parts), the
 *   relation too; `score = Re(sum_k s_k r_k conj(o_k))`.
 * - DistMult: `score = sum_k s_k r_k o_k` (ComplEx with real embeddings).
 * - RESCAL: the relation is a `dim x dim` matrix `R` (row-major); `score = s^T R o`.
 *
 * A key's value is its embedding followed by its AdaGrad accumulator (same length), so one
 * pull or push moves both: entities have `2 * dim` floats, relations `2 * relFloats`.
 *
 * @module
 */

/** The model names of `model.algorithm`. */
export type KgeAlgorithm = "complex" | "distmult" | "rescal";

/** Vectors the model functions read and write. */
type Vec = Float32Array | Float64Array;

/** What a model provides (see the module doc). */
export interface KgeModel {
  readonly algorithm: KgeAlgorithm;
  /** Floats of an entity embedding. */
  readonly dim: number;
  /** Floats of a relation embedding (dim, or dim * dim for RESCAL). */
  readonly relFloats: number;
  /** `out[oo..oo+dim) = q` with `score(s, r, x) = <q, x>`. */
  tailQuery(s: Vec, so: number, r: Vec, ro: number, out: Float64Array, oo: number): void;
  /** `out[oo..oo+dim) = q` with `score(x, r, o) = <q, x>`. */
  headQuery(r: Vec, ro: number, o: Vec, oo_: number, out: Float64Array, oo: number): void;
  /** `out[0..relFloats) += coef * d score(a, r, b) / d r`. */
  relGrad(a: Vec, ao: number, b: Vec, bo: number, coef: number, out: Float64Array): void;
}

class ComplEx implements KgeModel {
  readonly algorithm = "complex" as const;
  readonly relFloats: number;
  private readonly h: number;
  constructor(readonly dim: number) {
    this.relFloats = dim;
    this.h = dim >> 1;
  }
  tailQuery(s: Vec, so: number, r: Vec, ro: number, out: Float64Array, oo: number): void {
    const h = this.h;
    for (let k = 0; k < h; k++) {
      const sr = s[so + k], si = s[so + h + k], rr = r[ro + k], ri = r[ro + h + k];
      out[oo + k] = sr * rr - si * ri;
      out[oo + h + k] = sr * ri + si * rr;
    }
  }
  headQuery(r: Vec, ro: number, o: Vec, oo_: number, out: Float64Array, oo: number): void {
    const h = this.h;
    for (let k = 0; k < h; k++) {
      const rr = r[ro + k], ri = r[ro + h + k], or = o[oo_ + k], oi = o[oo_ + h + k];
      out[oo + k] = rr * or + ri * oi;
      out[oo + h + k] = rr * oi - ri * or;
    }
  }
  relGrad(a: Vec, ao: number, b: Vec, bo: number, coef: number, out: Float64Array): void {
    const h = this.h;
    for (let k = 0; k < h; k++) {
      const ar = a[ao + k], ai = a[ao + h + k], br = b[bo + k], bi = b[bo + h + k];
      out[k] += coef * (ar * br + ai * bi);
      out[h + k] += coef * (ar * bi - ai * br);
    }
  }
}

class DistMult implements KgeModel {
  readonly algorithm = "distmult" as const;
  readonly relFloats: number;
  constructor(readonly dim: number) {
    this.relFloats = dim;
  }
  tailQuery(s: Vec, so: number, r: Vec, ro: number, out: Float64Array, oo: number): void {
    for (let k = 0; k < this.dim; k++) out[oo + k] = s[so + k] * r[ro + k];
  }
  headQuery(r: Vec, ro: number, o: Vec, oo_: number, out: Float64Array, oo: number): void {
    for (let k = 0; k < this.dim; k++) out[oo + k] = r[ro + k] * o[oo_ + k];
  }
  relGrad(a: Vec, ao: number, b: Vec, bo: number, coef: number, out: Float64Array): void {
    for (let k = 0; k < this.dim; k++) out[k] += coef * a[ao + k] * b[bo + k];
  }
}

class Rescal implements KgeModel {
  readonly algorithm = "rescal" as const;
  readonly relFloats: number;
  constructor(readonly dim: number) {
    this.relFloats = dim * dim;
  }
  tailQuery(s: Vec, so: number, r: Vec, ro: number, out: Float64Array, oo: number): void {
    const d = this.dim;
    for (let j = 0; j < d; j++) out[oo + j] = 0;
    for (let i = 0; i < d; i++) {
      const si = s[so + i], row = ro + i * d;
      for (let j = 0; j < d; j++) out[oo + j] += si * r[row + j];
    }
  }
  headQuery(r: Vec, ro: number, o: Vec, oo_: number, out: Float64Array, oo: number): void {
    const d = this.dim;
    for (let i = 0; i < d; i++) {
      const row = ro + i * d;
      let x = 0;
      for (let j = 0; j < d; j++) x += r[row + j] * o[oo_ + j];
      out[oo + i] = x;
    }
  }
  relGrad(a: Vec, ao: number, b: Vec, bo: number, coef: number, out: Float64Array): void {
    const d = this.dim;
    for (let i = 0; i < d; i++) {
      const ai = coef * a[ao + i], row = i * d;
      if (ai === 0) continue;
      for (let j = 0; j < d; j++) out[row + j] += ai * b[bo + j];
    }
  }
}

/** The model of `algorithm` with entity dimension `dim` (ComplEx needs an even `dim`). */
export function makeModel(algorithm: KgeAlgorithm, dim: number): KgeModel {
  switch (algorithm) {
    case "complex":
      if (dim % 2 !== 0) {
        throw new RangeError(
          `kge: model.dim ${dim} does not fit ComplEx: it needs an even dim (real and imaginary halves)`,
        );
      }
      return new ComplEx(dim);
    case "distmult":
      return new DistMult(dim);
    case "rescal":
      return new Rescal(dim);
    default:
      throw new RangeError(
        `kge: unknown model.algorithm "${algorithm}": expected complex, distmult or rescal`,
      );
  }
}

/**
 * `<a[ao..ao+n), b[bo..bo+n)>` in doubles, with four partial sums (independent chains run in
 * parallel in the CPU; the result is a deterministic function of the inputs).
 */
export function dot(a: Vec, ao: number, b: Vec, bo: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += a[ao + k] * b[bo + k];
    s1 += a[ao + k + 1] * b[bo + k + 1];
    s2 += a[ao + k + 2] * b[bo + k + 2];
    s3 += a[ao + k + 3] * b[bo + k + 3];
  }
  for (; k < n; k++) s0 += a[ao + k] * b[bo + k];
  return (s0 + s1) + (s2 + s3);
}

/** log(1 + e^x) without overflow. */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** 1 / (1 + e^-x). */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Hyperparameters of one step. */
export interface StepParams {
  /** Negatives per side: `negatives` corrupted subjects and `negatives` corrupted objects. */
  negatives: number;
  lr: number;
  /** L2 regularisation: `lambda * theta` is added to the gradient of every touched value. */
  lambda: number;
  /** Added to every stored AdaGrad accumulator (see {@linkcode TrainStep}). */
  accOffset: number;
}

/**
 * One training step: a positive triple and its negatives, on copies of the values of the keys
 * involved (slot 0 = subject, 1 = object, then `negatives` corrupted subjects, then
 * `negatives` corrupted objects; each slot `2 * dim` floats: embedding, accumulator).
 *
 * Loss: logistic, `softplus(-score)` for the positive and `softplus(score)` for each negative
 * (each of weight 1), plus `lambda/2 |theta|^2` of every touched embedding. All gradients are
 * taken at the values as they were read, then each key gets one AdaGrad update:
 * `acc += g^2; theta -= lr * g / sqrt(acc + accOffset)`. The changes (new minus old, of the
 * embedding and of the accumulator) are written to `entDelta` / `relDelta` in the same layout
 * as the values; the caller adds them (a push) or not.
 *
 * Allocates nothing after construction.
 */
export class TrainStep {
  readonly slots: number;
  /** Entity values of the slots (`slots * 2 * dim`). */
  readonly ent: Float32Array;
  /** Relation value (`2 * relFloats`). */
  readonly rel: Float32Array;
  readonly entDelta: Float32Array;
  readonly relDelta: Float32Array;
  private readonly gradE: Float64Array;
  private readonly gradR: Float64Array;
  private readonly qt: Float64Array;
  private readonly qh: Float64Array;
  private readonly u: Float64Array;
  private readonly v: Float64Array;
  private readonly w: Float64Array;
  private readonly coef: Float64Array;

  constructor(readonly model: KgeModel, readonly negatives: number) {
    const d = model.dim;
    this.slots = 2 + 2 * negatives;
    this.ent = new Float32Array(this.slots * 2 * d);
    this.entDelta = new Float32Array(this.slots * 2 * d);
    this.rel = new Float32Array(2 * model.relFloats);
    this.relDelta = new Float32Array(2 * model.relFloats);
    this.gradE = new Float64Array(this.slots * d);
    this.gradR = new Float64Array(model.relFloats);
    this.qt = new Float64Array(d);
    this.qh = new Float64Array(d);
    this.u = new Float64Array(d);
    this.v = new Float64Array(d);
    this.w = new Float64Array(d);
    this.coef = new Float64Array(this.slots);
  }

  /**
   * The loss of the values in `ent`/`rel` (without the regulariser) and the gradient of loss
   * plus regulariser in `gradE` / `gradR` (exposed for tests through {@linkcode gradients}).
   */
  private compute(lambda: number): number {
    const m = this.model, d = m.dim, ed = 2 * d, n = this.negatives;
    const ent = this.ent, rel = this.rel, qt = this.qt, qh = this.qh;
    const u = this.u, v = this.v, w = this.w, coef = this.coef, gradE = this.gradE;
    m.tailQuery(ent, 0, rel, 0, qt, 0);
    m.headQuery(rel, 0, ent, ed, qh, 0);
    const pos = dot(qt, 0, ent, ed, d);
    let loss = softplus(-pos);
    const g0 = -sigmoid(-pos);
    coef[0] = coef[1] = g0;
    // u = g0 o + sum gO_j o'_j (tail side); v = sum gS_j s'_j (head-side negatives).
    for (let k = 0; k < d; k++) {
      u[k] = g0 * ent[ed + k];
      v[k] = 0;
    }
    for (let j = 0; j < n; j++) {
      const sl = 2 + j, off = sl * ed;
      const sc = dot(qh, 0, ent, off, d);
      loss += softplus(sc);
      const g = sigmoid(sc);
      coef[sl] = g;
      for (let k = 0; k < d; k++) v[k] += g * ent[off + k];
    }
    for (let j = 0; j < n; j++) {
      const sl = 2 + n + j, off = sl * ed;
      const sc = dot(qt, 0, ent, off, d);
      loss += softplus(sc);
      const g = sigmoid(sc);
      coef[sl] = g;
      for (let k = 0; k < d; k++) u[k] += g * ent[off + k];
    }
    // d/ds = headQuery(r, u); d/do = tailQuery(g0 s + v, r); negatives: g * query.
    m.headQuery(rel, 0, u, 0, gradE, 0);
    for (let k = 0; k < d; k++) w[k] = g0 * ent[k] + v[k];
    m.tailQuery(w, 0, rel, 0, gradE, d);
    for (let j = 0; j < n; j++) {
      const gs = coef[2 + j], go = coef[2 + n + j];
      const os = (2 + j) * d, oo = (2 + n + j) * d;
      for (let k = 0; k < d; k++) {
        gradE[os + k] = gs * qh[k];
        gradE[oo + k] = go * qt[k];
      }
    }
    const gradR = this.gradR;
    gradR.fill(0);
    m.relGrad(ent, 0, u, 0, 1, gradR);
    m.relGrad(v, 0, ent, ed, 1, gradR);
    if (lambda > 0) {
      for (let sl = 0; sl < this.slots; sl++) {
        const go = sl * d, vo = sl * ed;
        for (let k = 0; k < d; k++) gradE[go + k] += lambda * ent[vo + k];
      }
      const rf = m.relFloats;
      for (let k = 0; k < rf; k++) gradR[k] += lambda * rel[k];
    }
    return loss;
  }

  /** The loss and gradients of the current values (tests: finite differences). */
  gradients(lambda: number): { loss: number; gradE: Float64Array; gradR: Float64Array } {
    const loss = this.compute(lambda);
    return { loss, gradE: this.gradE, gradR: this.gradR };
  }

  /** Runs the step on `ent`/`rel`; fills the deltas; returns the loss (without regulariser). */
  run(p: StepParams): number {
    const loss = this.compute(p.lambda);
    const d = this.model.dim, ed = 2 * d, lr = p.lr, off = p.accOffset;
    const ent = this.ent, gradE = this.gradE, dE = this.entDelta;
    for (let sl = 0; sl < this.slots; sl++) {
      const vo = sl * ed, go = sl * d;
      for (let k = 0; k < d; k++) {
        const g = gradE[go + k];
        const g2 = g * g;
        dE[vo + k] = (-lr * g) / Math.sqrt(ent[vo + d + k] + g2 + off);
        dE[vo + d + k] = g2;
      }
    }
    const rf = this.model.relFloats, rel = this.rel, gradR = this.gradR, dR = this.relDelta;
    for (let k = 0; k < rf; k++) {
      const g = gradR[k];
      const g2 = g * g;
      dR[k] = (-lr * g) / Math.sqrt(rel[rf + k] + g2 + off);
      dR[rf + k] = g2;
    }
    return loss;
  }
}
