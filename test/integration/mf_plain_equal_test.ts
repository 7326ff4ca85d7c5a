/**
 * The plain mf baseline computes what the mf task computes at 1 node x 1 worker: same initial
 * model, same data order, same kernel and lr schedule, same evaluation. So the `plain` row of
 * `lapse bench mf` is like for like with the cluster rows. Only the test RMSE's sum may differ
 * in its last bits (the task evaluates the test ratings sorted by column).
 */
import assert from "node:assert/strict";
import { launchJob } from "../../driver/launch.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as mf } from "../../tasks/mf.ts";
import { runPlainMf } from "../../tasks/mf_plain.ts";

function config(mode: "lapse" | "classic") {
  return validateJobConfig({
    task: "mf",
    seed: 3,
    data: {
      generate: { rows: 700, cols: 600, nnz: 60000, rank: 5, noise: 0.1, seed: 2 },
      test_fraction: 0.1,
    },
    model: { rank: 8, lr: 0.08, lambda: 0.005, epochs: 4, init_scale: 0.2 },
    cluster: { nodes: 1, workers_per_node: 1 },
    ps: { mode },
  }, mf.schema);
}

for (const mode of ["lapse", "classic"] as const) {
  Deno.test(`plain mf loop and mf ${mode} on 1 node x 1 worker: the same test RMSE`, async () => {
    const plain = await runPlainMf(config(mode));
    const epochs: Record<string, number>[] = [];
    const lines: string[] = [];
    try {
      await launchJob(config(mode), {
        signal: AbortSignal.timeout(120_000),
        events: { onEpoch: (e, m) => void (epochs[e] = m) },
        onNodeLine: (node, line) => lines.push(`node ${node} | ${line}`),
      });
    } catch (e) {
      console.error(lines.join("\n"));
      throw e;
    }
    assert.equal(epochs.length, 4);
    for (let e = 0; e < 4; e++) {
      const a = plain.epochs[e], b = epochs[e];
      assert.ok(
        Math.abs(a.test_rmse - b.test_rmse) < 1e-4,
        `epoch ${e}: plain test RMSE ${a.test_rmse}, ${mode} ${b.test_rmse}`,
      );
      assert.ok(
        Math.abs(a.train_rmse - b.train_rmse) < 1e-4,
        `epoch ${e}: plain train RMSE ${a.train_rmse}, ${mode} ${b.train_rmse}`,
      );
      assert.equal(a.lr, b.lr);
    }
    // Training moved the model: equal RMSEs are not two untrained models.
    assert.ok(plain.epochs[3].test_rmse < plain.epochs[0].test_rmse);
  });
}
