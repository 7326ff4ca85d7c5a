/** `lapse init`: the copy of a shipped config trains from wherever it is written. */
import assert from "node:assert/strict";
import { absoluteDataPaths, init } from "../../cli/init.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");

Deno.test("absoluteDataPaths: relative data paths point into the checkout, others stay", () => {
  const src = "/repo/tasks/kge.yaml";
  assert.equal(absoluteDataPaths("  dir: ../data/x # c\n", src), '  dir: "/repo/data/x" # c\n');
  assert.equal(absoluteDataPaths("  file: ./r.csv\n", src), '  file: "/repo/tasks/r.csv"\n');
  assert.equal(absoluteDataPaths("  file: ratings.csv\n", src), "  file: ratings.csv\n");
  assert.equal(absoluteDataPaths("  dir: /abs/x\n", src), "  dir: /abs/x\n");
});

Deno.test("lapse init kge / w2v: the copy's data path exists wherever the copy is", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-init-" });
  const log = console.log;
  console.log = () => {};
  try {
    assert.equal(await init(["kge", `${dir}/k.yaml`]), 0);
    assert.equal(await init(["w2v", `${dir}/w.yaml`]), 0);
  } finally {
    console.log = log;
  }
  try {
    const k = await Deno.readTextFile(`${dir}/k.yaml`);
    assert.match(k, new RegExp(`^\\s*dir: "${ROOT}/data/wn_body"`, "m"));
    assert.ok((await Deno.stat(`${ROOT}/data/wn_body`)).isDirectory);
    const w = await Deno.readTextFile(`${dir}/w.yaml`);
    assert.match(w, new RegExp(`^\\s*file: "${ROOT}/data/brown_sample.txt"`, "m"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
