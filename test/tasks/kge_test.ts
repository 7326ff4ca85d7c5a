import assert from "node:assert/strict";
import type { JobConfig, LocalizeDirective } from "../../core/types.ts";
import { Rng } from "../../core/rng.ts";
import { FilterIndex, type Triples } from "../../data/kge_data.ts";
import { DeferQueue, kgeSettings, rankQueries, RingIndex, task } from "../../tasks/kge.ts";
import { type KgeAlgorithm, makeModel, softplus, TrainStep } from "../../tasks/kge_model.ts";
import { runFakeJob } from "./fake_ps.ts";

const WN_BODY = new URL("../../data/wn_body", import.meta.url).pathname;
const DIRECTIVES: LocalizeDirective[] = [
  { table: "relations", when: "start", keys: "partition" },
  { table: "entities", when: "ahead", steps: 8, keys: "next" },
];

function config(over: {
  nodes?: number;
  mode?: "lapse" | "classic";
  localize?: LocalizeDirective[];
  model?: Record<string, unknown>;
  data?: Record<string, unknown>;
} = {}): JobConfig {
  return {
    task: "kge",
    seed: 3,
    cluster: { nodes: over.nodes ?? 1, workers_per_node: 1 },
    ps: {
      mode: over.mode ?? "lapse",
      location_caches: true,
      placement: "range",
      max_frame_bytes: 1 << 26,
      batch_keys_max: 1e6,
    },
    localize: over.localize ?? DIRECTIVES,
    data: over.data ?? { dir: WN_BODY },
    model: {
      algorithm: "complex",
      dim: 32,
      negatives: 4,
      epochs: 6,
      lr: 0.1,
      lambda: 0,
      init_scale: 0.1,
      clock_every: 1000,
      eval_every: 0,
      eval_max_triples: 200,
      eval_split: "valid",
      ...over.model,
    },
  };
}

/** Loss of the step's current values, plus lambda/2 |theta|^2 of every slot and the relation. */
function fullLoss(step: TrainStep, lambda: number): number {
  const { loss } = step.gradients(0);
  const d = step.model.dim, rf = step.model.relFloats;
  let reg = 0;
  for (let sl = 0; sl < step.slots; sl++) {
    for (let k = 0; k < d; k++) reg += step.ent[sl * 2 * d + k] ** 2;
  }
  for (let k = 0; k < rf; k++) reg += step.rel[k] ** 2;
  return loss + (lambda / 2) * reg;
}

for (const algorithm of ["complex", "distmult", "rescal"] as KgeAlgorithm[]) {
  Deno.test(`${algorithm}: gradients match finite differences of the loss`, () => {
    const model = makeModel(algorithm, 6);
    const step = new TrainStep(model, 2);
    const rng = new Rng(11);
    for (let i = 0; i < step.ent.length; i++) step.ent[i] = rng.nextGaussian() * 0.7;
    for (let i = 0; i < step.rel.length; i++) step.rel[i] = rng.nextGaussian() * 0.7;
    const lambda = 0.05;
    const { gradE, gradR } = step.gradients(lambda);
    const gE = gradE.slice(), gR = gradR.slice();
    const d = model.dim;
    const check = (arr: Float32Array, at: number, analytic: number, what: string) => {
      const x = arr[at], h = 1e-2;
      arr[at] = x + h;
      const up = fullLoss(step, lambda), xu = arr[at];
      arr[at] = x - h;
      const down = fullLoss(step, lambda), xd = arr[at];
      arr[at] = x;
      const numeric = (up - down) / (xu - xd);
      assert.ok(
        Math.abs(numeric - analytic) <= 1e-3 + 1e-3 * Math.abs(numeric),
        `${what}: numeric ${numeric} vs analytic ${analytic}`,
      );
    };
    for (let sl = 0; sl < step.slots; sl++) {
      for (let k = 0; k < d; k++) {
        check(step.ent, sl * 2 * d + k, gE[sl * d + k], `slot ${sl}[${k}]`);
      }
    }
    for (let k = 0; k < model.relFloats; k++) check(step.rel, k, gR[k], `relation[${k}]`);
  });
}

Deno.test("the step: initial loss of zero embeddings is (1 + 2n) log 2; AdaGrad deltas", () => {
  const step = new TrainStep(makeModel("complex", 4), 3);
  const loss = step.run({ negatives: 3, lr: 0.1, lambda: 0, accOffset: 1 });
  assert.ok(Math.abs(loss - 7 * Math.log(2)) < 1e-12);
  assert.ok(Math.abs(softplus(0) - Math.log(2)) < 1e-15);
  // All gradients are zero at zero embeddings: nothing moves.
  assert.ok(step.entDelta.every((x) => x === 0));
  // Non-zero values: the embedding moves by -lr g / sqrt(acc + g^2 + offset), acc grows by g^2.
  const rng = new Rng(2);
  for (let i = 0; i < step.ent.length; i++) step.ent[i] = rng.nextFloat() * 0.5;
  for (let i = 0; i < step.rel.length; i++) step.rel[i] = rng.nextFloat() * 0.5;
  const { gradE } = step.gradients(0);
  const g = gradE[0];
  step.run({ negatives: 3, lr: 0.1, lambda: 0, accOffset: 1 });
  const acc = step.ent[4];
  assert.ok(Math.abs(step.entDelta[0] - (-0.1 * g) / Math.sqrt(acc + g * g + 1)) < 1e-6);
  assert.ok(Math.abs(step.entDelta[4] - g * g) < 1e-6);
});

/** Brute-force filtered ranks: every score by the model's definition, known triples in a Set. */
function bruteForce(
  algorithm: KgeAlgorithm,
  d: number,
  E: Float32Array,
  R: Float32Array,
  nE: number,
  queries: Triples,
  known: Triples,
) {
  const ed = 2 * d, rf = algorithm === "rescal" ? d * d : d;
  const score = (s: number, r: number, o: number) => {
    const S = E.subarray(s * ed), O = E.subarray(o * ed), W = R.subarray(r * 2 * rf);
    let x = 0;
    if (algorithm === "complex") {
      const h = d / 2;
      for (let k = 0; k < h; k++) {
        // Re(s * r * conj(o))
        const ar = S[k] * W[k] - S[h + k] * W[h + k], ai = S[k] * W[h + k] + S[h + k] * W[k];
        x += ar * O[k] + ai * O[h + k];
      }
    } else if (algorithm === "distmult") {
      for (let k = 0; k < d; k++) x += S[k] * W[k] * O[k];
    } else {
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) x += S[i] * W[i * d + j] * O[j];
    }
    return x;
  };
  const set = new Set<string>();
  for (let i = 0; i < known.heads.length; i++) {
    set.add(`${known.heads[i]} ${known.rels[i]} ${known.tails[i]}`);
  }
  const sums = { rr: 0, h1: 0, h3: 0, h10: 0, n: 0 };
  const add = (rank: number) => {
    sums.rr += 1 / rank;
    sums.h1 += rank <= 1 ? 1 : 0;
    sums.h3 += rank <= 3 ? 1 : 0;
    sums.h10 += rank <= 10 ? 1 : 0;
    sums.n++;
  };
  for (let q = 0; q < queries.heads.length; q++) {
    const s = queries.heads[q], r = queries.rels[q], o = queries.tails[q];
    const t = score(s, r, o);
    let gt = 0, eq = 0, gh = 0, eh = 0;
    for (let e = 0; e < nE; e++) {
      if (!set.has(`${s} ${r} ${e}`)) {
        const x = score(s, r, e);
        if (x > t + 1e-9) gt++;
        else if (Math.abs(x - t) <= 1e-9) eq++;
      }
      if (!set.has(`${e} ${r} ${o}`)) {
        const x = score(e, r, o);
        if (x > t + 1e-9) gh++;
        else if (Math.abs(x - t) <= 1e-9) eh++;
      }
    }
    add(1 + gt + Math.floor(eq / 2));
    add(1 + gh + Math.floor(eh / 2));
  }
  return sums;
}

for (const algorithm of ["complex", "distmult", "rescal"] as KgeAlgorithm[]) {
  Deno.test(`${algorithm}: filtered ranking equals a brute-force count on a tiny graph`, async () => {
    const d = 4, nE = 30, nR = 3;
    const model = makeModel(algorithm, d);
    const rng = new Rng(9);
    const E = new Float32Array(nE * 2 * d).map(() => rng.nextGaussian());
    const R = new Float32Array(nR * 2 * model.relFloats).map(() => rng.nextGaussian());
    const known: Triples = {
      heads: new Uint32Array(200),
      rels: new Uint32Array(200),
      tails: new Uint32Array(200),
    };
    for (let i = 0; i < 200; i++) {
      known.heads[i] = rng.nextInt(nE);
      known.rels[i] = rng.nextInt(nR);
      known.tails[i] = rng.nextInt(nE);
    }
    const queries: Triples = {
      heads: known.heads.slice(0, 40),
      rels: known.rels.slice(0, 40),
      tails: known.tails.slice(0, 40),
    };
    const pull = (table: "entities" | "relations", keys: Uint32Array, out: Float32Array) => {
      const src = table === "entities" ? E : R,
        w = table === "entities" ? 2 * d : 2 * model.relFloats;
      for (let i = 0; i < keys.length; i++) {
        out.set(src.subarray(keys[i] * w, keys[i] * w + w), i * w);
      }
      return undefined;
    };
    // Chunks of 7 entities: the filter cursors cross chunk borders.
    const got = await rankQueries(
      model,
      queries,
      nE,
      new FilterIndex(queries, nR, [known]),
      pull,
      7,
    );
    const want = bruteForce(algorithm, d, E, R, nE, queries, known);
    assert.equal(got.n, 80);
    assert.ok(Math.abs(got.rr - want.rr) < 1e-9, `rr ${got.rr} vs ${want.rr}`);
    assert.deepEqual([got.h1, got.h3, got.h10], [want.h1, want.h3, want.h10]);
  });
}

Deno.test("settings: defaults, directives, bad dims and algorithms", () => {
  const s = kgeSettings(config());
  assert.equal(s.clusterRelations, true);
  assert.equal(s.ahead, 8);
  assert.equal(kgeSettings(config({ localize: [] })).ahead, 0);
  assert.throws(
    () => kgeSettings(config({ model: { dim: 7 } })),
    /model\.dim 7 does not fit ComplEx/,
  );
  assert.throws(
    () => kgeSettings(config({ model: { algorithm: "transe" } })),
    /unknown model\.algorithm "transe"/,
  );
  assert.throws(
    () => kgeSettings(config({ data: { dir: WN_BODY, generate: { entities: 5 } } })),
    /both given/,
  );
  const t = task.tables(config({ model: { algorithm: "rescal", dim: 8 } }));
  assert.deepEqual(t.map((x) => [x.name, x.keys, x.dim]), [["entities", 1993, 16], [
    "relations",
    7,
    128,
  ]]);
});

Deno.test("end to end on the shipped graph: test MRR far above that of random embeddings", async () => {
  const random = await runFakeJob(task, config({ model: { epochs: 0 } }));
  const trained = await runFakeJob(task, config());
  const r0 = random.metrics[0].test_mrr, r1 = trained.metrics.at(-1)!.test_mrr;
  assert.equal(trained.metrics.length, 6);
  assert.ok(r0 < 0.05, `random MRR ${r0}`);
  assert.ok(r1 > 0.5, `trained MRR ${r1} (random ${r0})`);
  assert.ok(trained.metrics[5].train_loss < trained.metrics[0].train_loss / 3);
  assert.equal(trained.epochPoints, 5078);
  assert.equal(trained.progress, 6 * 5078);
});

Deno.test("two nodes: lapse localizes (mostly local), classic prefetches (mostly remote), both learn", async () => {
  const cfg = (mode: "lapse" | "classic") =>
    config({ nodes: 2, mode, model: { epochs: 6, eval_max_triples: 100 } });
  const lapse = await runFakeJob(task, cfg("lapse"));
  const classic = await runFakeJob(task, cfg("classic"));
  const frac = (c: { local: number; remote: number }) => c.local / (c.local + c.remote);
  assert.ok(frac(lapse.counters) > 0.8, `lapse local ${frac(lapse.counters)}`);
  assert.ok(frac(classic.counters) < 0.7, `classic local ${frac(classic.counters)}`);
  assert.ok(lapse.workers.some((w) => w.localized > 0));
  for (const r of [lapse, classic]) {
    assert.ok(r.metrics.at(-1)!.test_mrr > 0.4, `MRR ${r.metrics.map((m) => m.test_mrr)}`);
  }
  // Lapse defers triples whose keys are still moving instead of waiting for them; classic pulls
  // its own updates to the copies it prefetched before them (it sees its own updates).
  const count = (logs: string[], what: RegExp) =>
    logs.map((l) => Number(l.match(what)?.[1] ?? 0)).reduce((a, b) => a + b, 0);
  assert.ok(count(lapse.logs, /triples deferred (\d+)/) > 0, lapse.logs.join("\n"));
  assert.ok(
    count(classic.logs, /own updates added to prefetched copies (\d+)/) > 0,
    classic.logs.join("\n"),
  );
});

Deno.test("ring index: an update reaches exactly the live copies of its key ahead", () => {
  // Ring of 4 slots x 1 key; copies of width 2.
  const keyOf = new Uint32Array(4);
  const idx = new RingIndex(10, 4, keyOf);
  const copies = new Float32Array(8);
  const put = (e: number, key: number, no: number) => {
    keyOf[e] = key;
    idx.add(e, no);
  };
  put(0, 7, 1); // triple 1: key 7
  put(1, 3, 2);
  put(2, 7, 3);
  put(3, 7, 4);
  const d = new Float32Array([1, 2]);
  // Training triple 1 (key 7): the copies of triples 3 and 4 get the delta, not 1's own.
  assert.equal(idx.patch(7, 1, d, 0, copies, 2), 2);
  assert.deepEqual([...copies], [0, 0, 0, 0, 1, 2, 1, 2]);
  // Slot 0 reused for triple 5 with key 3; training triple 2 (key 3) patches only triple 5.
  put(0, 3, 5);
  assert.equal(idx.patch(3, 2, d, 0, copies, 2), 1);
  assert.deepEqual([...copies.subarray(0, 2)], [1, 2]);
  // Key 7 after triple 4: nothing live.
  assert.equal(idx.patch(7, 4, d, 0, copies, 2), 0);
});

Deno.test("defer queue: FIFO, keys copied, wraps around, refuses when full", () => {
  const q = new DeferQueue(3, 2);
  const k = new Uint32Array([1, 2]);
  for (let i = 0; i < 3; i++) {
    k[0] = i;
    assert.ok(q.add(k, 10 + i, 100 + i, 1));
  }
  k[0] = 99;
  assert.equal(q.add(k, 0, 0, 0), false);
  assert.deepEqual([...q.headKeys()], [0, 2]);
  assert.equal(q.rel[q.head], 10);
  q.shift();
  assert.ok(q.add(k, 13, 103, 2)); // into the freed slot (wrapped)
  const seen: number[] = [];
  while (q.size > 0) {
    seen.push(q.headKeys()[0], q.due[q.head], q.tries[q.head]);
    q.shift();
  }
  assert.deepEqual(seen, [1, 101, 1, 2, 102, 1, 99, 103, 2]);
});

Deno.test("generated graph: data clustering gives each worker its relations; it trains", async () => {
  const r = await runFakeJob(
    task,
    config({
      nodes: 2,
      data: {
        generate: {
          entities: 500,
          relations: 6,
          triples: 3000,
          zipf_entities: 1,
          zipf_relations: 1,
          valid: 20,
          test: 30,
          seed: 1,
        },
      },
      model: { epochs: 2, algorithm: "rescal", dim: 8 },
    }),
  );
  assert.equal(r.epochPoints, 3000);
  assert.equal(r.sums[1].test_n, 60);
  assert.ok(r.metrics[1].train_loss < r.metrics[0].train_loss);
});

Deno.test("--out writer: .npy files numpy can read (header, shape, rows without accumulators)", async () => {
  const { writeKgeEmbeddings } = await import("../../tasks/kge_out.ts");
  const dir = await Deno.makeTempDir({ prefix: "kge-out-" });
  try {
    // Entity i, float f: value 10 i + f, accumulator -1.
    const rows = (width: number, floats: number) => (keys: Uint32Array, out: Float32Array) => {
      for (let i = 0; i < keys.length; i++) {
        for (let f = 0; f < width; f++) out[i * width + f] = f < floats ? 10 * keys[i] + f : -1;
      }
      return undefined;
    };
    await writeKgeEmbeddings(dir, {
      algorithm: "complex",
      dim: 4,
      entities: 5,
      relations: 2,
      relFloats: 4,
      entityNames: ["a", "b", "c", "d", "e"],
      readEntities: rows(8, 4),
      readRelations: rows(8, 4),
      chunk: 2,
    });
    const bytes = await Deno.readFile(`${dir}/entities.npy`);
    assert.deepEqual([...bytes.subarray(0, 6)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
    const hlen = new DataView(bytes.buffer).getUint16(8, true);
    assert.equal((10 + hlen) % 64, 0);
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + hlen));
    assert.match(header, /'descr': '<f4', 'fortran_order': False, 'shape': \(5, 4\)/);
    const data = new Float32Array(bytes.slice(10 + hlen).buffer);
    assert.deepEqual(
      [...data],
      Array.from({ length: 20 }, (_, x) => 10 * Math.floor(x / 4) + (x % 4)),
    );
    assert.equal(await Deno.readTextFile(`${dir}/entity_names.txt`), "a\nb\nc\nd\ne\n");
    assert.equal(await Deno.readTextFile(`${dir}/relation_names.txt`), "r0\nr1\n");
    assert.equal((await Array.fromAsync(Deno.readDir(dir))).length, 5); // no temporary files left
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("saved model (lapse predict): scores and top entities as the model computes them", async () => {
  const { writeKgeEmbeddings } = await import("../../tasks/kge_out.ts");
  const { KgeSavedModel } = await import("../../tasks/kge_saved.ts");
  const dir = await Deno.makeTempDir({ prefix: "kge-saved-" });
  try {
    // DistMult dim 2: entity i = [i, 1], relation 0 = [1, 0], relation 1 = [0, 1]; accumulators -1.
    const vals = (f: (k: number) => number[]) => (keys: Uint32Array, out: Float32Array) => {
      for (let i = 0; i < keys.length; i++) out.set([...f(keys[i]), -1, -1], i * 4);
      return undefined;
    };
    await writeKgeEmbeddings(dir, {
      algorithm: "distmult",
      dim: 2,
      entities: 4,
      relations: 2,
      relFloats: 2,
      entityNames: ["a", "b", "c", "d"],
      relationNames: ["x", "y"],
      readEntities: vals((k) => [k, 1]),
      readRelations: vals((k) => (k === 0 ? [1, 0] : [0, 1])),
    });
    assert.ok(await KgeSavedModel.isKgeModel(dir));
    const m = await KgeSavedModel.load(dir);
    // score(h, x, t) = h * t; score(h, y, t) = 1.
    assert.equal(m.score(m.entityKey("c"), m.relationKey("x"), m.entityKey("d")), 6);
    assert.equal(m.score(1, 1, 3), 1);
    assert.deepEqual(m.top(m.entityKey("b"), 0, 2, "tail"), [[3, 3], [2, 2]]);
    assert.deepEqual(m.top(m.entityKey("d"), 0, 3, "head").map(([e]) => e), [3, 2, 1]);
    assert.throws(() => m.entityKey("zz"), /unknown entity "zz"/);
    assert.throws(() => m.relationKey("z"), /unknown relation "z" \(known: x, y\)/);
    // The command: top tails, scored triples, and a bad line named by its number (exit 2).
    const run = async (args: string[], stdin = "") => {
      const p = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../../cli/main.ts", import.meta.url).pathname,
          "predict",
          "--model",
          dir,
          ...args,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = p.stdin.getWriter();
      await w.write(new TextEncoder().encode(stdin));
      await w.close();
      const o = await p.output();
      return {
        code: o.code,
        out: new TextDecoder().decode(o.stdout),
        err: new TextDecoder().decode(o.stderr),
      };
    };
    const top = await run(["--head", "b", "--relation", "x", "--top", "2"]);
    assert.equal(top.out, "d\t3.00000\nc\t2.00000\n");
    const scored = await run([], "c\tx\td\n# comment\na\ty\tb\n");
    assert.equal(scored.out, "c\tx\td\t6.00000\na\ty\tb\t1.00000\n");
    const bad = await run([], "c\tx\td\nc\tx\n");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /stdin:2: expected "head<TAB>relation<TAB>tail"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plain loop (bench baseline): the same step without a PS learns the shipped graph", async () => {
  const { runPlainKge } = await import("../../tasks/kge_plain.ts");
  const r = await runPlainKge(config({ model: { epochs: 4, eval_max_triples: 100 } }));
  assert.equal(r.train_n, 5078);
  assert.equal(r.epoch_s.length, 4);
  assert.ok(r.points_per_s > 0);
  assert.ok(r.test_mrr > 0.4, `plain MRR ${r.test_mrr}`);
});

Deno.test("negative pool and local negatives: lapse and classic learn; lapse stays local", async () => {
  const cfg = (mode: "lapse" | "classic", local: boolean) =>
    config({
      nodes: 2,
      mode,
      model: {
        epochs: 6,
        eval_max_triples: 100,
        negative_pool: 1000,
        pool_refresh: 1000,
        local_negatives: local,
      },
    });
  const frac = (c: { local: number; remote: number }) => c.local / (c.local + c.remote);
  const uniform = await runFakeJob(task, config({ nodes: 2, model: { epochs: 1 } }));
  for (const local of [false, true]) {
    const lapse = await runFakeJob(task, cfg("lapse", local));
    const classic = await runFakeJob(task, cfg("classic", local));
    for (const r of [lapse, classic]) {
      assert.ok(r.metrics.at(-1)!.test_mrr > 0.4, `MRR ${r.metrics.map((m) => m.test_mrr)}`);
    }
    // Classic: nothing moves, and local_negatives is ignored (a biased sample there).
    assert.ok(classic.workers.every((w) => w.localized === 0));
    assert.ok(frac(classic.counters) < 0.7, `classic local ${frac(classic.counters)}`);
    if (local) {
      // Redrawn until local: (nearly) every access is local, and fewer keys move per epoch
      // than with uniform negatives localized ahead.
      assert.ok(frac(lapse.counters) > 0.85, `lapse local ${frac(lapse.counters)}`);
      assert.match(lapse.logs.join("\n"), /negatives redrawn local [1-9]/);
      const moved = (r: typeof lapse) => r.workers.reduce((a, w) => a + w.localized, 0);
      assert.ok(moved(lapse) / 6 < moved(uniform), `${moved(lapse) / 6} vs ${moved(uniform)}`);
    }
  }
  assert.throws(
    () => kgeSettings(config({ model: { negative_pool: -1 } })),
    /model\.negative_pool must be an integer from 0/,
  );
  assert.equal(kgeSettings(config()).negativePool, 0); // off by default
});

Deno.test("hot entities (lapse): placed once, never localized by the others; it learns", async () => {
  const gen = {
    generate: {
      entities: 400,
      relations: 6,
      triples: 4000,
      zipf_entities: 1,
      zipf_relations: 1,
      valid: 20,
      test: 40,
      seed: 2,
    },
  };
  const cfg = (hot: number) =>
    config({ nodes: 2, data: gen, model: { epochs: 3, dim: 16, hot_entities: hot } });
  const hot = await runFakeJob(task, cfg(40));
  const cold = await runFakeJob(task, cfg(0));
  const logs = hot.logs.join("\n");
  // The 40 hot entities are split between the two workers, and a worker trains the triples
  // that need one held by the other in remote batches.
  const here = [...logs.matchAll(/hot entities here (\d+) elsewhere (\d+)/g)];
  assert.equal(here.length, 2, logs);
  for (const m of here) assert.equal(Number(m[1]) + Number(m[2]), 40);
  assert.equal(Number(here[0][1]), Number(here[1][2]));
  assert.match(logs, /trained remotely [1-9]\d* in [1-9]\d* batches/);
  assert.doesNotMatch(cold.logs.join("\n"), /hot entities/);
  // Hot entities do not move after the start: fewer keys move than without them.
  const moved = (r: typeof hot) => r.workers.reduce((a, w) => a + w.localized, 0);
  assert.ok(moved(hot) < moved(cold), `${moved(hot)} vs ${moved(cold)}`);
  for (const r of [hot, cold]) {
    assert.ok(
      r.metrics[2].train_loss < r.metrics[0].train_loss,
      `${r.metrics.map((m) => m.train_loss)}`,
    );
  }
  // Classic ignores them (nothing moves).
  const classic = await runFakeJob(task, { ...cfg(40), ps: { ...cfg(40).ps, mode: "classic" } });
  assert.ok(classic.workers.every((w) => w.localized === 0));
  assert.doesNotMatch(classic.logs.join("\n"), /hot entities/);
});
