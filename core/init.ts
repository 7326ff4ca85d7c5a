/**
 * Deterministic initial values of table keys ({@linkcode InitSpec}): the nodes initialise the
 * keys they are home of with it, and the single-process baselines (the plain mf loop) use it
 * too, so that every run of a job starts from the same model whatever the cluster shape.
 *
 * @module
 */
import type { InitSpec } from "./types.ts";
import { mix32 } from "./rng.ts";

/**
 * Writes the initial value of `key` to `out` at `offset`. Deterministic in (seed, table, key),
 * so whichever node is home computes the same value, whatever the cluster shape.
 */
export function initValue(
  init: InitSpec,
  seed: number,
  tableId: number,
  key: number,
  dim: number,
  out: Float32Array,
  offset: number,
): void {
  if (init.kind === "zero") {
    out.fill(0, offset, offset + dim);
    return;
  }
  if (init.kind === "constant") {
    out.fill(init.value, offset, offset + dim);
    return;
  }
  let state = mix32(mix32(seed ^ 0x9e3779b9) ^ mix32(tableId + 0x632be5ab) ^ mix32(key + 1));
  const random = Math.min(dim, init.floats ?? dim);
  if (random < dim) out.fill(0, offset + random, offset + dim);
  for (let i = 0; i < random; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    const u1 = (mix32(state) + 0.5) / 4294967296;
    if (init.kind === "uniform") {
      out[offset + i] = (u1 * 2 - 1) * init.scale;
    } else {
      state = (state + 0x6d2b79f5) >>> 0;
      const u2 = (mix32(state) + 0.5) / 4294967296;
      out[offset + i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2) * init.std;
    }
  }
}
