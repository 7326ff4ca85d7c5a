/**
 * Test RMSE per epoch of mf on three rating scales, with the defaults or the model settings given
 * as JSON: the shipped generator (4000 x 4000, 800k ratings, noise 0.1), a MatrixMarket file of
 * rank-10 ratings with std 0.3 (noise 0.1) and a 1-5 star CSV (noise 0.3). Runs the plain loop
 * (the task's kernel, one thread), so it is quick and free of cluster noise.
 *
 *     deno run -A bench/mf_defaults.ts                      # the defaults
 *     deno run -A bench/mf_defaults.ts '{"optimizer":"adagrad"}'
 *     deno run -A bench/mf_defaults.ts '{"optimizer":"sgd","biases":false,"standardize":false,
 *       "rank":100,"lr":0.05,"lambda":0.02,"decay":0.1,"init_scale":0.2,"epochs":10}'  # before
 *
 * @module
 */
import type { JobConfig } from "../core/types.ts";
import { runPlainMf } from "../tasks/mf_plain.ts";
import { writeSmallScaleMm, writeStarsCsv } from "../test/tasks/mf_files.ts";

if (import.meta.main) {
  const dir = await Deno.makeTempDir({ prefix: "lapse-mf-defaults-" });
  try {
    const mmNoise = await writeSmallScaleMm(`${dir}/small.mtx`, {
      rows: 3000,
      cols: 3000,
      nnz: 300000,
    });
    const csvNoise = await writeStarsCsv(`${dir}/stars.csv`, {
      rows: 3000,
      cols: 2000,
      nnz: 300000,
    });
    const model = JSON.parse(Deno.args[0] ?? "{}");
    const sets: [string, number, Record<string, unknown>][] = [
      ["generator", 0.1, {
        generate: { rows: 4000, cols: 4000, nnz: 800000, rank: 10, noise: 0.1, seed: 1 },
      }],
      ["std-0.3 mtx", mmNoise, { file: `${dir}/small.mtx`, rows: 3000, cols: 3000 }],
      ["1-5 stars", csvNoise, { file: `${dir}/stars.csv`, rows: 3000, cols: 2000, index_base: 1 }],
    ];
    for (const [name, noise, data] of sets) {
      const r = await runPlainMf({ task: "mf", seed: 1, data, model } as unknown as JobConfig);
      console.log(
        `${name.padEnd(12)} floor ${noise}  test RMSE per epoch ${
          r.epochs.map((e) => e.test_rmse.toFixed(3)).join(" ")
        }  final ${(r.test_rmse / noise).toFixed(2)}x the floor`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
