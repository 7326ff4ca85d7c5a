/**
 * `lapse train --out DIR` then `lapse predict --model DIR` as a user runs them: a config outside
 * the checkout with a CSV whose size is inferred, pairs on stdin, top-k, run.json.
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;

async function lapse(args: string[], cwd: string, stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, ...args],
    cwd,
    env: { NO_COLOR: "1" },
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const o = await child.output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

Deno.test("lapse train --out writes a model that lapse predict answers from", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-predict-" });
  try {
    const lines = [];
    for (let i = 1; i <= 60; i++) {
      for (let j = 1; j <= 40; j += 2) lines.push(`${i},${j},${1 + ((i * j) % 5)}`);
    }
    await Deno.writeTextFile(`${dir}/r.csv`, lines.join("\n") + "\n");
    // No rows/cols: the largest ids (60, 39) with index base 1.
    await Deno.writeTextFile(
      `${dir}/job.yaml`,
      "task: mf\ndata: { file: r.csv, index_base: 1 }\nmodel: { epochs: 2 }\n",
    );
    const t = await lapse(["train", "--config", "job.yaml", "--out", "model", "--quiet"], dir);
    assert.equal(t.code, 0, t.err + t.out);
    const run = JSON.parse(await Deno.readTextFile(`${dir}/model/run.json`));
    assert.equal(run.epochs, 2);
    assert.equal(typeof run.metrics.test_rmse, "number");
    assert.equal(run.config.data.rows, 60);
    assert.equal(run.config.data.cols, 39);
    const p = await lapse(["predict", "--model", "model"], dir, "row,col\n1,1\n60,39\n");
    assert.equal(p.code, 0, p.err);
    const out = p.out.trim().split("\n");
    assert.equal(out.length, 2);
    assert.match(out[0], /^1,1,[\d.]+$/);
    assert.match(out[1], /^60,39,[\d.]+$/);
    const top = await lapse(["predict", "--model", "model", "--row", "5", "--top", "3"], dir);
    assert.equal(top.code, 0, top.err);
    assert.equal(top.out.trim().split("\n").length, 3);
    const bad = await lapse(["predict", "--model", "model"], dir, "1,1\n61,1\n");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /stdin:2: row id "61" is not an integer in 1\.\.60/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lapse train --out DIR/ (a trailing slash, as the README writes it) creates DIR", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-predict-slash-" });
  try {
    const lines = [];
    for (let i = 1; i <= 20; i++) for (let j = 1; j <= 20; j += 2) lines.push(`${i},${j},1`);
    await Deno.writeTextFile(`${dir}/r.csv`, lines.join("\n") + "\n");
    await Deno.writeTextFile(
      `${dir}/job.yaml`,
      "task: mf\ndata: { file: r.csv, index_base: 1 }\nmodel: { epochs: 1 }\ncluster: { nodes: 1 }\n",
    );
    const t = await lapse(["train", "--config", "job.yaml", "--out", "model/", "--quiet"], dir);
    assert.equal(t.code, 0, t.err + t.out);
    assert.ok((await Deno.stat(`${dir}/model/model.json`)).isFile);
    // A folder that does not exist is named as such, also with kge flags.
    const p = await lapse(["predict", "--model", "none/", "--head", "h", "--relation", "r"], dir);
    assert.equal(p.code, 2, p.err);
    assert.match(p.err, /--model none\/: not a model folder/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
