/**
 * The driver side of a job: submits a config to node 0 of a cluster and follows it to the end.
 *
 * @module
 */
import {
  type DriverEvent,
  fromNamed,
  Msg,
  type SubmitMessage,
  validateMessage,
} from "../server/messages.ts";
import { dialDriver } from "./dial.ts";
import { type JobConfig } from "../core/types.ts";
import { USER_ERROR } from "../core/errors.ts";
import { HEARTBEAT_TYPE, PEER_TIMEOUT_MS_DEFAULT } from "../server/peers.ts";

/** What a job reports while it runs. */
export interface JobEvents {
  onInfo?(info: { job: number; nodes: number; workers: number }): void;
  onProgress?(points: number, epochPoints: number): void;
  onEpoch?(epoch: number, metrics: Record<string, number>): void;
  onLog?(node: number, message: string): void;
}

/** The end of a job: wall time and per-node statistics. */
export interface JobSummary {
  /** Seconds from the start of the worker threads to the job's end. */
  wallSeconds: number;
  /** Seconds from the start of the worker threads to the job's first barrier (data loading). */
  loadSeconds: number;
  /** Each node's statistics, by node id (names as in reports: `pending_requests`, ...). */
  nodes: Record<string, number>[];
}

/** A job that failed on the cluster (a task error, a worker crash, an aborted job). */
export class JobError extends Error {
  readonly node: number;
  /** Reported by the CLI as one line (exit 2), like other user-facing failures. */
  readonly [USER_ERROR] = true;
  constructor(message: string, node: number) {
    super(`job failed: ${message}`);
    this.name = "JobError";
    this.node = node;
  }
}

/**
 * Runs `config` on the cluster whose node 0 listens at `address`.
 *
 * @example Against a running cluster (see `lapse serve`)
 * ```ts ignore
 * const summary = await runJob("127.0.0.1:7000", token, config, {
 *   onEpoch: (e, m) => console.log(e, m.test_rmse),
 * });
 * ```
 */
export async function runJob(
  address: string,
  token: string,
  config: JobConfig,
  events: JobEvents = {},
  connectTimeoutMs = 30_000,
  signal?: AbortSignal,
): Promise<JobSummary> {
  const stopped = () => new JobError(`stopped by the driver: ${signal?.reason ?? "aborted"}`, 0);
  if (signal?.aborted) throw stopped();
  const conn = await dialDriver(address, token, connectTimeoutMs);
  let onAbort = () => {};
  let watchdog: ReturnType<typeof setInterval> | undefined;
  try {
    return await new Promise<JobSummary>((resolve, reject) => {
      let ended = false;
      // Node 0 sends heartbeats (server/peers.ts): silence for ps.peer_timeout_ms means it is
      // stopped, hung or cut off, and the job fails instead of waiting forever. A late timer
      // (this process was stalled) judges nobody.
      const silenceMs = config.ps?.peer_timeout_ms ?? PEER_TIMEOUT_MS_DEFAULT;
      let seen = -1, heardAt = performance.now(), lastTick = heardAt;
      watchdog = setInterval(() => {
        const now = performance.now();
        const stalled = now - lastTick > silenceMs / 2;
        lastTick = now;
        if (stalled || conn.messagesReceived !== seen) {
          seen = conn.messagesReceived;
          heardAt = now;
        } else if (now - heardAt > silenceMs && !ended) {
          ended = true;
          reject(
            new JobError(
              `node 0 (${address}) sent nothing for ${Math.round(now - heardAt)} ms ` +
                `(ps.peer_timeout_ms=${silenceMs}): it is stopped, hung or cut off`,
              0,
            ),
          );
          conn.abort("node 0 is silent");
        }
      }, Math.min(1000, Math.floor(silenceMs / 4)));
      // Giving up on a job closes the connection: node 0 then aborts it on every node.
      onAbort = () => {
        if (ended) return;
        ended = true;
        reject(stopped());
        conn.abort("the driver gave up on the job");
      };
      // The signal may have fired while we were connecting: then no event will come.
      if (signal?.aborted) queueMicrotask(onAbort);
      else signal?.addEventListener("abort", onAbort, { once: true });
      conn.onMessage = (raw) => {
        if (raw.t === HEARTBEAT_TYPE) return;
        const why = validateMessage(raw, { from: "coordinator" });
        if (why !== null) {
          ended = true;
          reject(new JobError(`Node 0 (${address}) sent a malformed message: ${why}`, 0));
          conn.abort("malformed message");
          return;
        }
        const msg = raw as unknown as DriverEvent;
        switch (msg.t) {
          case Msg.JOB_INFO:
            events.onInfo?.({ job: msg.job, nodes: msg.nodes, workers: msg.workers });
            break;
          case Msg.JOB_PROGRESS:
            events.onProgress?.(msg.points, msg.epochPoints);
            break;
          case Msg.JOB_EPOCH:
            events.onEpoch?.(msg.epoch, fromNamed(msg.metrics));
            break;
          case Msg.JOB_LOG:
            events.onLog?.(msg.node, msg.message);
            break;
          case Msg.JOB_DONE:
            ended = true;
            resolve({
              wallSeconds: msg.wallSeconds,
              loadSeconds: msg.loadSeconds,
              nodes: msg.nodeStats.map(fromNamed),
            });
            break;
          case Msg.JOB_ERROR:
            ended = true;
            reject(new JobError(msg.message, msg.node));
            break;
          case Msg.ERROR:
            ended = true;
            reject(new JobError(msg.message, 0));
            break;
        }
      };
      conn.onClose = (reason: string) => {
        if (!ended) reject(new JobError(`Node 0 (${address}) closed the connection: ${reason}`, 0));
      };
      conn.start();
      const submit: SubmitMessage = { t: Msg.SUBMIT, config };
      conn.send(submit);
    });
  } finally {
    clearInterval(watchdog);
    signal?.removeEventListener("abort", onAbort);
    await conn.close();
  }
}
