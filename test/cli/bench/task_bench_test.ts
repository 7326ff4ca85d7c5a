/**
 * `lapse bench mf` end to end on a tiny job: every mode and node count runs, the JSON rows have
 * the stable fields (repeats, min/max, speedup over 1 node, time relative to lapse, quality),
 * and --report writes the charts.
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../../cli/main.ts", import.meta.url).pathname;
const ROOT = new URL("../../../", import.meta.url).pathname;

Deno.test("lapse bench mf --modes classic,stale,lapse --nodes 1,2 --json --report: one row per combination", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-bench-test-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--quiet",
        MAIN,
        "bench",
        "mf",
        "--modes",
        "classic,stale,lapse",
        "--nodes",
        "1,2",
        "--epochs",
        "2",
        "--set",
        "data.generate.rows=400",
        "--set",
        "data.generate.cols=400",
        "--set",
        "data.generate.nnz=8000",
        "--timeout-s",
        "200",
        "--json",
        "--report",
        `${dir}/r.html`,
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    const stderr = dec.decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.match(stderr, /overrides: .*data\.generate\.nnz=8000/, "the header names the overrides");
    const rows = JSON.parse(dec.decode(out.stdout)) as Record<string, any>[];
    assert.deepEqual(
      rows.map((r) => `${r.mode}@${r.nodes}`),
      ["classic@1", "stale@1", "lapse@1", "classic@2", "stale@2", "lapse@2"],
    );
    for (const r of rows) {
      assert.equal(r.status, "ok", JSON.stringify(r));
      assert.equal(r.repeats, 1);
      assert.ok(r.epoch_s > 0 && r.epoch_s_min === r.epoch_s && r.epoch_s_max === r.epoch_s);
      assert.ok(r.quality > 0 && r.quality_metric === "test_rmse", JSON.stringify(r));
      assert.ok(Number.isFinite(r.speedup_1node) && Number.isFinite(r.vs_lapse));
      assert.equal(r.per_epoch_quality.length, 2);
      assert.equal(r.per_epoch_points_per_s.length, 2);
    }
    assert.equal(rows.find((r) => r.mode === "lapse")!.vs_lapse, 1);
    assert.equal(rows.find((r) => r.mode === "stale" && r.nodes === 1)!.speedup_1node, 1);
    const html = await Deno.readTextFile(`${dir}/r.html`);
    assert.match(html, /data-chart="epoch_time" data-series="3"/);
    assert.match(html, /data-chart="speedup" data-series="4"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lapse bench kge from another working directory: data.dir outside it is readable", async () => {
  // The embedded cluster may read the folders of the config's files, as under lapse train
  // (before, only the working directory: the shipped graph was "outside the data directories").
  const cwd = await Deno.makeTempDir({ prefix: "lapse-bench-cwd-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--quiet",
        MAIN,
        "bench",
        "kge",
        "--modes",
        "lapse",
        "--nodes",
        "1",
        "--epochs",
        "1",
        "--set",
        `data.dir=${ROOT}data/wn_body`,
        "--set",
        "model.dim=8",
        "--set",
        "model.eval_every=0",
        "--set",
        "model.eval_max_triples=10",
        "--timeout-s",
        "200",
        "--json",
      ],
      cwd,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    const stderr = dec.decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const rows = JSON.parse(dec.decode(out.stdout)) as Record<string, unknown>[];
    assert.equal(rows.length, 1);
    assert.equal(rows[0].status, "ok", JSON.stringify(rows[0]));
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
