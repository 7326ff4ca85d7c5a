import assert from "node:assert/strict";
import { WorkerPs } from "../../client/worker_api.ts";
import { Table } from "../../server/store.ts";
import type { ToServer } from "../../server/worker_protocol.ts";

/** A stale-mode worker on a node holding keys 0..3 of 8 (dim 2); `flushed` is the node's clock. */
function setup(staleness: number) {
  const t = Table.create(0, { name: "W", keys: 8, dim: 2 }, 8);
  for (let k = 0; k < 4; k++) t.insert(k, Float32Array.of(k, 10 * k), 0);
  const sent: ToServer[] = [];
  const clocks = new SharedArrayBuffer(4);
  const ps = new WorkerPs([t.shared], "stale", (m) => sent.push(m), 1000, { staleness, clocks });
  return { t, ps, sent, flushed: new Int32Array(clocks) };
}

Deno.test("stale mode: pushes stay in the worker's cache until clock(); the worker reads its own writes", () => {
  const { t, ps, sent } = setup(1);
  assert.equal(ps.push(0, Uint32Array.of(1, 6), Float32Array.of(1, 1, 2, 2)), undefined);
  assert.equal(sent.length, 0, "nothing leaves before clock()");
  const v = new Float32Array(2);
  t.pullLocal(1, v, 0);
  assert.deepEqual([...v], [1, 10], "the shared value is untouched before the flush");
  const out = new Float32Array(2);
  assert.equal(ps.pull(0, Uint32Array.of(1), out), undefined, "a local key at a fresh clock");
  assert.deepEqual([...out], [2, 11], "value plus the worker's own buffered push");

  assert.equal(ps.clock(), undefined);
  t.pullLocal(1, v, 0);
  assert.deepEqual([...v], [2, 11], "local keys are flushed into shared memory");
  const push = sent[0] as Extract<ToServer, { op: "push" }>;
  assert.equal(push.op, "push");
  assert.deepEqual([...push.keys], [6], "remote keys are flushed as one push");
  assert.deepEqual([...push.vals], [2, 2]);
  assert.deepEqual(sent[1], { op: "clock", clock: 1 }, "the clock goes after its pushes");
  assert.equal(ps.currentClock, 1);
});

Deno.test("stale mode: a cached value is served while at most `staleness` clocks old, then fetched fresh", async () => {
  const { ps, sent, flushed } = setup(1);
  const out = new Float32Array(2);
  // Clock 0: key 5 is remote, fetched (nothing to wait for), answered fresh to clock 0.
  const p = ps.pull(0, Uint32Array.of(5), out);
  assert.ok(p instanceof Promise);
  const m = sent.pop() as Extract<ToServer, { op: "pull" }>;
  assert.equal(m.need, 0);
  ps.onServerMessage({ op: "reply", id: m.id, vals: Float32Array.of(50, 51), clock: 0 });
  await p;
  assert.deepEqual([...out], [50, 51]);
  ps.clock(); // clock 1: 1 clock old is fine with staleness 1
  flushed[0] = 1;
  sent.length = 0;
  assert.equal(ps.pull(0, Uint32Array.of(5), out), undefined, "served from the cache");
  ps.clock(); // clock 2: needs freshness 1, the cached value is fresh to 0
  sent.length = 0;
  const q = ps.pull(0, Uint32Array.of(5), out);
  assert.ok(q instanceof Promise, "too old: fetched");
  const m2 = sent.pop() as Extract<ToServer, { op: "pull" }>;
  assert.equal(m2.need, 1);
  ps.onServerMessage({ op: "reply", id: m2.id, vals: Float32Array.of(60, 61), clock: 2 });
  await q;
  assert.deepEqual([...out], [60, 61]);
  // A local key is read from shared memory only while the node's clock is fresh enough.
  flushed[0] = 0;
  sent.length = 0;
  const r = ps.pull(0, Uint32Array.of(2), out);
  assert.ok(r instanceof Promise, "node clock 0 < need 1: the server thread holds it back");
  assert.equal((sent[0] as Extract<ToServer, { op: "pull" }>).need, 1);
});

Deno.test("stale mode: a barrier flushes, idles the clock, continues from the largest clock and drops the cache", async () => {
  const { ps, sent } = setup(5);
  ps.push(0, Uint32Array.of(7), Float32Array.of(1, 1));
  const b = ps.barrier();
  await Promise.resolve();
  await Promise.resolve();
  const push = sent.find((m) => m.op === "push") as Extract<ToServer, { op: "push" }>;
  assert.ok(push, "buffered pushes go out first");
  ps.onServerMessage({ op: "reply", id: push.id, vals: null });
  for (let i = 0; i < 5 && !sent.some((m) => m.op === "barrier"); i++) await Promise.resolve();
  const idle = sent.find((m) => m.op === "clock") as Extract<ToServer, { op: "clock" }>;
  assert.deepEqual(idle, { op: "clock", clock: 0, idleAt: 0 }, "idle in its first barrier");
  const bar = sent.find((m) => m.op === "barrier") as Extract<ToServer, { op: "barrier" }>;
  assert.equal(bar.clock, 0);
  ps.onServerMessage({ op: "reply", id: bar.id, vals: null, clock: 4 });
  await b;
  assert.equal(ps.currentClock, 4);
  assert.deepEqual(sent[sent.length - 1], { op: "clock", clock: 4 });
  const out = new Float32Array(2);
  assert.ok(ps.pull(0, Uint32Array.of(7), out) instanceof Promise, "the cache was dropped");
});
