/**
 * CI's share of the randomized protocol simulation (test/server/sim_run.ts): a few hundred
 * seeds, each a random cluster, workload, scheduler and fault. A failure names its seed:
 * `deno task sim --seeds 1 --from SEED` replays it exactly.
 */
import assert from "node:assert/strict";
import { runSeeds } from "./sim_run.ts";

const SEEDS = 300;

Deno.test(`protocol simulation: seeds 1..${SEEDS} (random clusters, schedulers, aborts, crashes)`, () => {
  const failures = runSeeds(1, SEEDS);
  assert.deepEqual(
    failures.map((f) =>
      `${f.scenario}: ${f.error} (replay: deno task sim --seeds 1 --from ${f.seed})`
    ),
    [],
  );
});

Deno.test("protocol simulation: a seed replays exactly", async () => {
  const { runSeed } = await import("./sim_run.ts");
  assert.deepEqual(runSeed(4711), runSeed(4711));
});
