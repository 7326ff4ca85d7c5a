/**
 * Multi-process correctness: real `lapse serve` node processes on 127.0.0.1, real TCP, real
 * worker threads, driven by the shipped `pscheck` task through `launchJob` (the code path of
 * `lapse train`). Each test checks the task's verdict (every key's final value is the number of
 * pushes of all workers; no worker ever read a value going backwards or missing its own
 * completed pushes) and the nodes' end-of-job statistics (no request left unanswered, no key
 * left in transfer, exactly one copy of every key in the cluster).
 *
 * A job that does not end within JOB_DEADLINE_MS is a failure: the driver gives up (the job is
 * aborted on the cluster, the nodes are stopped) and the test prints what the nodes logged.
 */
import assert from "node:assert/strict";
import { launchJob } from "../../driver/launch.ts";
import type { JobSummary } from "../../driver/driver.ts";
import { type PsMode } from "../../core/types.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as pscheck } from "../../tasks/pscheck.ts";

const JOB_DEADLINE_MS = 60_000;

interface CheckRun {
  summary: JobSummary;
  /** Metrics of each epoch (pscheck has one), as the driver received them. */
  epochs: Record<string, number>[];
  /** What the nodes printed (shown when a test fails). */
  lines: string[];
  keys: number;
}

interface CheckOptions {
  mode: PsMode;
  model: Record<string, unknown>;
  nodes?: number;
  workers_per_node?: number;
  location_caches?: boolean;
  placement?: "range" | "random";
  localize?: unknown;
  seed?: number;
}

/** Runs pscheck on an embedded local cluster (child processes) and returns what it reported. */
async function runPsCheck(o: CheckOptions): Promise<CheckRun> {
  const raw: Record<string, unknown> = {
    task: "pscheck",
    seed: o.seed ?? 1,
    data: {},
    model: o.model,
    cluster: { nodes: o.nodes ?? 3, workers_per_node: o.workers_per_node ?? 2 },
    ps: { mode: o.mode, location_caches: o.location_caches ?? true },
  };
  if (o.placement !== undefined) (raw.ps as Record<string, unknown>).placement = o.placement;
  if (o.localize !== undefined) raw.localize = o.localize;
  const config = validateJobConfig(raw, pscheck.schema);
  const epochs: Record<string, number>[] = [];
  const lines: string[] = [];
  const what = `pscheck ${JSON.stringify(raw.ps)} ${JSON.stringify(o.model)}`;
  try {
    const summary = await launchJob(config, {
      signal: AbortSignal.timeout(JOB_DEADLINE_MS),
      events: {
        onEpoch: (e, m) => void (epochs[e] = m),
        onLog: (node, message) => lines.push(`log ${node}: ${message}`),
      },
      onNodeLine: (node, line) => lines.push(`node ${node} | ${line}`),
    });
    return { summary, epochs, lines, keys: config.model.keys };
  } catch (e) {
    console.error(`${what} failed; node output:\n${lines.join("\n")}`);
    throw e;
  }
}

/** Runs `check`; on failure prints the nodes' output first. */
function explained(run: CheckRun, check: () => void): void {
  try {
    check();
  } catch (e) {
    console.error(`epochs: ${JSON.stringify(run.epochs)}`);
    console.error(`node stats: ${JSON.stringify(run.summary.nodes)}`);
    console.error(run.lines.join("\n"));
    throw e;
  }
}

/** The verdict every run must have: consistent values, no violation, a drained cluster. */
function assertConsistent(run: CheckRun, nodes: number): Record<string, number> {
  let m: Record<string, number> = {};
  explained(run, () => {
    assert.equal(run.epochs.length, 1, "pscheck reports exactly one epoch");
    m = run.epochs[0];
    assert.equal(m.keys_checked, run.keys);
    assert.equal(m.mismatched_keys, 0, "keys whose final value is not the pushes of all workers");
    assert.equal(m.violations, 0, "reads that went backwards or missed the reader's own pushes");
    assert.equal(m.final_error, 0, "every worker's final pull is the total of all pushes");
    const stats = run.summary.nodes;
    assert.equal(stats.length, nodes, "a FINISHED report from every node");
    stats.forEach((s, i) => {
      assert.equal(s.pending_requests, 0, `node ${i}: requests left unanswered`);
      assert.equal(s.pending_transfers, 0, `node ${i}: keys left in transfer`);
    });
    const copies = stats.reduce((a, s) => a + s.local_keys, 0);
    assert.equal(copies, run.keys, "exactly one copy of every key in the cluster");
  });
  return m;
}

function sum(run: CheckRun, stat: string): number {
  return run.summary.nodes.reduce((a, s) => a + (s[stat] ?? 0), 0);
}

// --- (a) every push counted exactly; untouched keys keep their init ------------------------

const ALL = { pattern: "all", keys: 32, rounds: 25, localize_prob: 0.3, async_prob: 0.3 };

for (const mode of ["classic", "lapse"] as const) {
  Deno.test(`3x2 ${mode}, pattern all: every key ends at workers x rounds`, async () => {
    const run = await runPsCheck({ mode, model: ALL });
    const m = assertConsistent(run, 3);
    const expected = 6 * ALL.rounds;
    assert.equal(m.seen_min, expected);
    assert.equal(m.seen_max, expected);
    assert.equal(m.pushes, ALL.keys * expected);
    assert.equal(m.untouched_keys, 0);
    if (mode === "lapse") assert.ok(sum(run, "transfers_out") > 0, "lapse moved keys");
    else assert.equal(sum(run, "transfers_out"), 0, "classic never moves a key");
  });
}

for (const mode of ["classic", "lapse"] as const) {
  Deno.test(`3x2 ${mode}, pattern partial: never-pushed keys read their init`, async () => {
    // Keys k mod 3 == 2 are never pushed; under lapse they are localized (moved) all the same.
    const model = { ...ALL, pattern: "partial", keys: 30, localize_prob: 0.8, storm_every: 2 };
    const run = await runPsCheck({ mode, model });
    const m = assertConsistent(run, 3);
    assert.equal(m.untouched_keys, 10);
    assert.equal(m.untouched_max, 0);
    assert.equal(m.seen_min, 6 * ALL.rounds);
    assert.equal(m.seen_max, 6 * ALL.rounds);
  });
}

// --- (b) the stress test: localize storms under lapse ---------------------------------------

// Few keys, many rounds, most pushes and random localizes not awaited, a storm every 2 rounds
// (every 8th at a barrier): requests race relocations all the time.
const STRESS = {
  pattern: "random",
  keys: 12,
  batch: 3,
  rounds: 250,
  localize_prob: 0.6,
  async_prob: 0.5,
  storm_every: 2,
};

/** Pushes of pattern random: `batch` per round, plus a pair (lead, follower) every odd round. */
function randomPushes(workers: number, m: { rounds: number; batch: number }): number {
  return workers * (m.rounds * m.batch + 2 * Math.floor(m.rounds / 2));
}

for (const location_caches of [true, false]) {
  Deno.test(
    `3x2 lapse, location_caches ${location_caches}: localize storms keep every key consistent`,
    async () => {
      const run = await runPsCheck({ mode: "lapse", location_caches, model: STRESS });
      const m = assertConsistent(run, 3);
      assert.equal(m.pushes, randomPushes(6, STRESS));
      assert.ok(sum(run, "transfers_out") > 0, "keys moved");
      console.log(
        `    transfers ${sum(run, "transfers_out")}, forwards ${sum(run, "forwards")}, ` +
          `queued ${sum(run, "queued")}`,
      );
    },
  );
}

Deno.test("4x2 lapse, random placement, localize ahead: consistent and drained", async () => {
  const model = { ...STRESS, seed: 7, rounds: 150, keys: 16, batch: 4 };
  const run = await runPsCheck({
    mode: "lapse",
    nodes: 4,
    placement: "random",
    model,
    seed: 3,
    localize: [{ table: "C", when: "ahead", keys: "next", steps: 2 }],
  });
  const m = assertConsistent(run, 4);
  assert.equal(m.pushes, randomPushes(8, model));
});

// --- (c) classic_remote: every access through the server thread ---------------------------

Deno.test("3x2 classic_remote, pattern all: every key ends at workers x rounds", async () => {
  const run = await runPsCheck({ mode: "classic_remote", model: ALL });
  const m = assertConsistent(run, 3);
  assert.equal(m.seen_min, 6 * ALL.rounds);
  assert.equal(m.seen_max, 6 * ALL.rounds);
  assert.equal(run.epochs[0].local_fraction, 0, "classic_remote serves nothing locally");
});

Deno.test("a job the driver gives up on is aborted and the local cluster stops", async () => {
  // pscheck with far too many rounds for the deadline: the abort must end it promptly.
  const raw = {
    task: "pscheck",
    data: {},
    model: { keys: 64, rounds: 10_000_000, pattern: "all" },
    cluster: { nodes: 2, workers_per_node: 1 },
    ps: { mode: "lapse" },
  };
  const config = validateJobConfig(raw, pscheck.schema);
  const t0 = performance.now();
  await assert.rejects(
    launchJob(config, { signal: AbortSignal.timeout(1500), onNodeLine: () => {} }),
    /job failed: stopped by the driver/,
  );
  assert.ok(performance.now() - t0 < 20_000, "the abort ended the job and the cluster quickly");
  // A signal that fires while the driver is still connecting ends the job too.
  await assert.rejects(
    launchJob(config, { signal: AbortSignal.timeout(1), onNodeLine: () => {} }),
    /job failed: stopped by the driver/,
  );
});
