/**
 * Home placement: which node keeps the directory entry of a key (and, at job start, its value).
 *
 * `range` gives node n a contiguous key range; `random` places keys by a seeded random
 * permutation, so that a classic PS gets no accidental locality from key order (DESIGN.md 7).
 *
 * @module
 */
import { mix32 } from "../core/rng.ts";

/** The home node of every key of one table. */
export class Placement {
  readonly nodes: number;
  readonly keys: number;
  /** key -> home node; null for `range` (computed). */
  readonly #homes: Uint8Array | null;

  constructor(kind: "range" | "random", keys: number, nodes: number, seed: number) {
    if (nodes < 1 || nodes > 255) {
      throw new RangeError(`Placement over ${nodes} nodes: expected 1 .. 255`);
    }
    this.nodes = nodes;
    this.keys = keys;
    if (kind === "range" || nodes === 1) {
      this.#homes = null;
      return;
    }
    // A seeded Fisher-Yates shuffle of the keys, then range placement of the shuffled order:
    // every node homes the same number of keys (+-1), in no order related to the key ids.
    const perm = new Int32Array(keys);
    for (let i = 0; i < keys; i++) perm[i] = i;
    let state = mix32(seed ^ 0x5bd1e995);
    for (let i = keys - 1; i > 0; i--) {
      state = mix32(state + 0x6d2b79f5);
      const j = state % (i + 1);
      const t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    const homes = new Uint8Array(keys);
    for (let p = 0; p < keys; p++) homes[perm[p]] = Math.floor((p * nodes) / keys);
    this.#homes = homes;
  }

  /** The home node of `key`. */
  home(key: number): number {
    const homes = this.#homes;
    if (homes !== null) return homes[key];
    return Math.floor((key * this.nodes) / this.keys);
  }

  /** How many keys `node` is home of. */
  count(node: number): number {
    return Math.floor(((node + 1) * this.keys + this.nodes - 1) / this.nodes) -
      Math.floor((node * this.keys + this.nodes - 1) / this.nodes);
  }
}
