/**
 * Message types between nodes, and between node 0 and the driver. Bodies are CBOR maps with a
 * numeric `t`; keys and values travel as typed arrays (see wire.ts).
 *
 * Data plane (one table `tb` per message; `r` request ids, `k` keys, `p` positions in the
 * requester's batch, `v` values, `o` the origin node, `d` the destination node, `h` holder).
 * Stale mode adds `c`: on PULL the clock the value must be fresh to (every worker's pushes of
 * earlier clocks included) and `b` the barriers the reader completed, on PULL_R the clock the
 * served values are fresh to:
 *
 * @module
 */
export const Msg = {
  // data plane
  PULL: 1, // { tb, o, r, k, p, c, b }        -> served or forwarded
  PUSH: 2, // { tb, o, r, k, p, v }
  PULL_R: 3, // { tb, h, r, k, p, v, c }       holder -> origin
  PUSH_R: 4, // { tb, h, r, k }                holder -> origin
  LOCALIZE: 5, // { tb, d, k }                 requester -> home
  HANDOVER: 6, // { tb, d, k }                 home -> old owner
  TRANSFER: 7, // { tb, k, v }                 holder -> new owner
  CLOCK: 8, // { w, c, i }                     stale: worker w flushed clocks < c (i >= 0: idle)
  // control plane between nodes (node 0 coordinates)
  PREPARE: 20, // { job, config }              0 -> all: create tables, init home keys
  PREPARED: 21, // { job }                     all -> 0
  RUN: 22, // { job }                          0 -> all: start worker threads
  BARRIER: 23, // { job, gen, c }              all -> 0 when every local worker arrived (c: stale clock)
  BARRIER_GO: 24, // { job, gen, c }           0 -> all (c: the largest worker clock)
  PROGRESS: 25, // { job, points, epoch_points }
  EPOCH: 26, // { job, epoch, sums, local, remote, messages, bytes }
  WORKERS_DONE: 27, // { job }                 all -> 0
  FINISH: 28, // { job }                       0 -> all: free the job
  FINISHED: 29, // { job, stats }
  ABORT: 30, // { job, reason }                0 -> all
  FAILED: 31, // { job, node, message }        any -> 0: a worker failed
  LOG: 32, // { job, node, message }
  // checkpoints (see server/checkpoint.ts)
  CHECKPOINT_READY: 33, // { job, epoch }     all -> 0: every local worker waits in checkpoint()
  CHECKPOINT_WRITE: 34, // { job, epoch }     0 -> all: write your file
  CHECKPOINT_DONE: 35, // { job, epoch, file, write_s } all -> 0
  CHECKPOINT_GO: 36, // { job, epoch }        0 -> all: the manifest is written; workers go on
  // driver <-> node 0
  SUBMIT: 40, // { config }                    driver -> 0
  JOB_INFO: 41, // { job, nodes, workers }     0 -> driver
  JOB_PROGRESS: 42, // { points, epoch_points }
  JOB_EPOCH: 43, // { epoch, metrics }
  JOB_DONE: 44, // { summary }
  JOB_ERROR: 45, // { message, node }
  JOB_LOG: 46, // { node, message }
  ERROR: 47, // { message }                    answer to a request that could not be handled
} as const;

/** Names for log lines. */
export function msgName(t: number): string {
  for (const [name, value] of Object.entries(Msg)) if (value === t) return name;
  return `#${t}`;
}
