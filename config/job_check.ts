/**
 * The checks of a job config that need its task: the tables it would create. Run by the driver
 * before any node starts (so an impossible size is one line at once, not a failure seconds
 * later on every node), and by node 0 on every submitted config (a driver is not trusted to
 * have checked: it may be another version, or not `lapse train` at all).
 *
 * @module
 */
import type { TaskDefinition } from "../core/task.ts";
import {
  type JobConfig,
  TABLE_BYTES_MAX,
  TABLE_DIM_MAX,
  TABLE_KEYS_MAX,
  type TableSpec,
} from "../core/types.ts";
import { ConfigError, isUserError } from "../core/errors.ts";
import { validateJobConfig } from "./job_config.ts";

/** Checks table specs against the store's limits; a {@linkcode ConfigError} names the table. */
export function checkTables(task: string, specs: readonly TableSpec[]): void {
  for (const t of specs) {
    const where = `${task}: table "${t.name}"`;
    if (!Number.isInteger(t.keys) || t.keys < 1 || t.keys > TABLE_KEYS_MAX) {
      throw new ConfigError(`${where} would have ${t.keys} keys: expected 1 .. 2^31-1`, {
        hint: "use a smaller data size (data.rows, data.cols, ...)",
      });
    }
    if (!Number.isInteger(t.dim) || t.dim < 1 || t.dim > TABLE_DIM_MAX) {
      throw new ConfigError(
        `${where} would have ${t.dim} floats per key: expected 1 .. ${TABLE_DIM_MAX}`,
        { hint: "use a smaller model.rank / model.dim" },
      );
    }
    const bytes = t.keys * t.dim * 4;
    if (bytes > TABLE_BYTES_MAX) {
      throw new ConfigError(
        `${where} would need ${bytes} bytes (${t.keys} keys x ${t.dim} floats), more than ` +
          `the limit of ${TABLE_BYTES_MAX} bytes per table`,
        { hint: "use fewer keys or a smaller dim" },
      );
    }
  }
}

/**
 * Everything about a validated config that can be checked without data: the task's own checks
 * (run by its `tables()`, e.g. nnz above rows x cols) and the size of every table. A problem
 * is a {@linkcode ConfigError} (exit 2). Returns the tables.
 */
export function checkJob(config: JobConfig, task: TaskDefinition): TableSpec[] {
  let specs: TableSpec[];
  try {
    specs = task.tables(config);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (e instanceof RangeError || e instanceof TypeError || isUserError(e)) {
      throw new ConfigError(`${prefixed(task.name, (e as Error).message)}`);
    }
    throw e;
  }
  checkTables(task.name, specs);
  return specs;
}

/**
 * Node 0's check of a config that came over the wire: the same schema validation as
 * `lapse train` (`validateJobConfig`), then {@linkcode checkJob}.
 *
 * @throws {ConfigError} naming the problem.
 */
export function revalidateJob(raw: unknown, task: TaskDefinition): JobConfig {
  const config = validateJobConfig(raw, task.schema);
  checkJob(config, task);
  return config;
}

function prefixed(task: string, message: string): string {
  return message.startsWith(`${task}:`) ? message : `${task}: ${message}`;
}
