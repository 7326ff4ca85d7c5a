/**
 * The coordinator never dies of a driver's fault: a driver submits to node 0 while the
 * cluster is incomplete and gives up (Ctrl-C) before the other nodes start; node 0 stays up,
 * prints no bug line, and runs the next job once the cluster is complete.
 */
import assert from "node:assert/strict";
import { runJob } from "../../driver/driver.ts";
import { FaultCluster, pscheckConfig, TOKEN } from "./fault_cluster.ts";

Deno.test("a driver leaving before the cluster is complete does not take node 0 down", async () => {
  const c = await FaultCluster.create(3, false);
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      c.start(0);
      await assert.rejects(
        runJob(c.address, TOKEN, pscheckConfig(3, 20), {}, 20_000, AbortSignal.timeout(2000)),
        /stopped by the driver/,
      );
      c.start(1);
      c.start(2);
      await c.untilJobPasses(60_000);
      assert.ok(await c.alive(0), "node 0 is running");
      c.assertNoBugLines();
      for (const n of [0, 1, 2]) await c.kill(n);
    }
  } finally {
    await c.stop();
  }
});
