import assert from "node:assert/strict";
import type { JobConfig, LocalizeDirective } from "../../core/types.ts";
import { mfResumeState, mfSettings, task } from "../../tasks/mf.ts";
import { isUserError } from "../../core/errors.ts";
import { runPlainMf } from "../../tasks/mf_plain.ts";
import { runFakeJob } from "./fake_ps.ts";

const MF_LOCALIZE: LocalizeDirective[] = [
  { table: "W", when: "start", keys: "partition" },
  { table: "H", when: "block", schedule: "dsgd", keys: "block" },
];

/** A small generated problem: 600 x 500, 60k ratings, true rank 5, noise 0.1. */
function smallConfig(over: {
  nodes?: number;
  mode?: "lapse" | "classic";
  placement?: "range" | "random";
  localize?: LocalizeDirective[];
  epochs?: number;
  data?: Record<string, any>;
  model?: Record<string, any>;
} = {}): JobConfig {
  return {
    task: "mf",
    seed: 7,
    cluster: { nodes: over.nodes ?? 1, workers_per_node: 1 },
    ps: {
      mode: over.mode ?? "lapse",
      location_caches: true,
      placement: over.placement ?? "range",
      max_frame_bytes: 1 << 26,
      batch_keys_max: 1e6,
    },
    localize: over.localize ?? MF_LOCALIZE,
    data: over.data ?? {
      generate: { rows: 600, cols: 500, nnz: 60000, rank: 5, noise: 0.1, seed: 3 },
      test_fraction: 0.1,
    },
    model: over.model ?? {
      rank: 5,
      lr: 0.08,
      lambda: 0.005,
      epochs: over.epochs ?? 12,
      lr_schedule: "decay",
      decay: 0.2,
      init_scale: 0.3,
    },
  };
}

Deno.test("mf on a 1-worker fake PS: test RMSE drops near the noise, all accesses local", async () => {
  const config = smallConfig();
  const r = await runFakeJob(task, config);
  assert.equal(r.metrics.length, 12);
  const first = r.metrics[0].test_rmse, last = r.metrics[11].test_rmse;
  assert.ok(first > 0.5, `first epoch test RMSE ${first} should still be high`);
  assert.ok(last < 0.125, `final test RMSE ${last} should be near the noise 0.1`);
  assert.ok(r.metrics[11].train_rmse < 0.15, `train RMSE ${r.metrics[11].train_rmse}`);
  // Every epoch reports all training and test ratings once.
  assert.equal(r.sums[0].train_n + r.sums[0].test_n, 60000);
  assert.equal(r.epochPoints, r.sums[0].train_n);
  assert.equal(r.progress, r.sums[0].train_n * 12);
  assert.ok(Math.abs(r.sums[0].test_n / 60000 - 0.1) < 0.01, `test share ${r.sums[0].test_n}`);
  assert.equal(r.counters.remote, 0);
  assert.ok(r.counters.local >= 2 * r.sums[0].train_n * 12);
  // lr schedule decay: lr_e = 0.08 / (1 + 0.2 e)
  assert.ok(Math.abs(r.metrics[5].lr - 0.08 / 2) < 1e-12, `lr ${r.metrics[5].lr}`);
});

Deno.test("mf DSGD on 2 fake nodes with localize: converges, training accesses local", async () => {
  const config = smallConfig({ nodes: 2, placement: "random" });
  const r = await runFakeJob(task, config);
  const last = r.metrics.at(-1)!.test_rmse;
  assert.ok(last < 0.125, `final test RMSE ${last}`);
  assert.equal(r.sums[0].workers, 2);
  assert.equal(r.sums[0].train_n + r.sums[0].test_n, 60000);
  // 1 "loaded" barrier, then 2 subepochs + 1 evaluation barrier per epoch.
  assert.equal(r.cluster.barriers, 1 + 12 * 3);
  assert.ok(r.workers.every((w) => w.localized > 0), "both workers localized keys");
  // Only the test evaluation may pull remote H rows.
  const share = r.counters.local / (r.counters.local + r.counters.remote);
  assert.ok(share > 0.99, `local share ${share}`);
});

Deno.test("mf in classic mode: batched and per-rating remote paths agree and converge", async () => {
  const model = {
    rank: 5,
    lr: 0.08,
    lambda: 0.005,
    epochs: 6,
    lr_schedule: "decay",
    decay: 0.2,
    init_scale: 0.3,
  };
  const cfg = (remote_batch: number) =>
    smallConfig({
      nodes: 2,
      mode: "classic",
      placement: "random",
      model: { ...model, remote_batch },
    });
  const one = await runFakeJob(task, cfg(1), "classic");
  const batched = await runFakeJob(task, cfg(256), "classic");
  for (const r of [one, batched]) {
    assert.ok(r.counters.remote > r.sums[0].train_n / 2, `remote ${r.counters.remote}`);
    assert.ok(r.workers.every((w) => w.localized === 0));
    const last = r.metrics.at(-1)!.test_rmse;
    assert.ok(last < 0.125, `final test RMSE ${last}`);
  }
  // DSGD makes the window exact: the same model up to float rounding.
  for (let e = 0; e < 6; e++) {
    const a = one.metrics[e].test_rmse, b = batched.metrics[e].test_rmse;
    assert.ok(Math.abs(a - b) < 1e-3 * a, `epoch ${e}: ${a} vs ${b}`);
  }
  const calls = (r: typeof one) => r.workers.reduce((x, w) => x + w.remoteCalls, 0);
  assert.ok(calls(batched) * 50 < calls(one), `remote calls ${calls(batched)} vs ${calls(one)}`);
});

Deno.test("mf without localize directives and bold driver on 2 nodes converges", async () => {
  const config = smallConfig({
    nodes: 2,
    localize: [],
    model: { rank: 5, lr: 0.05, lambda: 0.005, epochs: 10, lr_schedule: "bold_driver" },
  });
  const r = await runFakeJob(task, config);
  assert.ok(r.workers.every((w) => w.localized === 0));
  assert.ok(r.counters.remote > 0);
  const last = r.metrics.at(-1)!.test_rmse;
  assert.ok(last < 0.125, `final test RMSE ${last}`);
  // Bold driver: the rate changed from its start value.
  assert.notEqual(r.metrics.at(-1)!.lr, 0.05);
});

Deno.test("mf reads a CSV file through the task", async () => {
  // A rank-1 matrix 40 x 30, fully observed, 1-based with a header.
  const path = await Deno.makeTempFile({ suffix: ".csv" });
  try {
    const lines = ["user,item,rating"];
    for (let i = 0; i < 40; i++) {
      for (let j = 0; j < 30; j++) {
        lines.push(`${i + 1},${j + 1},${((i % 5) - 2) * ((j % 3) - 1) * 0.5}`);
      }
    }
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    const config = smallConfig({
      nodes: 2,
      data: { file: path, rows: 40, cols: 30, index_base: 1, test_fraction: 0.1 },
      model: { rank: 3, lr: 0.05, lambda: 0.001, epochs: 30, lr_schedule: "constant" },
    });
    const r = await runFakeJob(task, config);
    assert.equal(r.sums[0].train_n + r.sums[0].test_n, 1200);
    const first = r.metrics[0].train_rmse, last = r.metrics.at(-1)!.train_rmse;
    assert.ok(last < first / 3, `train RMSE ${first} -> ${last}`);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("mf config checks", () => {
  const both = smallConfig({
    data: { generate: { rows: 10, cols: 10, nnz: 10 }, file: "x.csv", rows: 10, cols: 10 },
  });
  assert.throws(() => mfSettings(both), /both given/);
  assert.throws(() => task.tables(both), /both given/);
  assert.throws(() => mfSettings(smallConfig({ data: { test_fraction: 0.1 } })), /exactly one/);
  assert.throws(() => mfSettings(smallConfig({ data: { file: "x.csv" } })), /data.rows/);
  assert.throws(
    () => mfSettings(smallConfig({ localize: [{ table: "W", when: "block", schedule: "dsgd" }] })),
    /does not understand/,
  );
  assert.throws(
    () => mfSettings(smallConfig({ data: { generate: { rows: 3, cols: 3, nnz: 10 } } })),
    /exceeds/,
  );
  const s = mfSettings(smallConfig({ data: { generate: { rows: 9, cols: 8, nnz: 20 } } }));
  assert.equal(s.generate?.rank, 10);
  assert.equal(s.generate?.test_fraction, 0.1);
  assert.ok(s.localizeW && s.localizeH);
  const t = task.tables(smallConfig({ data: { generate: { rows: 9, cols: 8, nnz: 20 } } }));
  // rank 5, then the bias: W and H rows of 6 floats; G holds (sum, sum of squares, count).
  assert.deepEqual(t.map((x) => [x.name, x.keys, x.dim]), [["W", 9, 6], ["H", 8, 6], ["G", 1, 3]]);
  const plain = task.tables(smallConfig({
    data: { generate: { rows: 9, cols: 8, nnz: 20 } },
    model: { rank: 5, biases: false, standardize: false },
  }));
  assert.deepEqual(plain.map((x) => [x.name, x.keys, x.dim]), [["W", 9, 5], ["H", 8, 5]]);
  assert.deepEqual(task.schema.defaultLocalize, MF_LOCALIZE);
});

Deno.test("mf summarize", () => {
  const m = task.summarize({
    loss_sum: 8,
    train_n: 2,
    test_sse: 9,
    test_n: 4,
    lr_sum: 0.2,
    workers: 2,
  });
  assert.deepEqual(m, { train_loss: 4, train_rmse: 2, test_rmse: 1.5, lr: 0.1 });
});

Deno.test("plain mf loop reaches test RMSE near the noise", async () => {
  const config = smallConfig({
    data: {
      generate: { rows: 1500, cols: 1500, nnz: 200000, rank: 5, noise: 0.1, seed: 5 },
      test_fraction: 0.1,
    },
  });
  const r = await runPlainMf(config);
  assert.equal(r.epoch_s.length, 12);
  assert.equal(r.train_n + r.test_n, 200000);
  assert.ok(r.epochs[0].test_rmse > 0.5, `first epoch ${r.epochs[0].test_rmse}`);
  assert.ok(r.test_rmse < 0.12, `test RMSE ${r.test_rmse}`);
  assert.ok(r.points_per_s > 0);
});

Deno.test("mf resume: the next epoch of a checkpoint; one taken after the last epoch is refused", () => {
  const state = { epoch: 3, lr: 0.01, prev_loss: 0.5, seed: 7 };
  assert.deepEqual(mfResumeState(state, 7, 5), { firstEpoch: 3, lr: 0.01, prevLoss: 0.5 });
  assert.throws(() => mfResumeState(state, 7, 3), (e) => {
    assert.ok(isUserError(e), String(e));
    assert.match(
      (e as Error).message,
      /after epoch 2, the last one of a 3-epoch job.*model\.epochs/,
    );
    return true;
  });
  assert.throws(() => mfResumeState(state, 8, 5), /does not fit this job \(seed 8\)/);
});
