/**
 * Checkpoint write and restore of a 20k x 20k rank-100 mf model (tables W and H, 40,000 keys
 * of 100 floats: 16 MB) held by one node: the node's side of a checkpoint (copy out of the
 * store, write a temporary file, fsync, rename, fsync the folder) and of a resume (read, check
 * size and hash, put the keys into fresh tables). Run: `deno bench --allow-all
 * bench/checkpoint_bench.ts`; MB/s = 16 MB / time per iteration. End to end on a cluster (with
 * the coordination) `lapse train --checkpoint DIR` prints its MB/s per checkpoint.
 *
 * @module
 */
import { Table } from "../server/store.ts";
import { nodeFileParts, readNodeFile, restoreTables, writeNodeFile } from "../server/checkpoint.ts";

const KEYS = 20_000, DIM = 100;

function tables() {
  return ["W", "H"].map((name, id) => {
    const table = Table.create(id, { name, keys: KEYS, dim: DIM }, KEYS);
    const v = new Float32Array(DIM);
    for (let k = 0; k < KEYS; k++) {
      v.fill(k * 1e-3);
      table.insert(k, v, 0);
    }
    return { table, owner: new Int32Array(KEYS) };
  });
}

const dir = await Deno.makeTempDir({ prefix: "lapse-ckpt-bench-" });
const source = tables();
const entry = await writeNodeFile(dir, 0, 1, 0, source, [{ worker: 0, state: { epoch: 1 } }]);
const bytes = entry.bytes;
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.bench(`checkpoint write ${(bytes / 1e6).toFixed(1)} MB (copy, write, fsync, rename)`, {
  group: "checkpoint",
}, async () => {
  await writeNodeFile(dir, 0, 1, 1, source, []);
});

Deno.bench("checkpoint copy out of the store only", { group: "checkpoint" }, () => {
  nodeFileParts(0, 1, 1, source, []);
});

const target = tables();
Deno.bench(`restore ${(bytes / 1e6).toFixed(1)} MB (read, check hash, insert)`, {
  group: "restore",
}, async () => {
  restoreTables(target, await readNodeFile(dir, entry));
});
