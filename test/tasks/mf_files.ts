/**
 * Rating files of other scales than the shipped generator, for the "defaults that learn" tests
 * and the before/after figures of issue 8:
 *
 * - {@linkcode writeSmallScaleMm}: a MatrixMarket file of a rank-10 matrix whose ratings have
 *   std ~0.3 (signal ~0.28, noise 0.1: the floor of the test RMSE is 0.1);
 * - {@linkcode writeStarsCsv}: a 1-5 star CSV (`user,item,rating`, ids from 1) made of a mean of
 *   3.6, user and item biases, a rank-10 interaction and noise 0.3 (the floor).
 *
 * @module
 */
import { Rng } from "../../core/rng.ts";

function gauss(rng: Rng): number {
  const u = rng.nextFloat() || 1e-12, v = rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

interface Shape {
  rows: number;
  cols: number;
  nnz: number;
  seed?: number;
}

/** Ratings `(i, j, value)` with distinct (i, j): `value(i, j, rng)` decides the value. */
function ratings(
  s: Shape,
  value: (i: number, j: number, rng: Rng) => number,
  line: (i: number, j: number, v: number) => string,
): string[] {
  const rng = new Rng(s.seed ?? 7);
  const seen = new Set<number>();
  const out: string[] = [];
  while (out.length < s.nnz) {
    const i = Math.floor(rng.nextFloat() * s.rows), j = Math.floor(rng.nextFloat() * s.cols);
    const key = i * s.cols + j;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(line(i, j, value(i, j, rng)));
  }
  return out;
}

function factors(n: number, rank: number, std: number, rng: Rng): Float64Array {
  const f = new Float64Array(n * rank);
  for (let i = 0; i < f.length; i++) f[i] = gauss(rng) * std;
  return f;
}

/** Writes the small-scale MatrixMarket file; returns the noise std (the test RMSE floor). */
export async function writeSmallScaleMm(path: string, s: Shape): Promise<number> {
  const rank = 10, noise = 0.1;
  const rng = new Rng((s.seed ?? 7) + 1);
  // <u, v> with entries of std a: variance rank * a^4 = 0.08, so ratings have std ~0.3.
  const a = Math.pow(0.08 / rank, 0.25);
  const U = factors(s.rows, rank, a, rng), V = factors(s.cols, rank, a, rng);
  const lines = ratings(s, (i, j, r) => {
    let dot = 0;
    for (let f = 0; f < rank; f++) dot += U[i * rank + f] * V[j * rank + f];
    return dot + noise * gauss(r);
  }, (i, j, v) => `${i + 1} ${j + 1} ${v.toFixed(5)}`);
  await Deno.writeTextFile(
    path,
    `%%MatrixMarket matrix coordinate real general\n% rank 10, std ~0.3, noise ${noise}\n` +
      `${s.rows} ${s.cols} ${s.nnz}\n${lines.join("\n")}\n`,
  );
  return noise;
}

/** Writes the 1-5 star CSV (with a header line); returns the noise std (the floor). */
export async function writeStarsCsv(path: string, s: Shape): Promise<number> {
  const rank = 10, noise = 0.3;
  const rng = new Rng((s.seed ?? 7) + 2);
  const a = Math.pow(0.25 / rank, 0.25); // interaction std 0.5
  const U = factors(s.rows, rank, a, rng), V = factors(s.cols, rank, a, rng);
  const bu = factors(s.rows, 1, 0.4, rng), bi = factors(s.cols, 1, 0.4, rng);
  const lines = ratings(s, (i, j, r) => {
    let dot = 0;
    for (let f = 0; f < rank; f++) dot += U[i * rank + f] * V[j * rank + f];
    return 3.6 + bu[i] + bi[j] + dot + noise * gauss(r);
  }, (i, j, v) => `${i + 1},${j + 1},${v.toFixed(3)}`);
  await Deno.writeTextFile(path, `user,item,rating\n${lines.join("\n")}\n`);
  return noise;
}
