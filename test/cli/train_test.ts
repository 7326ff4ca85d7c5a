/** `lapse train`'s config loading: shipped configs by name, flags, the cluster file's defaults. */
import assert from "node:assert/strict";
import { loadConfigFromArgs, resolveConfigPath } from "../../cli/train.ts";
import type { ClusterFile } from "../../config/cluster_file.ts";

const CLUSTER: ClusterFile = {
  nodes: [{ host: "127.0.0.1", port: 1 }, { host: "127.0.0.1", port: 2 }],
  workers_per_node: 3,
  connect_timeout_ms: 1000,
};

async function withConfig(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lapse-train-cfg-" });
  try {
    await Deno.writeTextFile(`${dir}/job.yaml`, text);
    await fn(`${dir}/job.yaml`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("--config mf names the shipped tasks/mf.yaml; an existing file wins", async () => {
  const p = await resolveConfigPath("mf");
  assert.match(p, /tasks\/mf\.yaml$/);
  const c = await loadConfigFromArgs("mf", [], undefined, undefined, { epochs: "2" });
  assert.equal(c.task, "mf");
  assert.equal(c.model.epochs, 2);
  assert.equal(await resolveConfigPath("no/such/file.yaml"), "no/such/file.yaml");
});

Deno.test("the cluster file's workers_per_node is the default; config and --workers win", async () => {
  const gen = "task: mf\ndata: { generate: { rows: 10, cols: 10, nnz: 20 } }\n";
  await withConfig(gen, async (path) => {
    const a = await loadConfigFromArgs(path, [], undefined, undefined, { cluster: CLUSTER });
    assert.equal(a.cluster.workers_per_node, 3);
    const b = await loadConfigFromArgs(path, [], undefined, "2", { cluster: CLUSTER });
    assert.equal(b.cluster.workers_per_node, 2);
    const c = await loadConfigFromArgs(path, []);
    assert.equal(c.cluster.workers_per_node, 1);
  });
  await withConfig(gen + "cluster: { workers_per_node: 4 }\n", async (path) => {
    const d = await loadConfigFromArgs(path, [], undefined, undefined, { cluster: CLUSTER });
    assert.equal(d.cluster.workers_per_node, 4);
  });
});

Deno.test("relative data paths: from the file against its folder, from --set against cwd", async () => {
  await withConfig(
    "task: mf\ndata: { file: sub/r.csv, rows: 10, cols: 10 }\n",
    async (path) => {
      const dir = path.slice(0, path.lastIndexOf("/"));
      const a = await loadConfigFromArgs(path, []);
      assert.equal(a.data.file, `${dir}/sub/r.csv`);
      const b = await loadConfigFromArgs(path, ["data.file=../x.csv"]);
      const cwd = Deno.cwd();
      assert.equal(b.data.file, `${cwd.slice(0, cwd.lastIndexOf("/")) || "/"}/x.csv`);
    },
  );
});

Deno.test("every shipped config (tasks/*.yaml) loads and validates by name", async () => {
  const { builtinConfigs } = await import("../../tasks/registry.ts");
  const names = builtinConfigs();
  for (const n of ["mf", "mf_ratings", "pscheck"]) assert.ok(names.includes(n), names.join());
  for (const n of names) {
    const c = await loadConfigFromArgs(n, []);
    assert.equal(typeof c.task, "string", n);
  }
  const r = await loadConfigFromArgs("mf_ratings", []);
  // The template for users' files relies on the defaults that learn.
  assert.equal(r.model.lr, undefined);
  assert.match(r.data.file, /^\/.*\/tasks\/ratings\.csv$/);
});
