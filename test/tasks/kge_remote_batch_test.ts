import assert from "node:assert/strict";
import { Rng } from "../../core/rng.ts";
import type { TableSpec } from "../../core/types.ts";
import { hotEntityOwners, type Triples } from "../../data/kge_data.ts";
import { makeModel, TrainStep } from "../../tasks/kge_model.ts";
import { RemoteBatches } from "../../tasks/kge_remote_batch.ts";
import { FakeCluster, FakePs } from "./fake_ps.ts";

const ENTITIES = 12, RELATIONS = 3, DIM = 4, NEG = 1;
const PARAMS = { negatives: NEG, lr: 0.1, lambda: 0.01, accOffset: 1e-6 };

function cluster(): FakeCluster {
  const model = makeModel("complex", DIM);
  const specs: TableSpec[] = [
    {
      name: "entities",
      keys: ENTITIES,
      dim: 2 * DIM,
      init: { kind: "uniform", scale: 0.3, floats: DIM },
    },
    {
      name: "relations",
      keys: RELATIONS,
      dim: 2 * model.relFloats,
      init: { kind: "uniform", scale: 0.3, floats: model.relFloats },
    },
  ];
  // Range placement on 2 nodes: entities 0-5 and relations 0-1 on node 0, the rest on node 1.
  return new FakeCluster(specs, 2, 1, "lapse", "range", 7);
}

/** Triples (s, o, corrupted s, corrupted o) over all entities, so batches mix local and remote. */
function triples(n: number): { keys: Uint32Array[]; rels: number[] } {
  const rng = new Rng(5), keys: Uint32Array[] = [], rels: number[] = [];
  for (let i = 0; i < n; i++) {
    // Every third triple repeats entity 9 (remote) in two slots: one key twice in a triple.
    const k = Uint32Array.from({ length: 2 + 2 * NEG }, () => rng.nextInt(ENTITIES));
    if (i % 3 === 0) k[0] = k[3] = 9;
    keys.push(k);
    rels.push(rng.nextInt(RELATIONS));
  }
  return { keys, rels };
}

Deno.test("remote batches: the same values as training the triples one by one in order", async () => {
  const { keys, rels } = triples(11);
  // Reference: every triple trained synchronously on the current values, in order.
  const ref = cluster();
  const refPs = new FakePs(ref, 0);
  const refStep = new TrainStep(makeModel("complex", DIM), NEG);
  const relKey = new Uint32Array(1);
  for (let i = 0; i < keys.length; i++) {
    relKey[0] = rels[i];
    await refPs.pull(1, relKey, refStep.rel);
    await refPs.pull(0, keys[i], refStep.ent);
    refStep.run(PARAMS);
    await refPs.push(1, relKey, refStep.relDelta);
    await refPs.push(0, keys[i], refStep.entDelta);
  }
  // Batches of 3 on node 0 (half the keys remote): a batch trains when the next one is full.
  const c = cluster();
  const ps = new FakePs(c, 0);
  const step = new TrainStep(makeModel("complex", DIM), NEG);
  const rb = new RemoteBatches(ps, 0, 1, step, ENTITIES, RELATIONS, 3);
  let trainedBy = 0;
  for (let i = 0; i < keys.length; i++) {
    const p = rb.add(keys[i], rels[i], i, PARAMS);
    if (i === 2) assert.equal(p, undefined, "the first full batch is only pulled");
    if (p) await p;
    if (i === 5) trainedBy = rb.trained;
  }
  assert.equal(trainedBy, 3, "the second full batch trains the first");
  assert.equal(rb.size, 11 - 6);
  await rb.drain(PARAMS);
  await ps.wait();
  assert.equal(rb.size, 0);
  assert.equal(rb.trained, 11);
  assert.equal(rb.batches, 4);
  assert.ok(ps.remoteCalls > 0, "some pulls were remote");
  for (let t = 0; t < 2; t++) {
    const a = c.tables[t].values, b = ref.tables[t].values;
    for (let i = 0; i < a.length; i++) {
      assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `table ${t} float ${i}: ${a[i]} vs ${b[i]}`);
    }
  }
});

Deno.test("remote batches: a batch waits at most maxAge steps to fill and as long in flight", async () => {
  const { keys, rels } = triples(3);
  const c = cluster();
  const ps = new FakePs(c, 0);
  const step = new TrainStep(makeModel("complex", DIM), NEG);
  const rb = new RemoteBatches(ps, 0, 1, step, ENTITIES, RELATIONS, 100, 10);
  assert.equal(rb.add(keys[0], rels[0], 5, PARAMS), undefined);
  assert.equal(rb.add(keys[1], rels[1], 8, PARAMS), undefined);
  assert.equal(rb.tick(14, PARAMS), undefined, "9 steps: still filling");
  assert.equal(rb.tick(15, PARAMS), undefined, "10 steps: issued, nothing to train yet");
  assert.equal(rb.add(keys[2], rels[2], 20, PARAMS), undefined);
  assert.equal(rb.tick(24, PARAMS), undefined);
  const p = rb.tick(25, PARAMS); // in flight for 10 steps: trained; the third one issued
  assert.ok(p instanceof Promise);
  await p;
  assert.equal(rb.trained, 2);
  assert.equal(rb.size, 1);
  await rb.drain(PARAMS);
  assert.equal(rb.trained, 3);
  assert.equal(rb.tick(1000, PARAMS), undefined, "empty: nothing to do");
});

Deno.test("remote batches: a capacity below 1 is a RangeError", () => {
  const c = cluster();
  const step = new TrainStep(makeModel("complex", DIM), NEG);
  assert.throws(
    () => new RemoteBatches(new FakePs(c, 0), 0, 1, step, ENTITIES, RELATIONS, 0),
    RangeError,
  );
});

Deno.test("hot entity owners: the h most frequent entities, each at the worker using it most", () => {
  // Entity 0: 5 times (worker 1: 3, worker 0: 2); entity 1: 4 times (worker 0: 3); entity 2: 3
  // times, entity 3: 3 times (tie on count: the lower id is hot); entities 4-5 once.
  const t: Triples = {
    heads: Uint32Array.from([0, 0, 0, 1, 1, 1, 2, 3]),
    rels: Uint32Array.from([1, 1, 0, 0, 0, 0, 1, 0]),
    tails: Uint32Array.from([0, 2, 1, 2, 3, 3, 4, 5]),
  };
  const owner = hotEntityOwners(t, 7, 2, 3, (i) => t.rels[i]);
  assert.deepEqual([...owner], [1, 0, 1, -1, -1, -1, -1]);
  assert.deepEqual([...hotEntityOwners(t, 7, 2, 0, () => 0)], new Array(7).fill(-1));
  // More hot entities than entities that occur: the ones that never occur stay cold.
  assert.deepEqual([...hotEntityOwners(t, 7, 2, 100, () => 0)], [0, 0, 0, 0, 0, 0, -1]);
});
