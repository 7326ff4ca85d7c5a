/**
 * Embedded local clusters (driver/local_cluster.ts) never share ports: every node listens on a
 * port the OS picked for it (port 0) before the driver learns it, so no other program can take
 * it in between, and concurrent `lapse train` runs each get a cluster of their own.
 */
import assert from "node:assert/strict";
import { startLocalCluster } from "../../driver/local_cluster.ts";
import { launchJob } from "../../driver/launch.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as pscheck } from "../../tasks/pscheck.ts";
import { parseAddress } from "../../core/host_port.ts";

Deno.test("a local cluster's nodes listen on their ports when startLocalCluster returns", async () => {
  const lines: string[] = [];
  const cluster = await startLocalCluster({
    nodes: 3,
    workersPerNode: 1,
    onLine: (n, l) => lines.push(`node ${n} | ${l}`),
  });
  try {
    assert.equal(cluster.addresses.length, 3);
    assert.equal(new Set(cluster.addresses).size, 3, cluster.addresses.join(" "));
    // Listening already (not merely picked): a connection is accepted at once.
    for (const a of cluster.addresses) {
      const { host, port } = parseAddress(a);
      assert.notEqual(port, 0);
      const conn = await Deno.connect({ hostname: host, port });
      conn.close();
    }
    const file = await Deno.readTextFile(`${cluster.dir}/cluster.yaml`);
    for (const a of cluster.addresses) assert.ok(file.includes(`"${a}"`), file);
  } catch (e) {
    console.error(lines.join("\n"));
    throw e;
  } finally {
    await cluster.stop();
  }
});

Deno.test("6 embedded clusters started at once all run their job", async () => {
  const runs = Array.from({ length: 6 }, async (_, i) => {
    const config = validateJobConfig({
      task: "pscheck",
      seed: i + 1,
      data: {},
      model: { pattern: "all", keys: 16, rounds: 5 },
      cluster: { nodes: 2, workers_per_node: 1 },
      ps: { mode: i % 2 === 0 ? "lapse" : "classic" },
    }, pscheck.schema);
    const lines: string[] = [];
    const epochs: Record<string, number>[] = [];
    try {
      await launchJob(config, {
        signal: AbortSignal.timeout(180_000),
        events: { onEpoch: (e, m) => void (epochs[e] = m) },
        onNodeLine: (n, l) => lines.push(`cluster ${i} node ${n} | ${l}`),
      });
    } catch (e) {
      console.error(lines.join("\n"));
      throw new Error(`cluster ${i}: ${(e as Error).message}`);
    }
    assert.equal(epochs.length, 1, `cluster ${i}`);
    assert.equal(epochs[0].mismatched_keys, 0, `cluster ${i}`);
    assert.equal(epochs[0].seen_min, 2 * 5, `cluster ${i}`);
  });
  const results = await Promise.allSettled(runs);
  const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
  assert.deepEqual(failed.map((r) => String(r.reason)), []);
});
