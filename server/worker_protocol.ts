/**
 * Messages between a node's server thread and its worker threads (postMessage).
 *
 * Stale mode adds clocks: a pull's `need` (the clock its values must be fresh to), the clock a
 * reply's values are fresh to, `clock` messages (the worker flushed its pushes of the clocks
 * before it, posted after those pushes; `idleAt`: the barriers completed before the one it now
 * waits in, or CLOCK_IDLE once it finished),
 * and the worker's clock at a barrier, answered with the largest clock of all workers (every
 * worker continues from there).
 *
 * @module
 */
import type { JobConfig } from "../core/types.ts";
import type { SharedTable } from "./store.ts";

/** Messages from a worker thread to its server thread. */
export type ToServer =
  | {
    op: "pull";
    id: number;
    tb: number;
    keys: Uint32Array;
    /** Stale mode: the clock the values must be fresh to, the barriers the worker completed. */
    need?: number;
    barriers?: number;
    /**
     * The caller's `out` when it is a view of shared memory and every key of the call went
     * remote (rows in key order): the server thread writes the values there itself, and the
     * reply carries none.
     */
    into?: Float32Array;
  }
  | { op: "push"; id: number; tb: number; keys: Uint32Array; vals: Float32Array }
  | { op: "localize"; id: number; tb: number; keys: Uint32Array }
  | { op: "barrier"; id: number; clock?: number }
  | { op: "clock"; clock: number; idleAt?: number }
  | { op: "checkpoint"; id: number; epoch: number; state: unknown }
  | { op: "epoch"; epoch: number; sums: Record<string, number>; local: number; remote: number }
  | { op: "points"; points: number }
  | { op: "log"; message: string }
  | { op: "done" }
  | { op: "failed"; message: string; stack?: string };

/** Messages from the server thread to a worker thread. */
export type ToWorker =
  | {
    op: "reply";
    id: number;
    vals: Float32Array | null;
    clock?: number;
    /** A push's deltas array, given back for the worker's next large request. */
    spare?: Float32Array;
  }
  | { op: "error"; id: number; message: string };

/** The first message a worker thread gets. */
export interface WorkerInit {
  config: JobConfig;
  tables: SharedTable[];
  worker: number;
  workers: number;
  node: number;
  nodes: number;
  /** Float64Array over it, one slot per worker of the node: points done (progress). */
  progress: SharedArrayBuffer;
  localIndex: number;
  /** Stale mode: Int32Array `[least clock every worker has flushed up to]`, kept by the node. */
  clocks: SharedArrayBuffer;
  /** The state this worker gave to checkpoint() in the checkpoint the job resumes from. */
  resume?: { epoch: number; state: unknown };
}
