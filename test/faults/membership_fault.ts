/**
 * Membership heals: kill -9 and restart each of node 0, a middle node and the last node of a
 * 3-node cluster; the others keep running, the restarted node rejoins with its id, and a pscheck
 * job passes after each restart. Real processes, real TCP.
 */
import assert from "node:assert/strict";
import { FaultCluster } from "./fault_cluster.ts";

Deno.test("kill -9 and restart of node 0, 1 and 2: the cluster heals each time", async () => {
  const c = await FaultCluster.create(3);
  try {
    await c.untilJobPasses(60_000);
    for (const n of [0, 1, 2]) {
      const before = c.procs.map((p) => p?.pid);
      await c.kill(n);
      c.start(n);
      const s = await c.untilJobPasses(60_000);
      console.log(`node ${n} killed and restarted: a pscheck job passed after ${s.toFixed(1)} s`);
      for (let i = 0; i < 3; i++) {
        assert.ok(await c.alive(i), `node ${i} is running`);
        if (i !== n) assert.equal(c.procs[i]!.pid, before[i], `node ${i} was not restarted`);
      }
    }
    // Every node logged the loss and the return of every other node.
    for (let i = 0; i < 3; i++) {
      for (const n of [0, 1, 2]) {
        if (n === i) continue;
        assert.match(c.logs[i], new RegExp(`lost node ${n}`), `node ${i} logs the loss of ${n}`);
        assert.match(c.logs[i], new RegExp(`node ${n} joined`), `node ${i} logs ${n} joining`);
      }
    }
    c.assertNoBugLines();
  } finally {
    await c.stop();
  }
});
