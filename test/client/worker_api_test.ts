import assert from "node:assert/strict";
import { WorkerPs } from "../../client/worker_api.ts";
import { Table } from "../../server/store.ts";
import type { ToServer } from "../../server/worker_protocol.ts";

function setup(mode: "lapse" | "classic" | "classic_remote", batchMax = 1000) {
  const t = Table.create(0, { name: "W", keys: 8, dim: 2 }, 8);
  for (let k = 0; k < 4; k++) t.insert(k, Float32Array.of(k, 10 * k), 0); // keys 0..3 local
  const sent: ToServer[] = [];
  const ps = new WorkerPs([t.shared], mode, (m) => sent.push(m), batchMax);
  return { t, ps, sent };
}

Deno.test("worker API: all-local pull and push complete synchronously, no message", () => {
  const { ps, sent } = setup("lapse");
  const out = new Float32Array(4);
  assert.equal(ps.pull(0, Uint32Array.of(1, 3), out), undefined);
  assert.deepEqual([...out], [1, 10, 3, 30]);
  assert.equal(ps.push(0, Uint32Array.of(1), Float32Array.of(0.5, 0.5)), undefined);
  assert.equal(ps.pull(0, Uint32Array.of(1), out), undefined);
  assert.deepEqual([...out.subarray(0, 2)], [1.5, 10.5]);
  assert.equal(ps.localize(0, Uint32Array.of(0, 2)), undefined, "already local: nothing to do");
  assert.equal(sent.length, 0);
  assert.deepEqual(ps.takeCounters(), { local: 4, remote: 0 });
});

Deno.test("worker API: remote keys of one call go out as one message; the reply lands in place", async () => {
  const { ps, sent } = setup("lapse");
  const out = new Float32Array(8).fill(-1);
  const p = ps.pull(0, Uint32Array.of(5, 1, 7, 2), out);
  assert.ok(p instanceof Promise);
  assert.equal(sent.length, 1);
  const m = sent[0] as Extract<ToServer, { op: "pull" }>;
  assert.equal(m.op, "pull");
  assert.deepEqual([...m.keys], [5, 7], "only the keys that are not local");
  assert.deepEqual([...out], [-1, -1, 1, 10, -1, -1, 2, 20], "local keys are filled at once");
  ps.onServerMessage({ op: "reply", id: m.id, vals: Float32Array.of(50, 51, 70, 71) });
  await p;
  assert.deepEqual([...out], [50, 51, 1, 10, 70, 71, 2, 20]);
  assert.deepEqual(ps.takeCounters(), { local: 2, remote: 2 });
});

Deno.test("worker API: remote pushes carry their own copy of the deltas; wait() covers them", async () => {
  const { ps, sent } = setup("lapse");
  const deltas = Float32Array.of(1, 2, 3, 4);
  const p = ps.push(0, Uint32Array.of(6, 0), deltas);
  assert.ok(p instanceof Promise);
  deltas.fill(0); // the caller may reuse its buffer at once
  const m = sent[0] as Extract<ToServer, { op: "push" }>;
  assert.deepEqual([...m.keys], [6]);
  assert.deepEqual([...m.vals], [1, 2]);
  let waited = false;
  const w = ps.wait().then(() => waited = true);
  await Promise.resolve();
  assert.equal(waited, false, "wait() waits for the outstanding push");
  ps.onServerMessage({ op: "reply", id: m.id, vals: null });
  await w;
  assert.equal(waited, true);
});

Deno.test("worker API: classic_remote sends even local keys; classic ignores localize", () => {
  const r = setup("classic_remote");
  const out = new Float32Array(2);
  assert.ok(r.ps.pull(0, Uint32Array.of(1), out) instanceof Promise);
  assert.deepEqual([...(r.sent[0] as Extract<ToServer, { op: "pull" }>).keys], [1]);
  assert.equal(r.ps.pullIfLocal(0, 1, out), false);
  assert.equal(r.ps.acquire(0, 1), -1);
  const c = setup("classic");
  assert.equal(c.ps.localize(0, Uint32Array.of(6, 7)), undefined);
  assert.equal(c.sent.length, 0);
});

Deno.test("worker API: acquire gives in-place access under the key lock", () => {
  const { t, ps } = setup("lapse");
  const at = ps.acquire(0, 2);
  assert.ok(at >= 0);
  assert.equal(Atomics.load(t.locks, 2), 1, "the key is locked while acquired");
  ps.values(0)[at] += 5;
  ps.release(0, 2);
  assert.equal(Atomics.load(t.locks, 2), 0);
  const out = new Float32Array(2);
  ps.pullIfLocal(0, 2, out);
  assert.deepEqual([...out], [7, 20]);
  assert.equal(ps.acquire(0, 6), -1, "not local: nothing held");
  assert.equal(Atomics.load(t.locks, 6), 0);
});

Deno.test("worker API: bad calls are RangeErrors that name the fix", () => {
  const { ps } = setup("lapse", 2);
  assert.throws(() => ps.table("V"), /Unknown table "V": this job has "W"/);
  assert.throws(() => ps.pull(3, Uint32Array.of(1), new Float32Array(2)), /Unknown table id 3/);
  assert.throws(
    () => ps.pull(0, Uint32Array.of(1, 2, 3), new Float32Array(6)),
    /above ps.batch_keys_max \(2\): split the batch/,
  );
  assert.throws(() => ps.push(0, Uint32Array.of(1), new Float32Array(3)), /needs 2 floats, got 3/);
});
