import assert from "node:assert/strict";
import { HotReplica } from "../../tasks/w2v_hot.ts";
import { FakeCluster, FakePs } from "./fake_ps.ts";

const DIM = 2;

function cluster(): FakeCluster {
  // 4 keys: 0, 1 on node 0; 2, 3 on node 1 (range placement); all values start at 0.
  return new FakeCluster([{ name: "w", keys: 4, dim: DIM, init: { kind: "zero" } }], 2, 2);
}

Deno.test("hot replica: only the keys not local are replicated; merges keep every worker's updates", async () => {
  const c = cluster();
  const a = new FakePs(c, 0), b = new FakePs(c, 1);
  const ra = new HotReplica(a, 0, 4, 4, DIM, (k) => a.isLocal(0, k));
  const rb = new HotReplica(b, 0, 4, 3, DIM, (k) => b.isLocal(0, k));
  assert.deepEqual([...ra.keys], [2, 3]);
  assert.deepEqual([...rb.keys], [0, 1], "hot = 3: key 3 is not hot, key 2 is local to b");
  assert.deepEqual([...ra.row], [-1, -1, 0, 1]);
  await ra.load(100);
  await rb.load(100);
  const values = c.byName.get("w")!.values;
  // a trains key 2 (replica row 0) twice, b trains key 0 (row 0); b also updates key 2 in place.
  ra.vals[0] += 1;
  ra.vals[0] += 1;
  ra.touched[0] = 1;
  rb.vals[0] += 5;
  rb.touched[0] = 1;
  values[2 * DIM] += 10; // b's in-place update of its own key 2
  ra.merge(100);
  rb.merge(100);
  // Training goes on while the pulls are in flight: kept over the fresh values.
  ra.vals[0] += 100;
  ra.touched[0] = 1;
  await ra.settle();
  await rb.settle();
  await a.wait();
  await b.wait();
  assert.equal(values[2 * DIM], 12, "the PS holds a's 2 and b's 10");
  assert.equal(values[0], 5, "and b's 5 on key 0");
  assert.equal(ra.vals[0], 112, "a's replica: the PS value plus what a trained since the merge");
  assert.equal(ra.merges, 1);
  assert.equal(ra.rowsMerged, 1, "untouched row 1 (key 3) was not sent");
  ra.merge(100);
  await ra.settle();
  await a.wait();
  assert.equal(values[2 * DIM], 112, "the second merge pushes only the 100 trained since");
  assert.equal(ra.vals[0], 112);
  ra.merge(100);
  assert.equal(ra.rowsMerged, 2, "nothing trained: nothing sent");
});
