/**
 * Resuming on another cluster size (embedded local clusters through the CLI): a checkpoint of
 * 2 nodes resumes on 3 (keys re-homed, training goes on from the saved model); a checkpoint of
 * another seed is refused with one line.
 */
import assert from "node:assert/strict";
import { MAIN } from "../integration/helpers.ts";

const SMALL = [
  "--config",
  new URL("../../tasks/mf.yaml", import.meta.url).pathname,
  "--set",
  "data.generate.rows=2000",
  "--set",
  "data.generate.cols=2000",
  "--set",
  "data.generate.nnz=100000",
  "--set",
  "model.rank=10",
  "-q",
];

async function train(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, "train", ...SMALL, ...args],
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

function trainLoss(out: string, epoch: number): number {
  const m = out.match(new RegExp(`^epoch ${epoch} +train_loss ([0-9.e+-]+)`, "m"));
  assert.ok(m, `epoch ${epoch} in:\n${out}`);
  return Number(m[1]);
}

Deno.test("a checkpoint of 2 nodes resumes on 3 nodes; another seed is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-resize-" });
  try {
    const first = await train("--nodes", "2", "--epochs", "3", "--checkpoint", dir);
    assert.equal(first.code, 0, first.out);
    const resumed = await train("--nodes", "3", "--epochs", "5", "--resume", dir);
    assert.equal(resumed.code, 0, resumed.out);
    assert.match(resumed.out, /written by 2 nodes, keys re-homed/);
    assert.doesNotMatch(resumed.out, /^epoch [0-2] /m, "epochs 0-2 are not trained again");
    // Training went on from the saved model: better than where the first run ended.
    assert.ok(trainLoss(resumed.out, 3) < trainLoss(first.out, 2), resumed.out);
    const other = await train("--nodes", "3", "--epochs", "6", "--resume", dir, "--set", "seed=7");
    assert.equal(other.code, 2, other.out);
    assert.match(other.out, /cannot resume from the checkpoint .*seed 1, the job has 7/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
