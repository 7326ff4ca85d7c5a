/**
 * Lapse-TS: a parameter server with dynamic parameter allocation.
 *
 * The public library API: the worker API a task's training loop calls, the task contract, the
 * config types, and the driver entry points. Run a job from code like `lapse train` does:
 *
 * @example Train the MF demo on an embedded local cluster
 * ```ts ignore
 * import { launchJob, loadTask, validateJobConfig } from "./mod.ts";
 * const mf = await loadTask("mf");
 * const config = validateJobConfig({
 *   task: "mf",
 *   data: { generate: { rows: 1000, cols: 1000, nnz: 50000 } },
 *   model: { rank: 10, epochs: 2 },
 * }, mf.schema);
 * const summary = await launchJob(config, {
 *   events: { onEpoch: (epoch, m) => console.log(epoch, m.test_rmse, m.local_fraction) },
 * });
 * console.log(`done in ${summary.wallSeconds.toFixed(1)}s`);
 * ```
 *
 * @example A task's training loop (see tasks/mf.ts for a whole one)
 * ```ts ignore
 * import type { TaskContext } from "./mod.ts";
 * export async function run(ctx: TaskContext) {
 *   const { ps } = ctx;
 *   const W = ps.table("W");
 *   const keys = Uint32Array.of(ctx.worker);
 *   await ps.localize(W.id, keys); // move my key here (a no-op in classic modes)
 *   const out = new Float32Array(W.dim);
 *   const p = ps.pull(W.id, keys, out); // undefined: local, done synchronously
 *   if (p) await p;
 *   ps.push(W.id, keys, out.fill(0.1)); // local: applied already
 *   await ps.barrier();
 * }
 * ```
 *
 * @module
 */
export type { AccessCounters, Keys, ParameterServer, TableInfo } from "./core/parameter_server.ts";
export type { InitSpec, TableSpec } from "./core/types.ts";
export type { TaskContext, TaskDefinition } from "./core/task.ts";
export type {
  FieldSchema,
  JobConfig,
  LocalizeDirective,
  PsMode,
  TaskSchema,
} from "./core/types.ts";
export { ConfigError } from "./core/errors.ts";
export { loadJobConfig, validateJobConfig } from "./config/job_config.ts";
export { loadTask, TASK_NAMES } from "./tasks/registry.ts";
export { JobError, type JobEvents, type JobSummary, runJob } from "./driver/driver.ts";
export { launchJob, type LaunchOptions } from "./driver/launch.ts";
export { type LocalCluster, startLocalCluster } from "./driver/local_cluster.ts";
