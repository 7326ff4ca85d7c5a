/**
 * Failure detection: a node stopped with SIGSTOP during a job fails the job within
 * ps.peer_timeout_ms (plus scheduling slack) with one line naming the node; after SIGCONT the
 * cluster accepts and runs the next job. Real processes, real TCP.
 */
import assert from "node:assert/strict";
import { JobError, runJob } from "../../driver/driver.ts";
import { FaultCluster, pscheckConfig, TOKEN } from "./fault_cluster.ts";

// Short, so the test is quick; not so short that a loaded machine looks like a stopped one.
const PEER_TIMEOUT_MS = 5000;

Deno.test("a stopped node fails the job naming it; after SIGCONT jobs run again", async () => {
  const c = await FaultCluster.create(3);
  try {
    await c.untilJobPasses(60_000);
    let started!: () => void;
    const running = new Promise<void>((r) => started = r);
    const job = runJob(
      c.address,
      TOKEN,
      pscheckConfig(3, 50_000_000, { peer_timeout_ms: PEER_TIMEOUT_MS }),
      { onProgress: (points) => points > 0 && started() },
      10_000,
      AbortSignal.timeout(120_000),
    );
    await Promise.race([running, job]);
    const stoppedAt = performance.now();
    c.signal(1, "SIGSTOP");
    let error: unknown = null;
    try {
      await job;
    } catch (e) {
      error = e;
    }
    const detect_s = (performance.now() - stoppedAt) / 1000;
    console.log(`SIGSTOP of node 1 failed the job after ${detect_s.toFixed(1)} s: ${error}`);
    assert.ok(error instanceof JobError, `the job failed: ${error}`);
    assert.match(error.message, /node 1/);
    assert.doesNotMatch(error.message, /\n/, "one line");
    // Far below the "forever" of a cluster without heartbeats; generous for a loaded machine.
    assert.ok(detect_s < 60, `detected within 60 s, took ${detect_s} s`);
    c.signal(1, "SIGCONT");
    const s = await c.untilJobPasses(60_000, { peer_timeout_ms: PEER_TIMEOUT_MS });
    console.log(`after SIGCONT a pscheck job passed after ${s.toFixed(1)} s`);
    for (let i = 0; i < 3; i++) assert.ok(await c.alive(i), `node ${i} is running`);
    c.assertNoBugLines();
  } finally {
    await c.stop();
  }
});

Deno.test("a stopped node 0 fails the driver's job naming it; after SIGCONT jobs run again", async () => {
  const c = await FaultCluster.create(3);
  try {
    await c.untilJobPasses(60_000);
    let started!: () => void;
    const running = new Promise<void>((r) => started = r);
    const job = runJob(
      c.address,
      TOKEN,
      pscheckConfig(3, 50_000_000, { peer_timeout_ms: PEER_TIMEOUT_MS }),
      { onProgress: (points) => points > 0 && started() },
      10_000,
      AbortSignal.timeout(120_000),
    );
    await Promise.race([running, job]);
    const stoppedAt = performance.now();
    c.signal(0, "SIGSTOP");
    let error: unknown = null;
    try {
      await job;
    } catch (e) {
      error = e;
    }
    const detect_s = (performance.now() - stoppedAt) / 1000;
    console.log(`SIGSTOP of node 0 failed the job after ${detect_s.toFixed(1)} s: ${error}`);
    assert.ok(error instanceof JobError, `the job failed: ${error}`);
    assert.match(error.message, /node 0 .*sent nothing/);
    assert.ok(detect_s < 60, `detected within 60 s, took ${detect_s} s`);
    c.signal(0, "SIGCONT");
    const s = await c.untilJobPasses(60_000, { peer_timeout_ms: PEER_TIMEOUT_MS });
    console.log(`after SIGCONT a pscheck job passed after ${s.toFixed(1)} s`);
    for (let i = 0; i < 3; i++) assert.ok(await c.alive(i), `node ${i} is running`);
    c.assertNoBugLines();
  } finally {
    await c.stop();
  }
});
