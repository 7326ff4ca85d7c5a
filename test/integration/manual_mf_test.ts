/**
 * The `manual` mf baseline (no PS, hand-written DSGD block rotation over raw TCP) against the
 * mf task on a real 2-node lapse cluster: the same data, seed and epochs must give the same
 * model, so test RMSE agrees (the bench compares like with like). Both run here, as real
 * processes on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../core/errors.ts";
import { runOnLocalCluster } from "../../cli/bench/harness.ts";
import { runManualMf } from "../../cli/bench/manual_mf.ts";
import { FRAME_HEADER_BYTES } from "../../cli/bench/manual_frame.ts";
import { loadConfigFromArgs } from "../../cli/train.ts";
import { mfSettings } from "../../tasks/mf.ts";

const MF_YAML = new URL("../../tasks/mf.yaml", import.meta.url).pathname;
const TIMEOUT_S = 120;
const EPOCHS = 4;
const SETS = [
  "data.generate.rows=600",
  "data.generate.cols=500",
  "data.generate.nnz=60000",
  "data.generate.rank=5",
  "model.rank=5",
  `model.epochs=${EPOCHS}`,
  "seed=11",
];

// tasks/mf.yaml's model (SGD, no biases), and the one of rating files (biases, standardized
// ratings, AdaGrad): the manual baseline goes through the same kernel options.
const MODELS = [[], [
  "model.biases=true",
  "model.standardize=true",
  "model.optimizer=adagrad",
  "model.lr=0.3",
]];

Deno.test("manual mf on 2 processes reaches the test RMSE of mf on 2 lapse nodes (within 1%)", async () => {
  for (const model of MODELS) await sameAsLapse([...SETS, ...model]);
});

async function sameAsLapse(sets: string[]): Promise<void> {
  const config = await loadConfigFromArgs(MF_YAML, sets, "2", "1");
  const lines: string[] = [];
  const manual = await runManualMf(config, {
    timeout_s: TIMEOUT_S,
    onLine: (w, l) => lines.push(`worker ${w} | ${l}`),
  });
  assert.equal(manual.status, "ok", `manual run: ${manual.error}\n${lines.join("\n")}`);
  const lapse = await runOnLocalCluster(config, TIMEOUT_S, { verbose: false });
  assert.equal(lapse.status, "ok", `lapse run: ${lapse.error}`);

  assert.equal(manual.epochs.length, EPOCHS);
  assert.equal(lapse.epochs.length, EPOCHS);
  for (let e = 0; e < EPOCHS; e++) {
    const m = manual.epochs[e], l = lapse.epochs[e];
    assert.equal(m.epoch, e);
    const rel = Math.abs(m.test_rmse - l.test_rmse) / l.test_rmse;
    assert.ok(
      rel < 0.01,
      `epoch ${e}: manual test RMSE ${m.test_rmse} vs lapse ${l.test_rmse} (${rel * 100}% apart)`,
    );
    assert.ok(Math.abs(m.lr - l.lr) < 1e-12, `epoch ${e}: lr ${m.lr} vs ${l.lr}`);
    assert.ok(m.epoch_s > 0 && m.points_per_s > 0, `epoch ${e}: timing ${JSON.stringify(m)}`);
    assert.equal(m.local_fraction, 1);
  }
  const last = manual.epochs[EPOCHS - 1];
  assert.ok(
    last.test_rmse < 0.8 * manual.epochs[0].test_rmse,
    `it learns: ${manual.epochs.map((m) => m.test_rmse)}`,
  );
  // Per epoch each of the 2 workers sends its block once in training and once for the test
  // evaluation (plus, from epoch 1, the hand-over to the next epoch's first owner, if the
  // permutation changed): whole blocks of 250 columns x (rank 5 [+ bias] [+ AdaGrad]) floats
  // plus a header.
  const dim = mfSettings(config).dim;
  const frame = FRAME_HEADER_BYTES + 250 * dim * 4;
  assert.equal(manual.epochs[0].messages, 4);
  for (const m of manual.epochs) {
    assert.ok(m.messages === 4 || m.messages === 6, `messages ${m.messages}`);
    assert.equal(m.bytes, m.messages * frame);
  }
  assert.equal(manual.workers.length, 2);
  for (const w of manual.workers) assert.ok(w.train_s > 0, `breakdown ${JSON.stringify(w)}`);
}

Deno.test("manual mf refuses more than one worker per node, naming the flag", async () => {
  const config = await loadConfigFromArgs(MF_YAML, SETS, "2", "2");
  await assert.rejects(
    () => runManualMf(config, { timeout_s: TIMEOUT_S }),
    (e: Error) => e instanceof UsageError && /workers_per_node must be 1, got 2/.test(e.message),
  );
});
