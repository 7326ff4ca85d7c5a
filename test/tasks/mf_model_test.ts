/**
 * mf's model on disk: train (fake PS, ids that are names, a separate test file), write
 * (`model.out`), load with `MfModel`, and compare with the in-memory model: the same factors
 * and biases, and predictions that give the job's own test RMSE. Plus the data inference of
 * `prepare` (matrix size from the file, names detected).
 */
import assert from "node:assert/strict";
import type { JobConfig } from "../../mod.ts";
import { task } from "../../tasks/mf.ts";
import { MfModel } from "../../tasks/mf_model.ts";
import { readNpy } from "../../data/npy.ts";
import { scanRatingsFile } from "../../data/mf_data.ts";
import { Rng } from "../../core/rng.ts";
import { runFakeJob } from "./fake_ps.ts";

function config(data: Record<string, unknown>, model: Record<string, unknown>): JobConfig {
  return {
    task: "mf",
    seed: 3,
    data: { ids: "auto", test_fraction: 0.1, delimiter: "auto", index_base: 0, ...data },
    model,
    cluster: { nodes: 2, workers_per_node: 1 },
    ps: {
      mode: "lapse",
      location_caches: true,
      placement: "range",
      max_frame_bytes: 1 << 26,
      batch_keys_max: 1e6,
    },
    localize: task.schema.defaultLocalize,
  } as JobConfig;
}

/** Named users and items, 1-5 star-like ratings; returns the test lines. */
async function writeNamed(dir: string): Promise<string[]> {
  const rng = new Rng(5);
  const train = ["user,item,rating"], test: string[] = [];
  const seen = new Set<string>();
  while (seen.size < 6000) {
    const u = Math.floor(rng.nextFloat() * 120), i = Math.floor(rng.nextFloat() * 90);
    const key = `u${u},i${i}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const line = `${key},${(3 + (u % 5) / 4 - (i % 3) / 3 + rng.nextFloat() * 0.2).toFixed(3)}`;
    (rng.nextFloat() < 0.1 ? test : train).push(line);
  }
  test.push("nobody,i1,3.0"); // an unknown name: skipped
  await Deno.writeTextFile(`${dir}/train.csv`, train.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/test.csv`, test.join("\n") + "\n");
  return test.slice(0, -1);
}

Deno.test("mf model round trip: train, write, load, predict = the in-memory model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-mf-model-" });
  try {
    const testLines = await writeNamed(dir);
    const cfg = config(
      { file: `${dir}/train.csv`, test_file: `${dir}/test.csv` },
      { epochs: 4, out: `${dir}/model` },
    );
    await task.prepare!(cfg);
    assert.equal(cfg.data.ids, "names");
    assert.ok(cfg.data.rows <= 120 && cfg.data.rows > 100, `rows ${cfg.data.rows}`);
    const r = await runFakeJob(task, cfg);
    const m = await MfModel.load(`${dir}/model`);
    assert.equal(m.meta.rank, 10);
    assert.equal(m.meta.biases, true);
    // The factors on disk are the table's, float for float.
    const W = r.cluster.byName.get("W")!.values, dim = 11; // rank 10, then the bias (sgd)
    const Wnpy = await readNpy(`${dir}/model/W.npy`);
    assert.deepEqual(Wnpy.shape, [cfg.data.rows, 10]);
    for (const i of [0, 7, cfg.data.rows - 1]) {
      assert.deepEqual(
        Array.from(Wnpy.data.subarray(i * 10, i * 10 + 10)),
        Array.from(W.subarray(i * dim, i * dim + 10)),
      );
    }
    // Predictions over the test file give the job's own test RMSE.
    let sse = 0;
    for (const line of testLines) {
      const [u, i, v] = line.split(",");
      const e = Number(v) - m.predict(m.rowKey(u), m.colKey(i));
      sse += e * e;
    }
    const rmse = Math.sqrt(sse / testLines.length);
    const last = r.metrics[r.metrics.length - 1];
    assert.equal(r.sums[0].test_n, testLines.length, "the unknown name is skipped");
    assert.ok(
      Math.abs(rmse - last.test_rmse) < 1e-4,
      `file ${rmse} vs in-memory ${last.test_rmse}`,
    );
    assert.throws(() => m.rowKey("nobody"), /unknown row id "nobody"/);
    const top = m.topColumns(m.rowKey("u3"), 3);
    assert.equal(top.length, 3);
    assert.ok(top[0][1] >= top[1][1] && top[1][1] >= top[2][1]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scanRatingsFile: size from the MatrixMarket line, the largest id, or names", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-mf-scan-" });
  try {
    await Deno.writeTextFile(
      `${dir}/a.mtx`,
      "%%MatrixMarket matrix coordinate real general\n% c\n7 9 2\n1 1 1.0\n7 9 2.0\n",
    );
    assert.deepEqual(await scanRatingsFile(`${dir}/a.mtx`), {
      rows: 7,
      cols: 9,
      ids: "numbers",
      ratings: 2,
    });
    await Deno.writeTextFile(`${dir}/b.csv`, "u,i,r\n1,5,3\n12,2,4\n");
    assert.deepEqual(await scanRatingsFile(`${dir}/b.csv`, { indexBase: 1 }), {
      rows: 12,
      cols: 5,
      ids: "numbers",
      ratings: 2,
    });
    await Deno.writeTextFile(`${dir}/c.csv`, "ann,x,3\nbob,y,4\nann,y,5\n");
    assert.deepEqual(await scanRatingsFile(`${dir}/c.csv`), {
      rows: 2,
      cols: 2,
      ids: "names",
      ratings: 3,
    });
    const cfg = config({ file: `${dir}/a.mtx` }, {});
    await task.prepare!(cfg);
    assert.equal(cfg.data.rows, 7);
    assert.equal(cfg.data.cols, 9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
