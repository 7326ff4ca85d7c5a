/**
 * `ps.max_frame_bytes` is honoured by the nodes: every node applies the job's limit to its
 * connections to the other nodes for the job's duration. Data-plane batches are sent in parts
 * that fit the limit (a job under a small limit passes); a control message that cannot fit
 * fails the job with one line naming the limit, and the nodes serve the next job. Real
 * `lapse serve` processes (an embedded local cluster), real TCP.
 */
import assert from "node:assert/strict";
import { launchJob } from "../../driver/launch.ts";
import { JobError } from "../../driver/driver.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as pscheck } from "../../tasks/pscheck.ts";

const LIMIT = 128 * 1024;

function config(keys: number, dim: number, maxFrameBytes?: number) {
  return validateJobConfig({
    task: "pscheck",
    data: {},
    model: { keys, dim, rounds: 3, pattern: "all" },
    cluster: { nodes: 2, workers_per_node: 1 },
    ps: {
      mode: "lapse",
      ...(maxFrameBytes === undefined ? {} : { max_frame_bytes: maxFrameBytes }),
    },
  }, pscheck.schema);
}

async function run(keys: number, dim: number, maxFrameBytes?: number) {
  let metrics: Record<string, number> = {};
  const lines: string[] = [];
  try {
    const summary = await launchJob(config(keys, dim, maxFrameBytes), {
      signal: AbortSignal.timeout(90_000),
      events: { onEpoch: (_e, m) => metrics = m },
      onNodeLine: (node, line) => lines.push(`node ${node} | ${line}`),
    });
    return { summary, metrics, lines };
  } catch (e) {
    (e as Error).message += `\n${lines.join("\n")}`;
    throw e;
  }
}

Deno.test("batches far above ps.max_frame_bytes go out in parts that fit", async () => {
  // Every round pushes and pulls all 2,000 keys x 64 floats (512 KB) across the two nodes: one
  // message per destination would be 4x the limit.
  const { metrics } = await run(2000, 64, LIMIT);
  assert.equal(pscheck.verdict!(metrics), null, JSON.stringify(metrics));
  assert.ok(metrics.bytes > 4 * LIMIT, `${metrics.bytes} bytes between the nodes`);
});

Deno.test("a message above ps.max_frame_bytes fails the job naming the limit", async () => {
  // 8,000 keys: the end-of-epoch sums (two numbers per key) make a ~300 KB message to node 0.
  await assert.rejects(run(8000, 1, LIMIT), (e: unknown) => {
    assert.ok(e instanceof JobError, String(e));
    assert.match(e.message, /above the frame limit of 131072 bytes \(ps\.max_frame_bytes/);
    return true;
  });
  // The same job under the default limit passes.
  const { metrics } = await run(8000, 1);
  assert.equal(pscheck.verdict!(metrics), null, JSON.stringify(metrics));
});
