/**
 * Hashing and the one seeded PRNG of the project. Deterministic on every platform, so every
 * node computes the same initial values, data and schedules from the job seed.
 *
 * @example
 * ```ts
 * import { hash32, Rng } from "./rng.ts";
 * const rng = new Rng(hash32(1, 2));
 * const x = rng.nextInt(10);
 * console.assert(x >= 0 && x < 10);
 * ```
 *
 * @module
 */

/** The murmur3 32-bit finaliser: a bijective mix of a 32-bit integer. Returns an unsigned int. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Hashes up to three 32-bit integers into one unsigned 32-bit integer. */
export function hash32(a: number, b = 0, c = 0): number {
  let h = mix32((a ^ 0x9e3779b9) >>> 0);
  h = mix32((h ^ Math.imul(b | 0, 0x27d4eb2f)) >>> 0);
  h = mix32((h ^ Math.imul(c | 0, 0x165667b1) ^ 0x5bd1e995) >>> 0);
  return h;
}

/** 2^32, to turn an unsigned 32-bit integer into a fraction. */
export const TWO_POW_32 = 4294967296;

/**
 * splitmix32: a small, fast, seeded PRNG (one 32-bit state word) with Box-Muller Gaussians.
 * Deterministic for a given seed on every platform.
 */
export class Rng {
  private state: number;
  private spare = 0;
  private hasSpare = false;

  constructor(seed: number) {
    this.state = seed | 0;
  }

  /** Re-seeds in place (no allocation). */
  reseed(seed: number): void {
    this.state = seed | 0;
    this.hasSpare = false;
  }

  /**
   * The generator's whole state, JSON-able (a task's checkpoint state): `setState` of it draws
   * the same sequence from here on.
   */
  getState(): [number, number, boolean] {
    return [this.state, this.spare, this.hasSpare];
  }

  /** Puts back a state from {@linkcode Rng.getState}; throws a RangeError for anything else. */
  setState(s: unknown): void {
    if (
      !Array.isArray(s) || s.length !== 3 || !Number.isInteger(s[0]) ||
      typeof s[1] !== "number" || typeof s[2] !== "boolean"
    ) {
      throw new RangeError(`not a generator state: ${JSON.stringify(s)}`);
    }
    this.state = s[0] | 0;
    this.spare = s[1];
    this.hasSpare = s[2];
  }

  /** Uniform unsigned 32-bit integer. */
  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) | 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n) for 0 < n <= 2^32. */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  nextGaussian(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    let u = this.nextFloat();
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * v;
    this.spare = r * Math.sin(t);
    this.hasSpare = true;
    return r * Math.cos(t);
  }
}
