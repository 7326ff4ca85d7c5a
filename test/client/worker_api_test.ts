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

/** A WorkerPs over a large table (keys 0..3 local) that records what it posts. */
function setupLarge(keys = 40_000) {
  const t = Table.create(0, { name: "W", keys, dim: 2 }, 8);
  for (let k = 0; k < 4; k++) t.insert(k, Float32Array.of(k, 10 * k), 0);
  const sent: [ToServer, Transferable[] | undefined][] = [];
  const ps = new WorkerPs([t.shared], "lapse", (m, transfer) => sent.push([m, transfer]));
  return { ps, sent };
}

Deno.test("worker API: request arrays are transferred, not copied", () => {
  const { ps, sent } = setupLarge();
  void ps.pull(0, Uint32Array.of(9, 1), new Float32Array(4));
  void ps.push(0, Uint32Array.of(9, 1, 8), new Float32Array(6));
  void ps.localize(0, Uint32Array.of(9));
  const [pull, push, localize] = sent as [any, Transferable[]][];
  assert.deepEqual(pull[1], [pull[0].keys.buffer]);
  assert.deepEqual(push[1], [push[0].keys.buffer, push[0].vals.buffer]);
  assert.deepEqual(localize[1], [localize[0].keys.buffer]);
  assert.deepEqual([...push[0].keys], [9, 8]);
});

Deno.test("worker API: runs of remote keys are copied in bulk, both ways", async () => {
  const { ps, sent } = setupLarge();
  // Remote runs 5-7 and 9-10 around local keys 1 and 2.
  const keys = Uint32Array.of(5, 6, 7, 1, 9, 10, 2);
  const deltas = Float32Array.from({ length: 14 }, (_, i) => i);
  void ps.push(0, keys, deltas);
  const push = sent[0][0] as Extract<ToServer, { op: "push" }>;
  assert.deepEqual([...push.keys], [5, 6, 7, 9, 10]);
  assert.deepEqual([...push.vals], [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]);
  const out = new Float32Array(14).fill(-1);
  const p = ps.pull(0, keys, out);
  const pull = sent[1][0] as Extract<ToServer, { op: "pull" }>;
  ps.onServerMessage({
    op: "reply",
    id: pull.id,
    vals: Float32Array.from({ length: 10 }, (_, i) => 100 + i),
  });
  await p;
  // (local keys 1 and 2 got the push at once)
  assert.deepEqual([...out], [100, 101, 102, 103, 104, 105, 7, 17, 106, 107, 108, 109, 14, 33]);
});

Deno.test("worker API: the buffer of a large answer carries the next large requests", async () => {
  const { ps, sent } = setupLarge();
  const n = 20_000, dim = 2; // 160 KB of values: worth reusing
  const keys = Uint32Array.from({ length: n }, (_, i) => 100 + i);
  const out = new Float32Array(n * dim);
  const answer = () => {
    const msg = sent.at(-1)![0] as Extract<ToServer, { op: "pull" }>;
    const vals = new Float32Array(n * dim + 16).subarray(0, n * dim).fill(msg.id);
    ps.onServerMessage({ op: "reply", id: msg.id, vals });
    return vals.buffer;
  };
  const p1 = ps.pull(0, keys, out)!;
  const first = sent[0][0] as Extract<ToServer, { op: "pull" }>;
  assert.equal(first.keys.buffer.byteLength, n * 4, "no answer yet: fresh keys");
  const b1 = answer();
  await p1;
  assert.ok(out.every((x) => x === first.id));
  // The next pull's keys travel at the front of the first answer's buffer (the server thread
  // answers a later pull in it), and are exact.
  const p2 = ps.pull(0, keys, out)!;
  const second = sent[1][0] as Extract<ToServer, { op: "pull" }>;
  assert.equal(second.keys.buffer, b1);
  assert.equal(second.keys.length, n);
  assert.deepEqual([...second.keys.subarray(0, 3)], [100, 101, 102]);
  const b2 = answer();
  await p2;
  assert.ok(out.every((x) => x === second.id));
  // A push copies its deltas into a spare buffer, too.
  void ps.push(0, keys, new Float32Array(n * dim).fill(0.5));
  const push = sent[2][0] as Extract<ToServer, { op: "push" }>;
  assert.equal(push.vals.buffer, b2);
  assert.equal(push.vals.length, n * dim);
  assert.ok(push.vals.every((x) => x === 0.5));
  // No spare left: the next large request is fresh again; small ones always are.
  void ps.push(0, keys, new Float32Array(n * dim));
  assert.notEqual((sent[3][0] as Extract<ToServer, { op: "push" }>).vals.buffer, b1);
  assert.notEqual((sent[3][0] as Extract<ToServer, { op: "push" }>).vals.buffer, b2);
});

Deno.test("worker API: a key that arrives during a pull is read in position order (duplicates)", async () => {
  // The rare "went backwards" of pscheck: a pull of [5, 5] where key 5 arrives (a TRANSFER
  // inserted by the server thread) between the worker's two local reads. Position 0 missed and
  // went to the server thread, which read it later (after more pushes) than position 1 was read
  // locally: the later position held the older value. Every later position of a key that
  // missed must go the same way, in one request, in position order.
  const { t, ps, sent } = setup("lapse");
  const pullLocal = Table.prototype.pullLocal;
  let calls = 0;
  Table.prototype.pullLocal = function (key, out, offset) {
    const hit = pullLocal.call(this, key, out, offset);
    // After the first (missed) read of key 5, the transfer arrives: the server thread inserts.
    if (++calls === 1 && key === 5 && !hit) t.insert(5, Float32Array.of(7, 7), 0);
    return hit;
  };
  const out = new Float32Array(6).fill(-1);
  let p: Promise<void> | undefined;
  try {
    p = ps.pull(0, Uint32Array.of(5, 1, 5), out);
  } finally {
    Table.prototype.pullLocal = pullLocal;
  }
  assert.ok(p instanceof Promise);
  const m = sent[0] as Extract<ToServer, { op: "pull" }>;
  assert.deepEqual([...m.keys], [5, 5], "both positions of key 5 go to the server thread");
  // The server thread reads key 5 once more pushes were applied: both positions see that.
  ps.onServerMessage({ op: "reply", id: m.id, vals: Float32Array.of(8, 8, 8, 8) });
  await p;
  assert.deepEqual([...out], [8, 8, 1, 10, 8, 8]);
});

Deno.test("worker API: a push's deltas given back with its answer carry the next large request", async () => {
  const n = 20_000, dim = 2; // 160 KB of deltas: large enough to be kept
  const t = Table.create(0, { name: "W", keys: n, dim }, 1); // nothing local
  const sent: ToServer[] = [];
  const ps = new WorkerPs([t.shared], "lapse", (m) => sent.push(m), n);
  const keys = Uint32Array.from({ length: n }, (_, i) => i);
  const p = ps.push(0, keys, new Float32Array(n * dim).fill(1))!;
  const push = sent[0] as Extract<ToServer, { op: "push" }>;
  ps.onServerMessage({ op: "reply", id: push.id, vals: null, spare: push.vals });
  await p;
  const q = ps.pull(0, keys, new Float32Array(n * dim))!;
  const pull = sent[1] as Extract<ToServer, { op: "pull" }>;
  assert.ok(pull.keys.buffer === push.vals.buffer, "the pull's keys travel in the push's buffer");
  const answer = new Float32Array(n * dim);
  ps.onServerMessage({ op: "reply", id: pull.id, vals: answer });
  await q;
  // The push's buffer left with the pull; the pull's answer carries the next push.
  const r = ps.push(0, keys, new Float32Array(n * dim))!;
  const again = sent[2] as Extract<ToServer, { op: "push" }>;
  assert.ok(again.vals.buffer === answer.buffer);
  ps.onServerMessage({ op: "reply", id: again.id, vals: null });
  await r;
});

Deno.test("worker API: an all-remote pull into shared memory is written in place by the server", async () => {
  const { ps, sent } = setup("lapse");
  const out = new Float32Array(new SharedArrayBuffer(4 * 6)).fill(-1);
  const p = ps.pull(0, Uint32Array.of(5, 7), out.subarray(0, 4))!;
  const m = sent[0] as Extract<ToServer, { op: "pull" }>;
  assert.deepEqual([...m.keys], [5, 7]);
  assert.ok(m.into !== undefined && m.into.buffer === out.buffer && m.into.length === 4);
  m.into.set([50, 51, 70, 71]); // what the server thread does
  ps.onServerMessage({ op: "reply", id: m.id, vals: null });
  await p;
  assert.deepEqual([...out], [50, 51, 70, 71, -1, -1]);
  // A call with a local key, or into unshared memory, gets its answer as an array.
  const q = ps.pull(0, Uint32Array.of(5, 1), out.subarray(0, 4))!;
  const m2 = sent[1] as Extract<ToServer, { op: "pull" }>;
  assert.equal(m2.into, undefined);
  ps.onServerMessage({ op: "reply", id: m2.id, vals: Float32Array.of(8, 9) });
  await q;
  assert.deepEqual([...out.subarray(0, 4)], [8, 9, 1, 10]);
  const plain = new Float32Array(4);
  const r = ps.pull(0, Uint32Array.of(5, 7), plain)!;
  const m3 = sent[2] as Extract<ToServer, { op: "pull" }>;
  assert.equal(m3.into, undefined);
  ps.onServerMessage({ op: "reply", id: m3.id, vals: Float32Array.of(1, 2, 3, 4) });
  await r;
  assert.deepEqual([...plain], [1, 2, 3, 4]);
});
