/**
 * The entry of a worker thread: attaches to the node's tables, loads the task and runs its
 * training loop with a {@linkcode WorkerPs}.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { loadTask } from "../tasks/registry.ts";
import type { TaskContext } from "../core/task.ts";
import type { ToServer, ToWorker, WorkerInit } from "../server/worker_protocol.ts";
import { WorkerPs } from "./worker_api.ts";
import { isUserError } from "../core/errors.ts";

function post(msg: ToServer, transfer?: Transferable[]): void {
  self.postMessage(msg, transfer ? { transfer } : undefined);
}

let ps: WorkerPs | null = null;

self.onmessage = (e: MessageEvent) => {
  if (ps !== null) {
    ps.onServerMessage(e.data as ToWorker);
    return;
  }
  start(e.data as WorkerInit).catch((err) => {
    // A user error (bad data file, diverging lr) is reported as its one line, without a stack.
    post({
      op: "failed",
      message: err?.message ?? String(err),
      stack: isUserError(err) ? undefined : err?.stack,
    });
  });
};

async function start(init: WorkerInit): Promise<void> {
  const { config } = init;
  ps = new WorkerPs(init.tables, config.ps.mode, post, config.ps.batch_keys_max, {
    staleness: config.ps.staleness ?? 1,
    clocks: init.clocks,
  });
  const progress = new Float64Array(init.progress);
  const task = await loadTask(config.task);
  const ctx: TaskContext = {
    ps,
    config,
    worker: init.worker,
    workers: init.workers,
    node: init.node,
    nodes: init.nodes,
    seed: config.seed,
    progress(points: number) {
      progress[init.localIndex] += points;
    },
    epochEnd(epoch: number, sums: Record<string, number>) {
      const c = ps!.takeCounters();
      post({ op: "epoch", epoch, sums, local: c.local, remote: c.remote });
    },
    epochPoints(points: number) {
      post({ op: "points", points });
    },
    log(message: string) {
      post({ op: "log", message });
    },
    checkpoint(epoch: number, state: Record<string, unknown>): Promise<void> {
      const every = config.checkpoint?.every_epochs ?? 0;
      if (every === 0 || (epoch + 1) % every !== 0) return Promise.resolve();
      return ps!.checkpointBarrier(epoch, state);
    },
    resumeState: (init.resume?.state ?? null) as Record<string, unknown> | null,
  };
  await task.run(ctx);
  await ps.finish();
  post({ op: "done" });
}
