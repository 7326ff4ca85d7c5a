/**
 * Consistency self-test of a cluster (task `pscheck`): `lapse train --config tasks/pscheck.yaml`.
 *
 * One table `C` (`keys` x `dim`, zero init). Every push adds +1 to every dim of a key, so the
 * value of a key is always an integer, equal in all its dims, and at the end exactly the number
 * of pushes all workers made to it. Each worker, for `rounds` rounds:
 *
 * - `pattern: all`: pushes +1 to every key and pulls every key;
 * - `pattern: partial`: like `all`, but keys `k` with `k mod 3 == 2` are never pushed: they must
 *   read exactly their init value (0) whenever they are pulled, also after they moved;
 * - `pattern: random`: pushes +1 to `batch` random even keys (seeded by `seed` + worker) and
 *   pulls them plus `batch` other random keys; and every odd round a causality step on a random
 *   pair (L, F) = (2i, 2i+1): push L (awaited), then F, then pull F and then L. The odd keys are
 *   only pushed there, after their L, so whoever reads F and then L must find L >= F, whatever
 *   other workers did meanwhile (sequential consistency across workers, not only per reader).
 *
 * A push is awaited, or (with probability `async_prob`) not. Pulls are synchronous (awaited), and
 * each pulled value is checked against what this worker knows:
 *
 * - it never goes backwards (>= the last value this worker saw for the key), all pushes being
 *   increments;
 * - it includes this worker's own completed pushes (>= their count);
 * - all its dims are equal, it is a non-negative integer (and 0 for never-pushed keys);
 * - pattern random: L >= F in the causality step.
 *
 * Every failed check counts as a violation (the first few are logged). When `ps.mode` is
 * `lapse`, the task also moves keys around while it runs: with probability `localize_prob` per
 * round it localizes `batch` random keys (awaited or not), and every `storm_every` rounds every
 * worker localizes the same keys (`round mod keys` and the next one) at once: a localize storm.
 * Localize directive understood (none needed): `{ table: C, when: ahead, keys: next, steps: N }`
 * localizes the keys of the round N rounds ahead (pattern random only; ignored by the others).
 *
 * After the loop, every worker waits for its operations, meets the others at a barrier, pulls
 * all keys and reports per key its own push count (`pushes_<k>`); worker 0 also reports what it
 * read (`seen_<k>`). {@linkcode summarize} reports `mismatched_keys` (keys whose final value
 * differs from the pushes of all workers, or whose dims differ), `violations`, `keys_checked`,
 * `final_error` (sum over workers and keys of final value minus the expected value), all 0 on a
 * healthy cluster, plus `pushes`, `seen_min`/`seen_max` (final values of pushed keys; with
 * pattern all both are workers x rounds), `untouched_keys` and `untouched_max` (0: the init).
 *
 * @module
 */
import type {
  JobConfig,
  Keys,
  TableSpec,
  TaskContext,
  TaskDefinition,
  TaskSchema,
} from "../mod.ts";
import { Rng } from "../core/rng.ts";

/** The access patterns of pscheck. */
export type PsCheckPattern = "all" | "partial" | "random";

/** The pscheck part of a job config, with defaults filled. */
export interface PsCheckSettings {
  keys: number;
  dim: number;
  rounds: number;
  pattern: PsCheckPattern;
  batch: number;
  localizeProb: number;
  asyncProb: number;
  stormEvery: number;
  seed: number;
  /** Rounds ahead to localize (`when: ahead` directive), 0 = off. */
  ahead: number;
}

/** Model defaults (also in the schema): small, so that a 3x2 run takes a few seconds. */
export const PSCHECK_DEFAULTS = {
  keys: 64,
  dim: 4,
  rounds: 200,
  pattern: "random" as PsCheckPattern,
  batch: 4,
  localize_prob: 0.3,
  async_prob: 0.3,
  storm_every: 8,
  seed: 1,
};

/** True for keys pattern `partial` never pushes. */
export function untouched(pattern: PsCheckPattern, key: number): boolean {
  return pattern === "partial" && key % 3 === 2;
}

function num(v: unknown, fallback: number): number {
  return typeof v === "number" ? v : fallback;
}

/** Reads the settings from a validated config. */
export function psCheckSettings(config: JobConfig): PsCheckSettings {
  const m = config.model ?? {};
  const s: PsCheckSettings = {
    keys: num(m.keys, PSCHECK_DEFAULTS.keys),
    dim: num(m.dim, PSCHECK_DEFAULTS.dim),
    rounds: num(m.rounds, PSCHECK_DEFAULTS.rounds),
    pattern: (m.pattern ?? PSCHECK_DEFAULTS.pattern) as PsCheckPattern,
    batch: num(m.batch, PSCHECK_DEFAULTS.batch),
    localizeProb: num(m.localize_prob, PSCHECK_DEFAULTS.localize_prob),
    asyncProb: num(m.async_prob, PSCHECK_DEFAULTS.async_prob),
    stormEvery: num(m.storm_every, PSCHECK_DEFAULTS.storm_every),
    seed: num(m.seed, PSCHECK_DEFAULTS.seed),
    ahead: 0,
  };
  for (const d of config.localize ?? []) {
    if (d.table === "C" && d.when === "ahead" && (d.keys ?? "next") === "next") {
      s.ahead = d.steps ?? 8;
    } else {
      throw new RangeError(
        `pscheck does not understand the localize directive ${JSON.stringify(d)}; ` +
          `it understands { table: C, when: ahead, keys: next, steps: N }`,
      );
    }
  }
  return s;
}

function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Fills `out[0..n)` with distinct random keys below `keys` (n <= keys). */
function pickDistinct(rng: Rng, keys: number, out: Uint32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    let k: number;
    let dup: boolean;
    do {
      k = rng.nextInt(keys);
      dup = false;
      for (let j = 0; j < i; j++) if (out[j] === k) dup = true;
    } while (dup);
    out[i] = k;
  }
}

/** Runs `op` on slices of at most `max` keys, awaiting what it returns. */
async function chunked(
  keys: Keys,
  max: number,
  dim: number,
  vals: Float32Array | null,
  op: (keys: Keys, vals: Float32Array | null) => Promise<void> | undefined,
): Promise<void> {
  const pending: Promise<void>[] = [];
  for (let i = 0; i < keys.length; i += max) {
    const j = Math.min(keys.length, i + max);
    const p = op(keys.subarray(i, j), vals === null ? null : vals.subarray(i * dim, j * dim));
    if (p) pending.push(p);
  }
  if (pending.length > 0) await Promise.all(pending);
}

/** What one worker knows and checks. */
class Checker {
  readonly lastSeen: Float64Array;
  /** Pushes this worker issued, per key. */
  readonly pushes: Float64Array;
  /** Pushes this worker saw completed, per key. */
  readonly completed: Float64Array;
  violations = 0;
  #logged = 0;
  readonly #log: (line: string) => void;
  readonly #worker: number;
  readonly #pattern: PsCheckPattern;

  constructor(s: PsCheckSettings, worker: number, log: (line: string) => void) {
    this.lastSeen = new Float64Array(s.keys);
    this.pushes = new Float64Array(s.keys);
    this.completed = new Float64Array(s.keys);
    this.#worker = worker;
    this.#pattern = s.pattern;
    this.#log = log;
  }

  violation(what: string): void {
    this.violations++;
    if (this.#logged < 5) {
      this.#logged++;
      this.#log(`pscheck worker ${this.#worker}: VIOLATION ${what}`);
    }
  }

  /**
   * Checks the value of `key` a synchronous pull returned at `out[at..at+dim)`; `own` is the
   * number of this worker's pushes to it that had completed when the pull was issued.
   */
  check(key: number, own: number, out: Float32Array, at: number, dim: number, when: string) {
    const v = out[at];
    for (let d = 1; d < dim; d++) {
      if (out[at + d] !== v) {
        this.violation(`${when}: key ${key} has unequal dims: ${out.slice(at, at + dim)}`);
        break;
      }
    }
    if (!Number.isInteger(v) || v < 0) {
      this.violation(`${when}: key ${key} = ${v}, not a count of +1 pushes`);
    }
    if (v < this.lastSeen[key]) {
      this.violation(`${when}: key ${key} went backwards: ${this.lastSeen[key]} -> ${v}`);
    }
    if (v < own) {
      this.violation(`${when}: key ${key} = ${v} misses own pushes (${own} completed)`);
    }
    if (untouched(this.#pattern, key) && v !== 0) {
      this.violation(`${when}: never-pushed key ${key} = ${v}, expected its init 0`);
    }
    if (v > this.lastSeen[key]) this.lastSeen[key] = v;
    return v;
  }
}

/** The training loop of one worker: the check. */
async function run(ctx: TaskContext): Promise<void> {
  const { ps, config } = ctx;
  const s = psCheckSettings(config);
  const tb = ps.table("C").id;
  const { keys: K, dim } = s;
  const maxKeys = Math.max(1, Math.floor(config.ps?.batch_keys_max ?? 1 << 20));
  const lapse = config.ps.mode === "lapse";
  const rng = new Rng(mix(s.seed, ctx.worker + 1));
  const c = new Checker(s, ctx.worker, (line) => ctx.log(line));
  ctx.epochPoints(s.rounds);

  // Pattern random: key pairs (2i, 2i+1) for the causality check; the random pushes go to the
  // even keys only, so that every push to an odd key follows a completed push to its partner.
  const pairs = s.pattern === "random" ? Math.floor(K / 2) : 0;
  const domain = pairs > 0 ? Math.ceil(K / 2) : K;
  // The keys each round pushes (pattern all/partial: the same every round).
  const batch = Math.min(s.batch, domain);
  const extra = Math.min(s.batch, K);
  let pushKeys: Uint32Array;
  let pullKeys: Uint32Array;
  /** Pattern random: the keys of every round, drawn up front (for `when: ahead`). */
  let schedule: Uint32Array | null = null;
  if (s.pattern === "random") {
    schedule = new Uint32Array(s.rounds * batch);
    for (let r = 0; r < s.rounds; r++) {
      pickDistinct(rng, domain, schedule.subarray(r * batch), batch);
    }
    if (pairs > 0) { for (let i = 0; i < schedule.length; i++) schedule[i] *= 2; }
    pushKeys = new Uint32Array(batch);
    pullKeys = new Uint32Array(batch + extra);
  } else {
    const touched: number[] = [];
    for (let k = 0; k < K; k++) if (!untouched(s.pattern, k)) touched.push(k);
    pushKeys = Uint32Array.from(touched);
    pullKeys = new Uint32Array(K);
    for (let k = 0; k < K; k++) pullKeys[k] = k;
  }
  const ones = new Float32Array(pushKeys.length * dim).fill(1);
  const out = new Float32Array(pullKeys.length * dim);
  const own = new Float64Array(pullKeys.length);
  const locKeys = new Uint32Array(extra);
  const one = new Float32Array(dim).fill(1), pairKey = new Uint32Array(1);
  const pairOut = new Float32Array(dim);
  const stormKeys = new Uint32Array(Math.min(2, K));

  /** Pushes +1 to one key; `awaited`: returns when it completed. */
  const pushOne = async (key: number, awaited: boolean): Promise<void> => {
    pairKey[0] = key;
    c.pushes[key]++;
    const p = ps.push(tb, pairKey, one);
    if (p === undefined) c.completed[key]++;
    else if (!awaited) p.then(() => void c.completed[key]++, () => {});
    else {
      await p;
      c.completed[key]++;
    }
  };
  /** A synchronous pull of one key, checked; returns its value. */
  const pullOne = async (key: number, r: number): Promise<number> => {
    pairKey[0] = key;
    const before = c.completed[key];
    const p = ps.pull(tb, pairKey, pairOut);
    if (p) await p;
    return c.check(key, before, pairOut, 0, dim, `round ${r}`);
  };

  const localize = (keys: Uint32Array, awaited: boolean): Promise<void> | undefined => {
    const p = ps.localize(tb, keys);
    if (p === undefined) return undefined;
    if (awaited) return p;
    p.catch(() => {}); // ps.wait() below reports a failure
    return undefined;
  };

  for (let r = 0; r < s.rounds; r++) {
    if (lapse) {
      if (s.stormEvery > 0 && r % s.stormEvery === 0) {
        // Every 4th storm starts at a barrier: all workers ask for the same keys at once.
        if (r % (4 * s.stormEvery) === 0) await ps.barrier();
        for (let j = 0; j < stormKeys.length; j++) stormKeys[j] = (r + j) % K;
        const p = localize(stormKeys, rng.nextFloat() < 0.5);
        if (p) await p;
      }
      if (rng.nextFloat() < s.localizeProb) {
        pickDistinct(rng, K, locKeys, extra);
        const p = localize(locKeys, rng.nextFloat() >= s.asyncProb);
        if (p) await p;
      }
      if (schedule !== null && s.ahead > 0 && r + s.ahead < s.rounds) {
        const at = (r + s.ahead) * batch;
        localize(schedule.subarray(at, at + batch), false);
      }
    }
    if (schedule !== null) {
      pushKeys.set(schedule.subarray(r * batch, r * batch + batch));
      pullKeys.set(pushKeys);
      pickDistinct(rng, K, pullKeys.subarray(batch), extra);
    }

    // Push +1 to every dim of the round's keys, awaited or not.
    for (let i = 0; i < pushKeys.length; i++) c.pushes[pushKeys[i]]++;
    const async = rng.nextFloat() < s.asyncProb;
    if (pushKeys.length <= maxKeys) {
      const p = ps.push(tb, pushKeys, ones);
      if (p === undefined) {
        for (let i = 0; i < pushKeys.length; i++) c.completed[pushKeys[i]]++;
      } else if (async) {
        const done = pushKeys.slice();
        p.then(() => {
          for (let i = 0; i < done.length; i++) c.completed[done[i]]++;
        }, () => {});
      } else {
        await p;
        for (let i = 0; i < pushKeys.length; i++) c.completed[pushKeys[i]]++;
      }
    } else {
      await chunked(pushKeys, maxKeys, dim, ones, (ks, v) => ps.push(tb, ks, v!));
      for (let i = 0; i < pushKeys.length; i++) c.completed[pushKeys[i]]++;
    }

    // A synchronous pull: the checks (own pushes: those completed before the pull was issued).
    for (let i = 0; i < pullKeys.length; i++) own[i] = c.completed[pullKeys[i]];
    await chunked(pullKeys, maxKeys, dim, out, (ks, o) => ps.pull(tb, ks, o!));
    for (let i = 0; i < pullKeys.length; i++) {
      c.check(pullKeys[i], own[i], out, i * dim, dim, `round ${r}`);
    }

    // Causality across workers: push L = 2i (awaited), then F = 2i+1. Every push to F follows a
    // completed push to L, so whoever reads F and then L must find L >= F.
    if (pairs > 0 && r % 2 === 1) {
      const L = 2 * rng.nextInt(pairs), F = L + 1;
      await pushOne(L, true);
      await pushOne(F, rng.nextFloat() >= s.asyncProb);
      const vF = await pullOne(F, r), vL = await pullOne(L, r);
      if (vL < vF) {
        c.violation(`round ${r}: read key ${F} = ${vF}, then its lead key ${L} = ${vL} < ${vF}`);
      }
    }
    ctx.progress(1);
  }

  await ps.wait();
  await ps.barrier();

  // Everything is applied now: every worker must read the same, exact values.
  const all = new Uint32Array(K);
  for (let k = 0; k < K; k++) all[k] = k;
  const final = new Float32Array(K * dim);
  await chunked(all, maxKeys, dim, final, (ks, o) => ps.pull(tb, ks, o!));
  const sums: Record<string, number> = { workers: 1, violations: 0, final_total: 0 };
  for (let k = 0; k < K; k++) {
    const v = c.check(k, c.pushes[k], final, k * dim, dim, "final pull");
    sums.final_total += v;
    sums[`pushes_${k}`] = c.pushes[k];
    sums[`seen_${k}`] = ctx.worker === 0 ? v : 0;
    if (ctx.worker === 0) {
      for (let d = 1; d < dim; d++) {
        if (final[k * dim + d] !== v) {
          sums[`dimbad_${k}`] = 1;
          break;
        }
      }
    }
  }
  sums.violations = c.violations;
  ctx.epochEnd(0, sums);
}

/** Turns the summed reports of all workers into the check's result (all 0 but keys_checked). */
/** A failed check names what was wrong; a healthy cluster passes. */
export function verdict(m: Record<string, number>): string | null {
  const bad = [
    ["keys with a wrong final value", m.mismatched_keys],
    ["consistency violations", m.violations],
    ["final pulls off by", Math.abs(m.final_error ?? 0)],
    ["untouched keys off by", m.untouched_max],
  ].filter(([, n]) => (n as number) > 0);
  if (bad.length === 0) return null;
  return `pscheck failed: ${bad.map(([what, n]) => `${what} ${n}`).join(", ")} ` +
    `(worker log lines starting with VIOLATION say more)`;
}

export function summarize(sums: Record<string, number>): Record<string, number> {
  let keys = 0, mismatched = 0, pushes = 0, untouchedKeys = 0;
  let seenMin = Infinity, seenMax = -Infinity, untouchedMax = 0;
  while (`pushes_${keys}` in sums) {
    const p = sums[`pushes_${keys}`];
    const seen = sums[`seen_${keys}`] ?? 0;
    if (seen !== p || (sums[`dimbad_${keys}`] ?? 0) > 0) mismatched++;
    if (p === 0) {
      untouchedKeys++;
      untouchedMax = Math.max(untouchedMax, Math.abs(seen));
    } else {
      seenMin = Math.min(seenMin, seen);
      seenMax = Math.max(seenMax, seen);
    }
    pushes += p;
    keys++;
  }
  const workers = sums.workers ?? 0;
  return {
    mismatched_keys: mismatched,
    violations: sums.violations ?? 0,
    keys_checked: keys,
    untouched_keys: untouchedKeys,
    pushes,
    // Over the pushed keys: the least and greatest final value worker 0 read (0 if none).
    seen_min: seenMin === Infinity ? 0 : seenMin,
    seen_max: seenMax === -Infinity ? 0 : seenMax,
    // Over the never-pushed keys: the largest |value| worker 0 read (must be the init, 0).
    untouched_max: untouchedMax,
    // Every worker's final pull of every key must be the total of all pushes to it.
    final_error: (sums.final_total ?? 0) - workers * pushes,
  };
}

const schema: TaskSchema = {
  data: {
    type: "object",
    doc: "No data: write data: {}.",
    default: {},
    fields: {},
  },
  model: {
    type: "object",
    doc: "The consistency check's workload.",
    default: {},
    fields: {
      keys: {
        type: "integer",
        min: 1,
        max: 1_000_000,
        default: PSCHECK_DEFAULTS.keys,
        doc: "Keys of table C.",
      },
      dim: {
        type: "integer",
        min: 1,
        max: 4096,
        default: PSCHECK_DEFAULTS.dim,
        doc: "Floats per key.",
      },
      rounds: {
        type: "integer",
        min: 0,
        default: PSCHECK_DEFAULTS.rounds,
        doc: "Rounds of each worker.",
      },
      pattern: {
        type: "string",
        enum: ["all", "partial", "random"],
        default: PSCHECK_DEFAULTS.pattern,
        doc: "all: push every key each round; partial: all but keys k mod 3 == 2; random: " +
          "batch random keys",
      },
      batch: {
        type: "integer",
        min: 1,
        default: PSCHECK_DEFAULTS.batch,
        doc: "Keys pushed (and localized) per round (pattern random).",
      },
      localize_prob: {
        type: "number",
        min: 0,
        max: 1,
        default: PSCHECK_DEFAULTS.localize_prob,
        doc: "Probability per round of localizing batch random keys (ps.mode lapse).",
      },
      async_prob: {
        type: "number",
        min: 0,
        max: 1,
        default: PSCHECK_DEFAULTS.async_prob,
        doc: "Probability that a push (or a random localize) is not awaited.",
      },
      storm_every: {
        type: "integer",
        min: 0,
        default: PSCHECK_DEFAULTS.storm_every,
        doc: "Every N rounds all workers localize the same keys (0: no storms).",
      },
      seed: {
        type: "integer",
        min: 0,
        default: PSCHECK_DEFAULTS.seed,
        doc: "Seed of the random keys (worker w uses seed and w).",
      },
    },
  },
  localize: { tables: ["C"], when: ["ahead"], keys: ["next"] },
  defaultLocalize: [],
};

/** The table of a pscheck job: C, keys x dim, zero init. */
function tables(config: JobConfig): TableSpec[] {
  const s = psCheckSettings(config);
  return [{ name: "C", keys: s.keys, dim: s.dim, init: { kind: "zero" } }];
}

/** The pscheck task. */
export const task: TaskDefinition = { name: "pscheck", schema, tables, run, summarize, verdict };
