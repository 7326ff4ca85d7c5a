/**
 * Job isolation on a real cluster: a driver gives up on a job (`AbortSignal.timeout` on
 * `runJob`) at a random moment and submits the next job at once, 100 times in a row. The
 * aborted job's messages still in flight (pulls, replies, transfers, barriers, progress) must
 * never reach the next job: every message carries its job id and a node drops (and counts) the
 * messages of other jobs. Before job ids, such races failed the next job ("answer for unknown
 * request", "got key ... it did not ask for", a cluster left busy). Real `lapse serve`
 * processes, real TCP.
 */
import assert from "node:assert/strict";
import { JobError, runJob } from "../../driver/driver.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as pscheck } from "../../tasks/pscheck.ts";
import { Rng } from "../../core/rng.ts";
import { freePorts, serveArgs } from "./helpers.ts";

const TOKEN = "abort-resubmit-test-token";
const ITERATIONS = 100;

function startNode(clusterFile: string, node: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: serveArgs(clusterFile, node, "--quiet"),
    env: { LAPSE_TOKEN: TOKEN },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** A pscheck job of `rounds` rounds with storms and unawaited pushes (traffic in flight). */
function config(rounds: number, seed: number) {
  return validateJobConfig({
    task: "pscheck",
    seed,
    data: {},
    model: { keys: 64, dim: 4, rounds, pattern: "random", batch: 8, async_prob: 0.5 },
    cluster: { nodes: 3, workers_per_node: 1 },
    ps: { mode: "lapse", location_caches: true },
  }, pscheck.schema);
}

/** Reads a child's stderr into `lines` until it exits. */
async function collect(child: Deno.ChildProcess, node: number, lines: string[]): Promise<void> {
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const line of value.split("\n")) if (line) lines.push(`node ${node} | ${line}`);
    }
  } catch { /* gone */ }
}

Deno.test("abort and resubmit 100 times in a row: no job ever sees another job's messages", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-abort-" });
  const [p0, p1, p2] = freePorts(3);
  const clusterFile = `${dir}/cluster.yaml`;
  await Deno.writeTextFile(
    clusterFile,
    `nodes: ["127.0.0.1:${p0}", "127.0.0.1:${p1}", "127.0.0.1:${p2}"]\nconnect_timeout_ms: 20000\n`,
  );
  const address = `127.0.0.1:${p0}`;
  const lines: string[] = [];
  // Three nodes: leftovers between nodes 1 and 2 can reach a node that has prepared the next
  // job already (node 0 tells the nodes one after the other).
  const nodes = [0, 1, 2].map((i) => startNode(clusterFile, i));
  const pipes = nodes.map((n, i) => collect(n, i, lines));
  const rng = new Rng(2026);
  const failures: string[] = [];
  let aborted = 0, completed = 0;
  try {
    for (let i = 0; i < ITERATIONS; i++) {
      // A long job, given up on after 20-220 ms: while it is prepared, while its workers start,
      // or in the middle of its traffic. Then at once a short job that must run to its end
      // with exact values, while the aborted job's messages may still be in flight.
      const after = 20 + rng.nextInt(200);
      try {
        await runJob(address, TOKEN, config(5000, i), {}, 20_000, AbortSignal.timeout(after));
        failures.push(`job ${i} of 5000 rounds ended within ${after} ms`);
      } catch (e) {
        if (e instanceof JobError && /stopped by the driver/.test(e.message)) aborted++;
        else failures.push(`job ${i} (abort after ${after} ms): ${(e as Error).message}`);
      }
      let metrics: Record<string, number> | null = null;
      try {
        const summary = await runJob(
          address,
          TOKEN,
          config(2, i),
          {
            onEpoch: (_e, m) => metrics = m,
          },
          20_000,
          AbortSignal.timeout(60_000),
        );
        completed++;
        const verdict = metrics === null ? "no metrics" : pscheck.verdict!(metrics);
        if (verdict !== null) failures.push(`job ${i}: ${verdict}`);
        const pending = summary.nodes.reduce((a, s) => a + s.pending_requests, 0);
        if (pending !== 0) failures.push(`job ${i}: ${pending} requests left pending`);
      } catch (e) {
        failures.push(`job ${i} after an abort after ${after} ms: ${(e as Error).message}`);
      }
    }
    // Then a job that runs to its end on the same nodes: exact values everywhere.
    let metrics: Record<string, number> = {};
    // The workers' VIOLATION lines say which key and read failed (a rare race was seen here once
    // under a loaded CI run, and not reproduced in 54 runs alone): kept for the failure message.
    const logs: string[] = [];
    const summary = await runJob(
      address,
      TOKEN,
      config(300, 99),
      {
        onEpoch: (_e, m) => metrics = m,
        onLog: (node, message) => {
          if (/VIOLATION/.test(message) && logs.length < 20) logs.push(`node ${node}: ${message}`);
        },
      },
      20_000,
      AbortSignal.timeout(60_000),
    );
    assert.equal(pscheck.verdict!(metrics), null, JSON.stringify(metrics) + "\n" + logs.join("\n"));
    const dropped = summary.nodes.reduce((a, s) => a + s.other_job_dropped, 0);
    const malformed = summary.nodes.reduce((a, s) => a + s.malformed_dropped, 0);
    console.log(
      `${ITERATIONS} pairs: ${aborted} jobs aborted, ${completed} completed; ` +
        `messages of other jobs dropped: ${dropped}`,
    );
    assert.deepEqual(failures, [], lines.join("\n"));
    assert.equal(aborted, ITERATIONS);
    assert.equal(completed, ITERATIONS);
    assert.equal(malformed, 0);
    assert.ok(!lines.some((l) => /Invariant|AssertionError|Uncaught/.test(l)), lines.join("\n"));
  } finally {
    for (const p of nodes) {
      try {
        p.kill("SIGKILL");
      } catch { /* gone */ }
      await p.status;
    }
    await Promise.all(pipes);
    await Deno.remove(dir, { recursive: true });
  }
});
