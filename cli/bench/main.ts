/**
 * `lapse bench`: side-by-side benchmarks, one run at a time (the machines are small).
 *
 * - `lapse bench TASK` (task_bench.ts): the same job of a task (mf, ...) in several modes and
 *   on several node counts, plus the task's plain in-process loop, as one table.
 * - `lapse bench localize` (localize.ts): localize latency and batched remote pull/push
 *   throughput between two nodes, next to raw loopback TCP.
 *
 * Every cluster run is an embedded local cluster (harness.ts), stopped after the run.
 *
 * @module
 */
import { UsageError } from "../../core/errors.ts";
import { benchLocalize } from "./localize.ts";
import { benchTask } from "./task_bench.ts";
import { BENCH_TASKS } from "./tasks.ts";

function overview(): string {
  const tasks = Object.keys(BENCH_TASKS);
  return `lapse bench: side-by-side benchmarks (one run at a time)

usage: lapse bench TASK [options]      the same job in several modes and node counts
                                       (TASK: ${tasks.join(", ")})
       lapse bench localize [options]  localize latency, remote pull/push vs raw TCP

run "lapse bench ${tasks[0]} --help" or "lapse bench localize --help" for the options;
micro-benchmarks of the store and the wire: deno bench --allow-all bench/`;
}

/** Runs `lapse bench`. */
export async function bench(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(overview());
    return sub === undefined ? 2 : 0;
  }
  if (sub === "localize") return await benchLocalize(rest);
  if (Object.hasOwn(BENCH_TASKS, sub)) return await benchTask(sub, rest);
  throw new UsageError(
    `unknown benchmark "${sub}": expected ${
      [...Object.keys(BENCH_TASKS), "localize"].join(", ")
    }\nrun "lapse bench --help" for the usage`,
  );
}
