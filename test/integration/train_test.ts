/**
 * End to end: the README demo (`lapse train --config tasks/mf.yaml`) as a user runs it, with a
 * metrics file: an embedded 2-node cluster of real processes training matrix factorization.
 * It must learn the synthetic data down to (near) its noise floor, with every training access
 * local under lapse.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";

const ROOT = new URL("../../", import.meta.url).pathname;
const MF_YAML = new URL("../../tasks/mf.yaml", import.meta.url).pathname;
const DEADLINE_MS = 240_000;

const METRIC_KEYS = [
  "epoch_s",
  "points_per_s",
  "local_fraction",
  "messages",
  "bytes",
  "test_rmse",
] as const;

Deno.test("lapse train --config tasks/mf.yaml learns to the noise floor, all local", async () => {
  const yaml = parse(await Deno.readTextFile(MF_YAML));
  const noise: number = yaml.data.generate.noise;
  const epochs: number = yaml.model.epochs;
  assert.ok(noise > 0 && epochs > 0, "tasks/mf.yaml has data.generate.noise and model.epochs");

  const dir = await Deno.makeTempDir({ prefix: "lapse-train-test-" });
  const metricsFile = `${dir}/metrics.jsonl`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "cli/main.ts",
      "train",
      "--config",
      MF_YAML,
      "--metrics",
      metricsFile,
      "--quiet",
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Bounded: a hung job is interrupted (on SIGINT lapse train stops its embedded cluster, and
  // the nodes also exit when lapse train does: their stdin is its pipe); the test fails.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGINT");
    } catch { /* exited */ }
  }, DEADLINE_MS);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    const stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
    const show = `--- stdout:\n${stdout}--- stderr:\n${stderr}`;
    assert.ok(!timedOut, `the demo did not end within ${DEADLINE_MS} ms\n${show}`);
    assert.equal(out.code, 0, `exit status\n${show}`);

    const lines = (await Deno.readTextFile(metricsFile)).trim().split("\n")
      .map((l) => JSON.parse(l) as Record<string, any>);
    // A header (run id, time, config, cluster), the epochs, a summary of the same run.
    const header = lines[0], summary = lines[lines.length - 1];
    assert.equal(header.type, "header", JSON.stringify(header));
    assert.equal(header.task, "mf");
    assert.equal(header.cluster.nodes, 2);
    assert.equal(header.config.model.epochs, epochs);
    assert.ok(!Number.isNaN(Date.parse(header.time)));
    assert.equal(summary.type, "summary", JSON.stringify(summary));
    assert.equal(summary.run_id, header.run_id);
    assert.equal(summary.status, "done");
    assert.equal(summary.epochs, epochs);
    const records = lines.slice(1, -1) as Record<string, number>[];
    assert.equal(summary.metrics.test_rmse, records[records.length - 1].test_rmse);
    assert.equal(records.length, epochs, `one record per epoch\n${show}`);
    records.forEach((r, e) => {
      assert.equal(r.epoch, e);
      for (const k of METRIC_KEYS) {
        assert.ok(Number.isFinite(r[k]), `epoch ${e}: ${k} = ${r[k]} in ${JSON.stringify(r)}`);
      }
      assert.ok(r.epoch_s > 0 && r.points_per_s > 0, JSON.stringify(r));
      assert.ok(
        r.local_fraction >= 0.99,
        `epoch ${e}: local_fraction ${r.local_fraction} < 0.99 under lapse with DSGD blocking`,
      );
    });
    const last = records[records.length - 1].test_rmse;
    assert.ok(
      last <= 1.2 * noise,
      `final test_rmse ${last} above 1.2 x the noise ${noise}; per epoch: ${
        records.map((r) => r.test_rmse.toFixed(4)).join(", ")
      }`,
    );
  } finally {
    clearTimeout(timer);
    await Deno.remove(dir, { recursive: true });
  }
});
