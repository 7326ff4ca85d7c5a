/**
 * Block schedules for parameter blocking.
 *
 * DSGD (Gemulla et al., 2011) on an N x N grid of blocks (N = all workers): worker w owns row
 * block w; in subepoch s (0 .. N-1) of epoch e it works on block (w, p_e[(w + s) mod N]), where
 * p_e is a permutation of 0 .. N-1 drawn from a seed shared by all nodes. In each subepoch the
 * N workers hold pairwise different column blocks (so no two workers update the same column
 * parameters), and over an epoch every worker visits every column block exactly once.
 *
 * Plain functions of (seed, epoch, worker, subepoch): no state, so every node computes the same
 * schedule without communicating.
 *
 * @module
 */
import { hash32, Rng } from "../core/rng.ts";

/** Salt that separates the schedule's random stream from other uses of the job seed. */
const DSGD_SALT = 0x0d59d;

/** The column-block permutation p_e of epoch `epoch` (a permutation of 0 .. n-1). */
export function dsgdPermutation(seed: number, epoch: number, n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rng = new Rng(hash32(seed ^ DSGD_SALT, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** The column block of `worker` in `subepoch`, given the epoch's permutation `perm`. */
export function dsgdColBlock(perm: Int32Array, worker: number, subepoch: number): number {
  const n = perm.length;
  return perm[(worker + subepoch) % n];
}

/**
 * The whole schedule of one epoch: `schedule[s * n + w]` is the column block of worker `w` in
 * subepoch `s`.
 */
export function dsgdSchedule(seed: number, epoch: number, n: number): Int32Array {
  const perm = dsgdPermutation(seed, epoch, n);
  const out = new Int32Array(n * n);
  for (let s = 0; s < n; s++) {
    for (let w = 0; w < n; w++) out[s * n + w] = dsgdColBlock(perm, w, s);
  }
  return out;
}

/**
 * Checks that `schedule` (as from {@linkcode dsgdSchedule}) is a valid DSGD schedule: in every
 * subepoch the workers' column blocks are pairwise different, and every worker visits every
 * block exactly once. Returns an error message, or `undefined` when valid.
 */
export function checkSchedule(schedule: Int32Array, n: number): string | undefined {
  if (schedule.length !== n * n) {
    return `schedule has ${schedule.length} entries, expected ${n * n}`;
  }
  const seen = new Uint8Array(n);
  for (let s = 0; s < n; s++) {
    seen.fill(0);
    for (let w = 0; w < n; w++) {
      const b = schedule[s * n + w];
      if (b < 0 || b >= n) return `subepoch ${s}: worker ${w} has block ${b} outside 0..${n - 1}`;
      if (seen[b]) return `subepoch ${s}: column block ${b} is given to two workers`;
      seen[b] = 1;
    }
  }
  for (let w = 0; w < n; w++) {
    seen.fill(0);
    for (let s = 0; s < n; s++) {
      const b = schedule[s * n + w];
      if (seen[b]) return `worker ${w}: column block ${b} is visited twice in one epoch`;
      seen[b] = 1;
    }
  }
  return undefined;
}
