import assert from "node:assert/strict";
import { Table } from "../../server/store.ts";
import {
  CHECKPOINT_FORMAT,
  readCheckpointModel,
  readManifest,
  readNodeFile,
  restoreTables,
  writeManifest,
  writeNodeFile,
} from "../../server/checkpoint.ts";

function table(keys: number, dim: number, local: number[]): { table: Table; owner: Int32Array } {
  const t = Table.create(0, { name: "T", keys, dim }, local.length);
  for (const k of local) {
    t.insert(k, Float32Array.from({ length: dim }, (_, f) => k * 10 + f + 0.5), 0);
  }
  const owner = new Int32Array(keys).fill(-1);
  owner[0] = 1;
  return { table: t, owner };
}

Deno.test("checkpoint: node files round-trip keys, values, directory and worker states", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = table(8, 3, [1, 5, 6]), b = table(8, 3, [0, 2, 3, 4, 7]);
    const fa = await writeNodeFile(dir, 0, 2, 4, [a], [{ worker: 0, state: { epoch: 5 } }]);
    const fb = await writeNodeFile(dir, 1, 2, 4, [b], [{ worker: 1, state: { epoch: 5 } }]);
    await writeManifest(dir, {
      format: CHECKPOINT_FORMAT,
      task: "t",
      nodes: 2,
      workers_per_node: 1,
      seed: 1,
      epoch: 4,
      files: [fa, fb],
      written: "now",
    });
    const m = await readManifest(dir);
    assert.equal(m.epoch, 4);
    assert.equal(m.files[0].path, "epoch-000004/node-0.bin");
    const file = await readNodeFile(dir, m.files[0]);
    assert.deepEqual(file.header.workers, [{ worker: 0, state: { epoch: 5 } }]);
    assert.deepEqual([...file.tables[0].keys], [1, 5, 6]);
    // Restoring into a fresh table replaces what it held.
    const fresh = table(8, 3, [0, 1, 2]);
    restoreTables([fresh], file);
    assert.equal(fresh.table.localCount, 3);
    const out = new Float32Array(3);
    assert.ok(fresh.table.pullLocal(5, out, 0));
    assert.deepEqual([...out], [50.5, 51.5, 52.5]);
    assert.ok(!fresh.table.isLocal(0));
    assert.equal(fresh.owner[0], 1);
    const model = await readCheckpointModel(dir);
    assert.deepEqual([...model.tables.get("T")!.subarray(21, 24)], [70.5, 71.5, 72.5]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkpoint: a damaged or missing checkpoint is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      readManifest(dir),
      /no complete checkpoint in .*manifest\.json is missing/,
    );
    const f = await writeNodeFile(dir, 0, 1, 0, [table(4, 2, [0, 1])], []);
    const path = `${dir}/${f.path}`;
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(path, bytes);
    await assert.rejects(readNodeFile(dir, f), /is damaged/);
    const tables = [table(4, 3, [0])];
    await assert.rejects(
      (async () => restoreTables(tables, await readNodeFile(dir, { ...f, hash: 0 })))(),
      /is damaged/,
    );
    // No temporary file is left by a completed write.
    assert.deepEqual([...Deno.readDirSync(`${dir}/epoch-000000`)].map((e) => e.name), [
      "node-0.bin",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
