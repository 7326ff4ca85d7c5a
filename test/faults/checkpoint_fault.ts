/**
 * Checkpoints and resume with real processes: an mf job killed (kill -9 of a node) after a
 * checkpoint and resumed from it ends with bitwise the model of a run that was never
 * interrupted; a node killed while writing its checkpoint file leaves the previous checkpoint
 * complete and usable (the manifest still names it), and resuming from it gives the same model.
 */
import assert from "node:assert/strict";
import { JobError, runJob } from "../../driver/driver.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as mf } from "../../tasks/mf.ts";
import { readCheckpointModel, readManifest } from "../../server/checkpoint.ts";
import type { JobConfig } from "../../core/types.ts";
import { FaultCluster, TOKEN } from "./fault_cluster.ts";

const EPOCHS = 12;

function mfConfig(dir: string, resume: boolean): JobConfig {
  return validateJobConfig({
    task: "mf",
    data: { generate: { rows: 2000, cols: 2000, nnz: 100_000, rank: 10, seed: 3 } },
    model: { rank: 10, epochs: EPOCHS, lr: 0.05 },
    cluster: { nodes: 2, workers_per_node: 1 },
    ps: { mode: "lapse" },
    checkpoint: { dir, every_epochs: 1 },
    ...(resume ? { resume: { dir } } : {}),
  }, mf.schema);
}

/** Runs a job to its end; returns the last epoch's test RMSE. */
async function run(c: FaultCluster, config: JobConfig): Promise<number> {
  let rmse = NaN;
  await runJob(c.address, TOKEN, config, { onEpoch: (_e, m) => rmse = m.test_rmse }, 30_000);
  return rmse;
}

async function assertSameModel(a: string, b: string): Promise<void> {
  const x = await readCheckpointModel(a), y = await readCheckpointModel(b);
  assert.equal(x.manifest.epoch, EPOCHS - 1);
  assert.equal(y.manifest.epoch, EPOCHS - 1);
  for (const [name, values] of x.tables) {
    const other = y.tables.get(name)!;
    assert.equal(other.length, values.length);
    const bitsA = new Uint32Array(values.buffer), bitsB = new Uint32Array(other.buffer);
    let differ = 0;
    for (let i = 0; i < bitsA.length; i++) if (bitsA[i] !== bitsB[i]) differ++;
    assert.equal(differ, 0, `table ${name}: ${differ} of ${bitsA.length} floats differ`);
  }
}

Deno.test("mf: kill -9 after a checkpoint, resume = uninterrupted run (bitwise); a kill during the write keeps the previous checkpoint", async () => {
  const c = await FaultCluster.create(2);
  const root = c.dir;
  try {
    // The reference: never interrupted.
    const rmseA = await run(c, mfConfig(`${root}/a`, false));

    // Killed after the checkpoint of epoch 1 is complete, then resumed.
    let killed = false;
    const job = runJob(c.address, TOKEN, mfConfig(`${root}/b`, false), {
      onLog: (_node, message) => {
        if (!killed && /checkpoint after epoch 1:/.test(message)) {
          killed = true;
          c.signal(1, "SIGKILL");
        }
      },
    }, 30_000);
    await assert.rejects(job, (e) => e instanceof JobError && /node 1/.test(e.message));
    await c.kill(1);
    const at = (await readManifest(`${root}/b`)).epoch;
    assert.ok(at >= 1 && at < EPOCHS - 1, `killed mid-run (checkpoint after epoch ${at})`);
    c.start(1);
    await c.untilJobPasses(60_000);
    const rmseB = await run(c, mfConfig(`${root}/b`, true));
    assert.equal(rmseB, rmseA, "the same final test RMSE");
    await assertSameModel(`${root}/a`, `${root}/b`);

    // Node 1 is killed (kill -9 by itself, LAPSE_FAILPOINT) halfway through writing its file
    // of the checkpoint after epoch 2.
    await c.kill(1);
    c.start(1, { LAPSE_FAILPOINT: "checkpoint_write:2" });
    await c.untilJobPasses(60_000);
    await assert.rejects(
      run(c, mfConfig(`${root}/c`, false)),
      (e) => e instanceof JobError && /node 1/.test(e.message),
    );
    await c.kill(1);
    assert.equal((await readManifest(`${root}/c`)).epoch, 1, "the manifest names epoch 1");
    const partial = [...Deno.readDirSync(`${root}/c/epoch-000002`)].map((e) => e.name);
    assert.ok(partial.some((n) => n.startsWith("node-1.bin.tmp-")), `half-written: ${partial}`);
    assert.ok(!partial.includes("node-1.bin"), "no complete file of node 1 for epoch 2");
    await readCheckpointModel(`${root}/c`); // complete and intact (sizes and hashes check)
    c.start(1);
    await c.untilJobPasses(60_000);
    const rmseC = await run(c, mfConfig(`${root}/c`, true));
    assert.equal(rmseC, rmseA);
    await assertSameModel(`${root}/a`, `${root}/c`);
    // Older checkpoints were removed as newer ones completed (the killed write's temp file too).
    assert.deepEqual(
      [...Deno.readDirSync(`${root}/c`)].map((e) => e.name).sort(),
      [`epoch-${String(EPOCHS - 1).padStart(6, "0")}`, "manifest.json"],
    );
    c.assertNoBugLines();
  } finally {
    await c.stop();
  }
});
