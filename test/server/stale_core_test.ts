/**
 * The bounded-staleness protocol of PsCore, message by message on the simulated network: a
 * pull waits at the key's owner until every worker has flushed up to the clock it needs (the
 * CLOCK message follows the worker's pushes on the same FIFO link), and a worker idle in a
 * barrier holds back only the pulls of workers that have not passed that barrier.
 */
import assert from "node:assert/strict";
import { SimCluster } from "./sim_network.ts";

/** 2 nodes, one worker each (global 0 on node 0, 1 on node 1); keys 0-1 on node 0, 2-3 on 1. */
function cluster(): SimCluster {
  return new SimCluster({
    nodes: 2,
    tables: [{ name: "C", keys: 4, dim: 1, init: { kind: "zero" } }],
    mode: "stale",
    placement: "range",
    workers: 2,
  });
}

Deno.test("stale core: a pull waits at the owner until every worker flushed the clocks it needs", () => {
  const sim = cluster();
  // Worker 0 flushes clock 0: a push to key 2 (owned by node 1), then its CLOCK.
  sim.push(0, 0, 0, [2], 1);
  sim.cores[0].workerClock(0, 1);
  // Worker 1 at clock 1 pulls key 2 with staleness 0: it needs clock 1 of everybody.
  const t = sim.pull(1, 0, 0, [2], 1, 0);
  sim.run();
  assert.equal(t.done, false, "worker 1 itself has not flushed clock 0 yet");
  assert.equal(sim.cores[1].parkedPulls, 1);
  sim.cores[1].workerClock(1, 1);
  sim.run();
  assert.equal(t.done, true);
  assert.deepEqual(t.row(0, 1), [1], "worker 0's flushed push is in the value");
  assert.equal(t.clock, 1, "the value is fresh to clock 1");
  assert.equal(sim.cores[1].parkedPulls, 0);
  // A remote pull waits at the owner too: node 0 asks node 1, which holds it back.
  const r = sim.pull(0, 0, 0, [3], 2, 0);
  sim.run();
  assert.equal(r.done, false);
  sim.cores[0].workerClock(0, 2);
  sim.cores[1].workerClock(1, 2);
  sim.run();
  assert.equal(r.done, true);
  assert.equal(r.clock, 2);
});

Deno.test("stale core: an idle worker holds back only readers that have not passed its barrier", () => {
  const sim = cluster();
  sim.cores[0].workerClock(0, 3);
  // Worker 1 waits in its first barrier (0 barriers done) at clock 0.
  sim.cores[1].workerClock(1, 0, 0);
  sim.run();
  // Worker 0 has not passed that barrier: worker 1 pushes nothing before it does, and all its
  // later pushes belong to clocks >= worker 0's; waiting could deadlock. Served, stamped 0.
  const before = sim.pull(0, 0, 0, [2], 3, 0);
  sim.run();
  assert.equal(before.done, true);
  assert.equal(before.clock, 0, "fresh only to what worker 1 flushed");
  // A reader past that barrier must not count on the idle mark (it is old news: worker 1 may
  // have left the barrier and pushed already): it waits for worker 1's next clock.
  const after = sim.pull(0, 0, 0, [2], 3, 1);
  sim.run();
  assert.equal(after.done, false);
  sim.cores[1].workerClock(1, 3); // worker 1 left the barrier at the largest clock, 3
  sim.run();
  assert.equal(after.done, true);
  assert.equal(after.clock, 3);
});
