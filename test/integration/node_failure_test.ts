/**
 * A node that dies during a job: node 0 aborts the job on the others and the driver gets one
 * clear error; the surviving nodes stay up, refuse jobs while the cluster is incomplete, and
 * run jobs again once the dead node is restarted. Real `lapse serve` processes, real TCP.
 */
import assert from "node:assert/strict";
import { JobError, runJob } from "../../driver/driver.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as pscheck } from "../../tasks/pscheck.ts";
import { freePorts, serveArgs } from "./helpers.ts";

const TOKEN = "node-failure-test-token";

function startNode(clusterFile: string, node: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [...serveArgs(clusterFile, node, "--quiet")],
    env: { LAPSE_TOKEN: TOKEN },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

function config(rounds: number) {
  return validateJobConfig({
    task: "pscheck",
    data: {},
    model: { keys: 64, rounds, pattern: "all" },
    cluster: { nodes: 2, workers_per_node: 1 },
    ps: { mode: "lapse" },
  }, pscheck.schema);
}

Deno.test("a node dying mid-job fails the job clearly; a restarted node rejoins", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-failure-" });
  const [p0, p1] = freePorts(2);
  const clusterFile = `${dir}/cluster.yaml`;
  await Deno.writeTextFile(
    clusterFile,
    `nodes: ["127.0.0.1:${p0}", "127.0.0.1:${p1}"]\nconnect_timeout_ms: 20000\n`,
  );
  const address = `127.0.0.1:${p0}`;
  const node0 = startNode(clusterFile, 0);
  let node1 = startNode(clusterFile, 1);
  try {
    // A job far too long to finish: node 1 is killed once it has started.
    let started!: () => void;
    const running = new Promise<void>((r) => started = r);
    const job = runJob(
      address,
      TOKEN,
      config(50_000_000),
      {
        onProgress: (points) => points > 0 && started(),
      },
      20_000,
      AbortSignal.timeout(60_000),
    );
    await Promise.race([running, job]);
    node1.kill("SIGKILL");
    await node1.status;
    await assert.rejects(job, (e: unknown) => {
      assert.ok(e instanceof JobError);
      assert.match(e.message, /job failed: node 1 left the cluster/);
      return true;
    });
    // Node 0 is still up and says what is missing.
    await assert.rejects(
      runJob(address, TOKEN, config(10), {}, 10_000),
      /not every node of the cluster is connected \(missing: node 1\)/,
    );
    // Node 1 comes back: it dials node 0 again, and jobs run.
    node1 = startNode(clusterFile, 1);
    let summary = null;
    for (let attempt = 0; attempt < 50 && summary === null; attempt++) {
      try {
        summary = await runJob(address, TOKEN, config(20), {}, 10_000);
      } catch (e) {
        if (!/not every node/.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    assert.ok(summary !== null, "the restarted node rejoined within 10 s");
    assert.equal(summary.nodes.length, 2);
  } finally {
    for (const p of [node0, node1]) {
      try {
        p.kill("SIGKILL");
      } catch { /* gone */ }
      await p.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});
