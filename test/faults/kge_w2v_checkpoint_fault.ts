/**
 * kge and w2v checkpoints with real processes: a 2-node job whose node 1 is killed (kill -9)
 * right after the checkpoint of epoch 1 is complete fails naming node 1; node 1 is started
 * again, and `resume.dir` goes on at the epoch after the last complete checkpoint and ends with
 * a trained model (on 2 nodes the updates are asynchronous, so the comparison with a run never
 * interrupted is of quality, not of bits: test/integration/resume_test.ts checks the bits at 1
 * node x 1 worker).
 */
import assert from "node:assert/strict";
import { JobError, runJob } from "../../driver/driver.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { readManifest } from "../../server/checkpoint.ts";
import { task as kge } from "../../tasks/kge.ts";
import { task as w2v } from "../../tasks/w2v.ts";
import type { JobConfig } from "../../core/types.ts";
import { FaultCluster, TOKEN } from "./fault_cluster.ts";

const DATA = new URL("../../data", import.meta.url).pathname;
const EPOCHS = 5;

/** The shipped data, copied under the nodes' data directory (their working directory). */
async function copyData(root: string): Promise<string> {
  await Deno.mkdir(`${root}/data/wn_body`, { recursive: true });
  for (const f of Deno.readDirSync(`${DATA}/wn_body`)) {
    await Deno.copyFile(`${DATA}/wn_body/${f.name}`, `${root}/data/wn_body/${f.name}`);
  }
  await Deno.copyFile(`${DATA}/brown_sample.txt`, `${root}/data/brown_sample.txt`);
  return `${root}/data`;
}

function config(
  task: "kge" | "w2v",
  data: string,
  dir: string,
  resume: boolean,
): JobConfig {
  const raw = task === "kge"
    ? {
      task,
      data: { dir: `${data}/wn_body` },
      model: { dim: 32, negatives: 4, epochs: EPOCHS, eval_every: 0, eval_max_triples: 300 },
    }
    : { task, data: { file: `${data}/brown_sample.txt` }, model: { dim: 32, epochs: EPOCHS } };
  return validateJobConfig({
    ...raw,
    seed: 4,
    cluster: { nodes: 2, workers_per_node: 1 },
    ps: { mode: "lapse" },
    checkpoint: { dir, every_epochs: 1 },
    ...(resume ? { resume: { dir } } : {}),
  }, task === "kge" ? kge.schema : w2v.schema);
}

Deno.test("kge, w2v: kill -9 of a node after a checkpoint, restart, resume: goes on at the next epoch and learns", async () => {
  const c = await FaultCluster.create(2);
  try {
    const data = await copyData(c.dir);
    for (const task of ["kge", "w2v"] as const) {
      const dir = `${c.dir}/${task}`;
      const before = new Map<number, Record<string, number>>();
      let killed = false;
      const job = runJob(c.address, TOKEN, config(task, data, dir, false), {
        onEpoch: (e, m) => void before.set(e, m),
        onLog: (_node, message) => {
          if (!killed && /^checkpoint after epoch 1:/.test(message)) {
            killed = true;
            c.signal(1, "SIGKILL");
          }
        },
      }, 30_000);
      await assert.rejects(job, (e) => e instanceof JobError && /node 1/.test(e.message));
      await c.kill(1);
      const at = (await readManifest(dir)).epoch;
      assert.ok(at >= 1 && at < EPOCHS - 1, `${task}: killed mid-run (checkpoint after ${at})`);
      c.start(1);
      await c.untilJobPasses(60_000);

      const after = new Map<number, Record<string, number>>();
      await runJob(c.address, TOKEN, config(task, data, dir, true), {
        onEpoch: (e, m) => void after.set(e, m),
      }, 30_000);
      assert.deepEqual(
        [...after.keys()],
        Array.from({ length: EPOCHS - at - 1 }, (_, i) => at + 1 + i),
        `${task}: the resumed epochs`,
      );
      assert.equal((await readManifest(dir)).epoch, EPOCHS - 1);
      const last = after.get(EPOCHS - 1)!;
      if (task === "kge") {
        // Random embeddings: test MRR about 0.005; uninterrupted runs: 0.3-0.4.
        assert.ok(last.test_mrr > 0.2, `kge test MRR ${last.test_mrr}`);
        assert.ok(last.train_loss < before.get(0)!.train_loss / 2);
      } else assert.ok(last.loss < before.get(0)!.loss - 0.3, `w2v loss ${last.loss}`);
    }
    c.assertNoBugLines();
  } finally {
    await c.stop();
  }
});
