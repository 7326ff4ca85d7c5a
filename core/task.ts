/**
 * The contract between a task (mf, kge, w2v, pscheck, ...: tasks/registry.ts lists them) and
 * the system.
 *
 * A task module exports a {@linkcode TaskDefinition} as `task`. The driver and every node
 * import it: `tables` runs everywhere (it must be deterministic), `run` runs on every worker
 * thread, `summarize` runs on node 0 to turn the summed per-epoch numbers of all workers into
 * the metrics that are printed.
 *
 * Writing the trained model (`lapse train --out PATH`): a task that can declares `model.out`
 * (a string field with `path: true`) in its schema; `--out` sets it to an absolute path. After
 * its last epoch (and the barrier after it, so every update is in), worker 0 pulls what it needs
 * and writes it on its node (node 0's machine), each file to a temporary name in the same folder
 * and then renamed, the file that marks a complete model last (mf: `tasks/mf_model.ts`, kge:
 * `tasks/kge_out.ts`, w2v: `data/word_vectors.ts`; `.npy` helpers in `data/npy.ts`). When PATH is
 * a folder after the job, `lapse train` adds `run.json` there: the config and the final metrics.
 *
 * @module
 */
import type { ParameterServer } from "./parameter_server.ts";
import type { JobConfig, TableSpec, TaskSchema } from "./types.ts";

/** What a worker thread gets. */
export interface TaskContext {
  /** The worker API. */
  ps: ParameterServer;
  /** The whole validated job config. */
  config: JobConfig;
  /** Global worker rank, 0 .. workers-1 (node-major: node n has ranks n*wpn .. n*wpn+wpn-1). */
  worker: number;
  /** Number of workers in the job (nodes x workers_per_node). */
  workers: number;
  /** This worker's node, 0 .. nodes-1. */
  node: number;
  nodes: number;
  /** The job seed; the same on every node. */
  seed: number;
  /** Adds `points` data points to the progress of the current epoch (cheap; call per batch). */
  progress(points: number): void;
  /**
   * Epoch times are measured on node 0 from the job's first barrier to the first epoch end
   * (then from epoch end to epoch end): a task that loads data should barrier once when it is
   * ready to train, so that loading does not count as training time.
   *
   * Keys of `sums` ending in `_max` are combined by maximum instead of sum; `eval_s_max`
   * (seconds spent evaluating) is taken out of the epoch's training time and shown as eval_s.
   *
   * Ends an epoch for this worker: `sums` are added up over all workers and given to the
   * task's `summarize` on node 0. Resolves when the report is sent (not a barrier).
   */
  epochEnd(epoch: number, sums: Record<string, number>): void;
  /** Tells the driver how many data points one epoch has (summed over all workers). */
  epochPoints(points: number): void;
  /** A log line on the node's stderr and the driver. */
  log(message: string): void;
  /**
   * Checkpoint hook (optional for a task; the system always provides it). Call it at the end of
   * every epoch, from every worker, once the epoch's updates are done, with what this worker
   * needs to go on from the next epoch (a structured-clonable, JSON-able object, e.g. the next
   * epoch, the learning-rate state, the data order seed). When the job checkpoints after this
   * epoch (`checkpoint.every_epochs`), it waits until every node has written the keys it owns
   * and the states of its workers and the checkpoint is complete; otherwise it resolves at once.
   * A task that never calls it has no checkpoints.
   */
  checkpoint?(epoch: number, state: Record<string, unknown>): Promise<void>;
  /**
   * When the job resumes (`lapse train --resume DIR`): the state this worker gave to
   * `checkpoint` in the checkpoint it resumes from; the tables already hold that checkpoint's
   * values. Absent or null for a fresh start.
   */
  resumeState?: Record<string, unknown> | null;
}

/** A task module's export. */
export interface TaskDefinition {
  name: string;
  /** The task-specific part of the config schema: sections `data` and `model`. */
  schema: TaskSchema;
  /**
   * Optional, runs in the driver (`lapse train`, `lapse bench`) before the job is submitted:
   * may fill in config values that depend on the data (mf: the matrix size from the file), so
   * that every node gets a complete config. Throw a user error for a data problem.
   */
  prepare?(config: JobConfig): Promise<void>;
  /** The tables of the job, from the validated config. */
  tables(config: JobConfig): TableSpec[];
  /** The training loop of one worker. */
  run(ctx: TaskContext): Promise<void>;
  /**
   * True if `run` calls `ctx.checkpoint` at every epoch end and resumes from
   * `ctx.resumeState`: only then does a job of the task take `checkpoint.dir` or `resume.dir`
   * (node 0 refuses them otherwise, before training, instead of a run without checkpoints).
   */
  checkpoints?: boolean;
  /**
   * Optional: what the printed metrics mean, in a line or two (`lapse train` prints it before
   * the first epoch; e.g. "train_loss: mean squared training error ...").
   */
  columns?: string;
  /** Turns summed per-epoch numbers into printed metrics (e.g. sse, n -> rmse). */
  summarize(sums: Record<string, number>): Record<string, number>;
  /**
   * Optional: judges a finished job by its last epoch's metrics; a message means it failed
   * (`lapse train` prints it and exits 1), null means it passed. For self-tests like pscheck.
   */
  verdict?(metrics: Record<string, number>): string | null;
}
