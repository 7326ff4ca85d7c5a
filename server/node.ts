/**
 * The server thread of one node: runs jobs (tables, worker threads, barriers, progress and
 * metrics), routes worker requests into the data plane ({@linkcode PsCore}), and, on node 0,
 * coordinates the job for the driver.
 *
 * @module
 */
import { addSums } from "../core/stats.ts";
import type { JobConfig } from "../core/types.ts";
import type { TaskDefinition } from "../core/task.ts";
import { AssertionError } from "../core/errors.ts";
import type { ToServer, ToWorker, WorkerInit } from "./worker_protocol.ts";
import {
  type ControlMessage,
  type DataMessage,
  type DriverEvent,
  type EpochMessage,
  fromNamed,
  isDataType,
  Msg,
  msgName,
  type NodeMessage,
  OTHER_JOB,
  type SubmitMessage,
  toNamed,
  validateMessage,
} from "./messages.ts";
import { PsCore } from "./ps_core.ts";
import { epochProblem } from "./epoch_check.ts";
import { revalidateJob } from "../config/job_check.ts";
import { checkDataPaths } from "../config/data_dirs.ts";
import {
  CHECKPOINT_FORMAT,
  type CheckpointFile,
  type CheckpointManifest,
  type NodeFile,
  readManifest,
  readNodeFile,
  removeOlderNodeFiles,
  restoreRehomed,
  restoreTables,
  writeManifest,
  writeNodeFile,
} from "./checkpoint.ts";
import { RateLimitedLog } from "./rate_limited_log.ts";
import type { Message } from "./wire.ts";

/** How the node reaches the other nodes. */
export interface NodeTransport {
  send(node: number, msg: NodeMessage): void;
  /** Messages and bytes sent to other nodes so far. */
  stats(): { messagesSent: number; bytesSent: number };
  /** True if `node` can be reached now. */
  isConnected(node: number): boolean;
  /**
   * Sets how long a node that sends nothing is tolerated before it counts as lost (the running
   * job's `ps.peer_timeout_ms`; see server/peers.ts). Optional: in-memory transports lack it.
   */
  setPeerTimeout?(ms: number): void;
  /**
   * Sets the largest frame between nodes (the running job's `ps.max_frame_bytes`; without an
   * argument: back to the node's own limit). Optional: in-memory transports lack it.
   */
  setFrameLimit?(bytes?: number): void;
}

/**
 * A connected driver (node 0 only): a `Connection` of `lapse serve`, set up by
 * {@linkcode LapseNode.acceptDriver}.
 */
export interface DriverConnection {
  send(msg: DriverEvent): void;
  close(): unknown;
  onMessage: (msg: Message) => unknown;
  onClose: (reason: string) => void;
}

/** What the node keeps of a driver: where its job's events go. */
interface DriverLink {
  /** Never throws: a driver that is gone is not an error of the node (the message is dropped). */
  send(msg: DriverEvent): void;
}

const PROGRESS_INTERVAL_MS = 200;
/** Peer timeout between jobs (and for configs without ps.peer_timeout_ms). */
const PEER_TIMEOUT_FALLBACK_MS = 30_000;
/** How often a preparing node looks whether a lost peer has come back. */
const MESH_POLL_MS = 50;

/** One node's part of a running job. */
class NodeJob {
  readonly id: number;
  readonly config: JobConfig;
  readonly task: TaskDefinition;
  readonly core: PsCore;
  /** The tables' shapes, for the message validator. */
  readonly shapes: { keys: number; dim: number }[];
  readonly workers: Worker[] = [];
  readonly progress: Float64Array;
  readonly barrierWaiting: { worker: number; id: number }[] = [];
  /** Stale mode: the largest clock of this node's workers in the current barrier. */
  barrierClock = 0;
  readonly epochSums = new Map<
    number,
    { n: number; sums: Record<string, number>; local: number; remote: number }
  >();
  workersDone = 0;
  pointsDeclared = 0;
  lastProgressSent = -1;
  lastDeclaredSent = -1;
  /** The job failed here already (a second failure is not reported again). */
  failed = false;
  timer: ReturnType<typeof setInterval> | undefined;
  sentAtLastEpoch = { messagesSent: 0, bytesSent: 0 };
  /** Local workers waiting in checkpoint() (local index, request id, their state). */
  readonly checkpointWaiting: { worker: number; id: number; state: unknown }[] = [];
  /** Resumed job: the checkpoint's epoch and its state per global worker rank. */
  resume: { epoch: number; states: Map<number, unknown> } | null = null;
  constructor(id: number, config: JobConfig, task: TaskDefinition, core: PsCore) {
    this.id = id;
    this.config = config;
    this.task = task;
    this.core = core;
    this.shapes = core.tables.map((t) => ({ keys: t.table.keys, dim: t.table.dim }));
    this.progress = new Float64Array(new SharedArrayBuffer(8 * config.cluster.workers_per_node));
  }
}

/** Node 0's view of the job it coordinates. */
class Coordination {
  readonly job: number;
  readonly driver: DriverLink;
  readonly config: JobConfig;
  readonly task: TaskDefinition;
  prepared = 0;
  barrierCount = 0;
  barrierGeneration = 0;
  /** Stale mode: the largest worker clock reported for the current barrier. */
  barrierClock = 0;
  workersDone = 0;
  finished = 0;
  readonly points: number[];
  readonly epochPointsPerNode: number[];
  readonly epochs = new Map<
    number,
    {
      n: number;
      sums: Record<string, number>;
      local: number;
      remote: number;
      messages: number;
      bytes: number;
    }
  >();
  lastEpochAt = 0;
  startedAt = 0;
  epochsReported = 0;
  /** Seconds from the start of the worker threads to the first barrier (data loading). */
  loadSeconds = 0;
  lastProgressAt = 0;
  readonly stats: Record<string, number>[] = [];
  /** Checkpoint in progress: nodes ready, files written, start time. */
  checkpointReady = 0;
  readonly checkpointFiles: CheckpointFile[] = [];
  checkpointStartedAt = 0;
  checkpointsWritten = 0;
  constructor(
    job: number,
    driver: DriverLink,
    config: JobConfig,
    task: TaskDefinition,
    nodes: number,
  ) {
    this.job = job;
    this.driver = driver;
    this.config = config;
    this.task = task;
    this.points = new Array(nodes).fill(0);
    this.epochPointsPerNode = new Array(nodes).fill(0);
  }
}

/** Options of a {@linkcode LapseNode}. */
export interface LapseNodeOptions {
  self: number;
  nodes: number;
  transport: NodeTransport;
  /** The module worker threads run (client/worker_entry.ts; server/ does not import client/). */
  workerUrl: string | URL;
  /**
   * Finds a task by name (injected: the server knows no tasks; `lapse serve` passes the task
   * registry). Rejects with a `RangeError` naming the known tasks for an unknown name.
   */
  loadTask: (name: string) => Promise<TaskDefinition>;
  /**
   * Whether the node's own mesh is complete at construction (default false: `lapse serve`
   * calls {@linkcode LapseNode.meshReady} once every peer is connected).
   */
  meshReady?: boolean;
  /** Where error lines go (stderr by default). */
  log?: (line: string) => void;
  /** Where informational lines go, e.g. the workers' log lines (default: like `log`). */
  info?: (line: string) => void;
  /**
   * Resolved data directories (`--data-dir`): a job whose file fields point elsewhere is
   * refused. Undefined: no check (in-process tests).
   */
  dataDirs?: readonly string[];
}

/** Counters of messages a node received and did not apply (over the node's life). */
export interface DroppedCounts {
  /** Well-formed messages of another job (e.g. leftovers of an aborted job): never applied. */
  otherJob: number;
  /** Messages that failed validation, or did not fit the job's state. */
  malformed: number;
}

/** The server thread of one node. */
export class LapseNode {
  readonly self: number;
  readonly nodes: number;
  readonly #transport: NodeTransport;
  readonly #log: (line: string) => void;
  readonly #info: (line: string) => void;
  readonly #workerUrl: string;
  readonly #loadTask: (name: string) => Promise<TaskDefinition>;
  readonly #dataDirs: readonly string[] | undefined;
  /** Malformed messages: a peer's bug, an error line (rate-limited). */
  readonly #dropLog: RateLimitedLog;
  /** Messages of other jobs: expected after an abort, an informational line (rate-limited). */
  readonly #otherJobLog: RateLimitedLog;
  readonly #dropped: DroppedCounts = { otherJob: 0, malformed: 0 };
  #job: NodeJob | null = null;
  #coord: Coordination | null = null;
  /**
   * Job ids start at a random point so that a restarted node 0 does not reuse the ids of
   * jobs whose messages may still be on their way.
   */
  #nextJob = 1 + (crypto.getRandomValues(new Uint32Array(1))[0] >>> 2);
  /**
   * Messages of other nodes that arrived before this node's own mesh was complete, held in
   * order until it is: a node answers PREPARE only once it can reach every node, so no job
   * runs on a partial mesh (node 0 being connected says nothing about the links between
   * others). Null once the mesh is ready.
   */
  #held: [number, ControlMessage][] | null = [];
  /** The job of the last PREPARE (0 after its ABORT): an older one still loading is dropped. */
  #preparing = 0;
  readonly #meshWaiters: (() => void)[] = [];
  #closed = false;

  constructor(opts: LapseNodeOptions) {
    this.self = opts.self;
    this.nodes = opts.nodes;
    this.#transport = opts.transport;
    this.#log = opts.log ?? ((line) => console.error(line));
    this.#info = opts.info ?? this.#log;
    this.#workerUrl = String(opts.workerUrl);
    this.#loadTask = opts.loadTask;
    this.#dataDirs = opts.dataDirs;
    this.#dropLog = new RateLimitedLog(this.#log);
    this.#otherJobLog = new RateLimitedLog(this.#info);
    if (opts.meshReady) this.#held = null;
  }

  /** The running job's data plane (tests look at it); null between jobs. */
  get core(): PsCore | null {
    return this.#job?.core ?? null;
  }

  /** Messages received and not applied, over the node's life. */
  get dropped(): Readonly<DroppedCounts> {
    return this.#dropped;
  }

  /**
   * The node's mesh is complete: messages held so far are handled, in arrival order, and
   * waiting drivers go on.
   */
  meshReady(): void {
    const held = this.#held;
    if (held === null) return;
    this.#held = null;
    for (const [from, msg] of held) this.#handle(from, msg);
    for (const wake of this.#meshWaiters.splice(0)) wake();
  }

  // --- to node 0, inline when this is node 0 ----------------------------------------------

  #toCoordinator(msg: ControlMessage): void {
    if (this.self === 0) {
      this.#onCoordinatorMessage(0, msg);
      return;
    }
    try {
      this.#transport.send(0, msg);
    } catch (e) {
      // Node 0 is gone (the job ends through onPeerLost), or the message is above the frame
      // limit (ps.max_frame_bytes) or the send queue's: then the job cannot go on.
      this.#log(`node ${this.self}: cannot send to node 0: ${(e as Error).message}`);
      const job = this.#job;
      if (e instanceof RangeError && job !== null && msg.job === job.id) {
        this.#failJob(job, (e as Error).message);
      }
    }
  }

  #toAll(msg: ControlMessage): void {
    for (let n = 0; n < this.nodes; n++) {
      if (n === this.self) continue;
      try {
        this.#transport.send(n, msg);
      } catch (e) {
        // A node that is gone cannot be told; the job is aborted through onPeerLost.
        this.#log(`node ${this.self}: cannot send to node ${n}: ${(e as Error).message}`);
      }
    }
    this.#handle(this.self, msg);
  }

  // --- driver (node 0) ---------------------------------------------------------------------

  /**
   * A driver connected and proved the token: its messages are validated and handled here.
   * Sets `conn.onMessage` and `conn.onClose` (before the connection starts reading).
   */
  acceptDriver(conn: DriverConnection): void {
    let closed = false;
    const link: DriverLink = {
      // The driver may be gone (Ctrl-C, a timeout): its messages are dropped, the node stays.
      send: (msg) => {
        if (closed) return;
        try {
          conn.send(msg);
        } catch (e) {
          this.#log(`node ${this.self}: cannot send to the driver: ${(e as Error).message}`);
        }
      },
    };
    conn.onMessage = (msg) => {
      const why = validateMessage(msg, { from: "driver" });
      if (why !== null) {
        this.#dropped.malformed++;
        link.send({ t: Msg.ERROR, message: `Malformed message from the driver: ${why}` });
        return;
      }
      // A driver may connect before the mesh is complete; its job waits for the mesh.
      const config = (msg as unknown as SubmitMessage).config;
      if (this.#held === null) this.#onSubmit(link, config);
      else this.#meshWaiters.push(() => closed || this.#onSubmit(link, config));
    };
    conn.onClose = () => {
      closed = true;
      const coord = this.#coord;
      if (coord !== null && coord.driver === link) this.#abort("the driver disconnected");
    };
  }

  #onSubmit(link: DriverLink, config: JobConfig): void {
    if (this.#closed) return;
    if (this.self !== 0) {
      link.send({
        t: Msg.JOB_ERROR,
        job: 0,
        node: this.self,
        message: `Submit jobs to node 0, not node ${this.self}`,
      });
      return;
    }
    if (this.#coord !== null) {
      link.send({
        t: Msg.JOB_ERROR,
        job: 0,
        node: 0,
        message:
          `The cluster is busy with job ${this.#coord.job} (${this.#coord.config.task}); try again when it ends`,
      });
      return;
    }
    this.#submit(link, config).catch((e) => {
      link.send({ t: Msg.JOB_ERROR, job: 0, node: 0, message: e?.message ?? String(e) });
      if (this.#coord?.driver === link) this.#coord = null;
    });
  }

  async #submit(link: DriverLink, config: JobConfig): Promise<void> {
    // A driver is not trusted to have checked its config: the same checks as lapse train.
    const name = (config as Partial<JobConfig> | null)?.task;
    if (typeof name !== "string") throw new TypeError(`node 0 refused the job: it names no task`);
    const task = await this.#loadTask(name);
    try {
      config = revalidateJob(config, task);
    } catch (e) {
      throw new Error(`node 0 refused the job config: ${(e as Error).message}`);
    }
    const down = [];
    for (let n = 0; n < this.nodes; n++) if (!this.#transport.isConnected(n)) down.push(n);
    if (down.length > 0) {
      throw new Error(
        `not every node of the cluster is connected (missing: node ${down.join(", node ")}); ` +
          `start the missing nodes again with lapse serve, then submit the job again`,
      );
    }
    if (this.#coord !== null) {
      throw new Error(`The cluster is busy with job ${this.#coord.job}; try again when it ends`);
    }
    if ((config.checkpoint !== undefined || config.resume !== undefined) && !task.checkpoints) {
      const key = config.resume !== undefined
        ? "resume.dir (--resume)"
        : "checkpoint.dir (--checkpoint)";
      throw new Error(
        `task ${task.name} does not write checkpoints (its workers never call ` +
          `ctx.checkpoint): drop ${key}, or train a task that does (mf, kge, w2v)`,
      );
    }
    // The job runs on the cluster that exists; its node count is the cluster's.
    config = { ...config, cluster: { ...config.cluster, nodes: this.nodes } };
    if (config.resume !== undefined) {
      if (this.#dataDirs !== undefined) checkDataPaths(config, task.schema, this.#dataDirs, 0);
      const manifest = await readManifest(config.resume.dir);
      await checkResumable(manifest, config, config.resume.dir);
      config = { ...config, resume: { dir: config.resume.dir, manifest } };
    }
    const job = this.#nextJob;
    this.#nextJob = job >= 0xfffffff0 ? 1 : job + 1;
    const coord = new Coordination(job, link, config, task, this.nodes);
    this.#coord = coord;
    link.send({
      t: Msg.JOB_INFO,
      job,
      nodes: this.nodes,
      workers: this.nodes * config.cluster.workers_per_node,
    });
    this.#toAll({ t: Msg.PREPARE, job, config });
  }

  #abort(reason: string): void {
    const coord = this.#coord;
    if (coord === null) return;
    this.#coord = null;
    this.#toAll({ t: Msg.ABORT, job: coord.job, reason });
    coord.driver.send({ t: Msg.JOB_ERROR, job: coord.job, node: 0, message: reason });
  }

  /** A message for node 0's coordination of a job. */
  #onCoordinatorMessage(from: number, msg: ControlMessage): void {
    const coord = this.#coord;
    if (coord === null || msg.job !== coord.job) {
      // A late message of an ended or aborted job.
      this.#otherJob(from, msg);
      return;
    }
    switch (msg.t) {
      case Msg.PREPARED:
        if (++coord.prepared === this.nodes) {
          coord.startedAt = coord.lastEpochAt = performance.now();
          this.#toAll({ t: Msg.RUN, job: coord.job });
        }
        break;
      case Msg.BARRIER:
        coord.barrierClock = Math.max(coord.barrierClock, msg.clock);
        if (++coord.barrierCount === this.nodes) {
          coord.barrierCount = 0;
          const clock = coord.barrierClock;
          coord.barrierClock = 0;
          if (coord.barrierGeneration === 0 && coord.epochsReported === 0) {
            // The first barrier ends loading: epoch 0 is timed from here.
            coord.loadSeconds = (performance.now() - coord.startedAt) / 1000;
            coord.lastEpochAt = performance.now();
          }
          this.#toAll({
            t: Msg.BARRIER_GO,
            job: coord.job,
            generation: coord.barrierGeneration++,
            clock,
          });
        }
        break;
      case Msg.PROGRESS: {
        coord.points[from] = msg.points;
        // A node declaring its epoch size changes the total: sent at once, so that the driver's
        // bar never shows the total of some nodes only.
        const declared = coord.epochPointsPerNode[from] !== msg.epochPoints;
        coord.epochPointsPerNode[from] = msg.epochPoints;
        const now = performance.now();
        if (declared || now - coord.lastProgressAt >= PROGRESS_INTERVAL_MS) {
          coord.lastProgressAt = now;
          coord.driver.send({
            t: Msg.JOB_PROGRESS,
            job: coord.job,
            points: coord.points.reduce((a, b) => a + b, 0),
            epochPoints: coord.epochPointsPerNode.reduce((a, b) => a + b, 0),
          });
        }
        break;
      }
      case Msg.EPOCH:
        this.#coordEpoch(coord, msg);
        break;
      case Msg.LOG:
        coord.driver.send({
          t: Msg.JOB_LOG,
          job: coord.job,
          node: msg.node,
          message: msg.message,
        });
        break;
      case Msg.FAILED:
        this.#abort(`node ${msg.node}: ${msg.message}`);
        break;
      case Msg.WORKERS_DONE:
        if (++coord.workersDone === this.nodes) this.#toAll({ t: Msg.FINISH, job: coord.job });
        break;
      case Msg.CHECKPOINT_READY:
        if (++coord.checkpointReady === this.nodes) {
          coord.checkpointReady = 0;
          coord.checkpointFiles.length = 0;
          coord.checkpointStartedAt = performance.now();
          this.#toAll({ t: Msg.CHECKPOINT_WRITE, job: coord.job, epoch: msg.epoch });
        }
        break;
      case Msg.CHECKPOINT_DONE:
        coord.checkpointFiles.push(msg.file);
        if (coord.checkpointFiles.length === this.nodes) {
          this.#checkpointComplete(coord, msg.epoch).catch((e) =>
            this.#abort(`cannot write the checkpoint manifest: ${(e as Error).message}`)
          );
        }
        break;
      case Msg.FINISHED:
        coord.stats[from] = fromNamed(msg.stats);
        if (++coord.finished === this.nodes) {
          if (coord.config.checkpoint && coord.checkpointsWritten === 0) {
            coord.driver.send({
              t: Msg.JOB_LOG,
              job: coord.job,
              node: 0,
              message: `no checkpoint was written: the job had fewer than ` +
                `checkpoint.every_epochs=${coord.config.checkpoint.every_epochs} epochs (or task ` +
                `${coord.config.task} never called ctx.checkpoint)`,
            });
          }
          this.#coord = null;
          coord.driver.send({
            t: Msg.JOB_DONE,
            job: coord.job,
            wallSeconds: (performance.now() - coord.startedAt) / 1000,
            loadSeconds: coord.loadSeconds,
            nodeStats: coord.stats.map(toNamed),
          });
        }
        break;
    }
  }

  /** Every node wrote its file: the manifest makes the checkpoint complete; workers go on. */
  async #checkpointComplete(coord: Coordination, epoch: number): Promise<void> {
    const config = coord.config;
    const dir = config.checkpoint!.dir;
    const files = [...coord.checkpointFiles].sort((a, b) => a.node - b.node);
    const manifest: CheckpointManifest & { mode: string; placement: string } = {
      format: CHECKPOINT_FORMAT,
      task: config.task,
      nodes: this.nodes,
      workers_per_node: config.cluster.workers_per_node,
      seed: config.seed,
      mode: config.ps.mode,
      placement: config.ps.placement,
      epoch,
      files,
      written: new Date().toISOString(),
    };
    await writeManifest(dir, manifest);
    if (this.#coord !== coord) return;
    coord.checkpointsWritten++;
    const s = (performance.now() - coord.checkpointStartedAt) / 1000;
    const mb = files.reduce((a, f) => a + f.bytes, 0) / 1e6;
    coord.driver.send({
      t: Msg.JOB_LOG,
      job: coord.job,
      node: 0,
      message: `checkpoint after epoch ${epoch}: ${mb.toFixed(1)} MB on ${this.nodes} node(s) ` +
        `in ${s.toFixed(2)} s (${(mb / Math.max(s, 1e-6)).toFixed(0)} MB/s) -> ${dir}`,
    });
    this.#toAll({ t: Msg.CHECKPOINT_GO, job: coord.job, epoch });
  }

  #coordEpoch(coord: Coordination, msg: EpochMessage): void {
    let e = coord.epochs.get(msg.epoch);
    if (e === undefined) {
      e = { n: 0, sums: {}, local: 0, remote: 0, messages: 0, bytes: 0 };
      coord.epochs.set(msg.epoch, e);
    }
    e.n++;
    addSums(e.sums, fromNamed(msg.sums));
    e.local += msg.local;
    e.remote += msg.remote;
    e.messages += msg.messages;
    e.bytes += msg.bytes;
    if (e.n < this.nodes) return;
    coord.epochs.delete(msg.epoch);
    coord.epochsReported++;
    const now = performance.now();
    // An epoch is training (incl. localize and barriers); the task's evaluation, reported as
    // eval_s_max, is shown apart, so that points/s compares with a plain training loop.
    const wallSeconds = (now - coord.lastEpochAt) / 1000;
    coord.lastEpochAt = now;
    const evalSeconds = Math.min(e.sums.eval_s_max ?? 0, wallSeconds);
    delete e.sums.eval_s_max;
    const epochSeconds = wallSeconds - evalSeconds;
    const points = coord.epochPointsPerNode.reduce((a, b) => a + b, 0);
    const accesses = e.local + e.remote;
    // Metric names are output (reports, --metrics files): snake_case like config keys.
    const metrics: Record<string, number> = {
      ...coord.task.summarize(e.sums),
      epoch_s: epochSeconds,
      eval_s: evalSeconds,
      points_per_s: points / epochSeconds,
      local_fraction: accesses === 0 ? 1 : e.local / accesses,
      messages: e.messages,
      bytes: e.bytes,
    };
    coord.driver.send({
      t: Msg.JOB_EPOCH,
      job: coord.job,
      epoch: msg.epoch,
      metrics: toNamed(metrics),
    });
    const workers = this.nodes * coord.config.cluster.workers_per_node;
    const problem = epochProblem(msg.epoch, points, workers, metrics);
    if (problem !== null) this.#abort(problem);
  }

  // --- every node ------------------------------------------------------------------------

  /**
   * A message of another node, as received. It is validated first (`validateMessage`); a
   * malformed one is logged (rate-limited), counted and dropped, and fails the running job if
   * it claims to belong to it; one of another job is counted and dropped. Never throws: a
   * peer's message cannot take the node down.
   */
  onNodeMessage(from: number, raw: Message): void {
    if (this.#closed) return;
    const job = this.#job;
    const why = validateMessage(raw, {
      from: { node: from, nodes: this.nodes },
      job: job === null ? null : { id: job.id, tables: job.shapes },
    });
    if (why === OTHER_JOB) {
      this.#otherJob(from, raw as NodeMessage);
      return;
    }
    if (why !== null) {
      this.#malformed(from, raw, why);
      return;
    }
    const msg = raw as NodeMessage;
    if (this.#held !== null && !isDataType(msg.t)) {
      this.#held.push([from, holdable(msg as ControlMessage)]);
      return;
    }
    this.#handle(from, msg);
  }

  /** Counts (and logs, rate-limited) a message of another job; it is never applied. */
  #otherJob(from: number, msg: NodeMessage): void {
    this.#dropped.otherJob++;
    this.#otherJobLog.log(() =>
      `node ${this.self}: dropped ${msgName(msg.t)} of job ${msg.job} from node ${from}: ` +
      `the job here is ${this.#job?.id ?? this.#coord?.job ?? "none"} ` +
      `(${this.#dropped.otherJob} messages of other jobs dropped so far)`
    );
  }

  /**
   * Counts, logs (rate-limited) and drops a malformed message of node `from`; the running job
   * fails if the message claims to be one of its own (it cannot be trusted any more).
   */
  #malformed(from: number, raw: Message, why: string): void {
    this.#dropped.malformed++;
    const text = `malformed ${msgName(raw.t)} from node ${from}: ${why}`;
    this.#dropLog.log(() => `node ${this.self}: dropped a ${text}`);
    const job = this.#job;
    if (job !== null && raw.job === job.id) this.#failJob(job, text);
  }

  /** Reports the job as failed on this node (once). */
  #failJob(job: NodeJob, message: string): void {
    if (job.failed) return;
    job.failed = true;
    this.#toCoordinator({ t: Msg.FAILED, job: job.id, node: this.self, message });
  }

  /** A valid message of another node, or of this node to itself (the coordinator's fan-out). */
  #handle(from: number, msg: NodeMessage): void {
    const job = this.#job;
    if (isDataType(msg.t)) {
      // The validator let it through: it is of the running job.
      try {
        job!.core.onMessage(from, msg as DataMessage);
      } catch (e) {
        // A broken invariant: the job cannot be trusted any more, the node can. Fail the job
        // loudly; keep serving.
        const kind = e instanceof AssertionError ? "broke an invariant" : "failed";
        this.#log(
          `node ${this.self}: ${msgName(msg.t)} from node ${from} ${kind}: ${(e as Error).stack}`,
        );
        this.#failJob(job!, `${msgName(msg.t)} from node ${from}: ${(e as Error).message}`);
      }
      return;
    }
    const control = msg as ControlMessage;
    switch (control.t) {
      case Msg.PREPARE:
        this.#prepare(control.job, control.config).catch((e) =>
          this.#log(`node ${this.self}: preparing job ${control.job} failed: ${e?.stack ?? e}`)
        );
        return;
      case Msg.RUN:
      case Msg.BARRIER_GO:
      case Msg.CHECKPOINT_WRITE:
      case Msg.CHECKPOINT_GO:
      case Msg.FINISH:
      case Msg.ABORT:
        if (control.t === Msg.ABORT && this.#preparing === control.job) this.#preparing = 0;
        if (job === null || job.id !== control.job) {
          // ABORT of a job this node never prepared or already dropped is news, not an error.
          if (control.t !== Msg.ABORT) this.#otherJob(from, control);
          return;
        }
        if (control.t === Msg.RUN) this.#run(job);
        else if (control.t === Msg.BARRIER_GO) this.#barrierGo(job, control.clock);
        else if (control.t === Msg.CHECKPOINT_WRITE) {
          this.#checkpointWrite(job, control.epoch).catch((e) =>
            this.#log(`node ${this.self}: checkpoint write failed: ${e?.stack ?? e}`)
          );
        } else if (control.t === Msg.CHECKPOINT_GO) this.#checkpointGo(job, control.epoch);
        else if (control.t === Msg.FINISH) this.#finish(job);
        else {
          // The driver reports why; a node's own log keeps the line (not shown with --quiet).
          this.#info(`node ${this.self}: job ${job.id} aborted: ${control.reason}`);
          this.#teardown(job);
        }
        return;
      default:
        // PREPARED, BARRIER, PROGRESS, EPOCH, LOG, FAILED, WORKERS_DONE, FINISHED
        if (this.self === 0) this.#onCoordinatorMessage(from, control);
        else this.#malformed(from, control, "a message for node 0");
        return;
    }
  }

  async #prepare(jobId: number, config: JobConfig): Promise<void> {
    if (this.#job !== null) {
      this.#log(`node ${this.self}: job ${jobId} replaces unfinished job ${this.#job.id}`);
      this.#teardown(this.#job);
    }
    this.#preparing = jobId;
    try {
      const timeoutMs = config.ps.peer_timeout_ms ?? PEER_TIMEOUT_FALLBACK_MS;
      this.#transport.setPeerTimeout?.(timeoutMs);
      // Every node applies the job's frame limit (the job config is the same everywhere).
      this.#transport.setFrameLimit?.(config.ps.max_frame_bytes);
      const task = await this.#loadTask(config.task);
      if (this.#dataDirs !== undefined) {
        checkDataPaths(config, task.schema, this.#dataDirs, this.self);
      }
      await this.#waitForPeers(timeoutMs);
      const manifest = config.resume?.manifest as CheckpointManifest | undefined;
      let restored: NodeFile[] = [];
      const t0 = performance.now();
      const rehome = manifest !== undefined && !sameShape(manifest, config);
      if (manifest !== undefined && rehome) {
        // Another cluster size: this node takes its home keys out of every old node's file.
        for (const entry of manifest.files) {
          restored.push(await readNodeFile(config.resume!.dir, entry));
        }
      } else if (manifest !== undefined) {
        const entry = manifest.files.find((f) => f.node === this.self);
        if (entry === undefined) {
          throw new Error(`the checkpoint in "${config.resume!.dir}" has no file of this node`);
        }
        restored = [await readNodeFile(config.resume!.dir, entry)];
      }
      // Restore time: reading and checking the files plus putting the keys in (not the tables'
      // initialisation, which every job pays).
      let restoreMs = performance.now() - t0;
      // Aborted, or replaced by a newer PREPARE, while we waited: nothing to set up.
      if (this.#preparing !== jobId || this.#closed) return;
      const core = new PsCore({
        self: this.self,
        nodes: this.nodes,
        job: jobId,
        mode: config.ps.mode,
        locationCaches: config.ps.location_caches,
        placement: config.ps.placement,
        seed: config.seed,
        send: (n, m) => this.#transport.send(n, m),
        reply: (worker, id, vals, clock, spare) =>
          this.#replyWorker(
            nodeJob,
            worker,
            spare === undefined
              ? { op: "reply", id, vals, clock }
              : { op: "reply", id, vals, clock, spare },
          ),
        workers: this.nodes * config.cluster.workers_per_node,
        frameBytesMax: config.ps.max_frame_bytes,
        malformed: (from, reason) => {
          this.#dropped.malformed++;
          this.#dropLog.log(() => `node ${this.self}: dropped from node ${from} a ${reason}`);
          this.#failJob(nodeJob, `node ${from} sent a ${reason}`);
        },
      });
      core.createTables(task.tables(config));
      const nodeJob = new NodeJob(jobId, config, task, core);
      if (manifest !== undefined) {
        const t1 = performance.now();
        if (rehome) restoreRehomed(core.tables, restored, this.self);
        else restoreTables(core.tables, restored[0]);
        restoreMs += performance.now() - t1;
        // Worker w resumes with the state of worker w of the checkpoint (w modulo the old
        // number of workers on another cluster size).
        const saved = new Map<number, unknown>();
        for (const f of restored) for (const w of f.header.workers) saved.set(w.worker, w.state);
        const oldWorkers = manifest.nodes * manifest.workers_per_node;
        const states = new Map<number, unknown>();
        const workers = this.nodes * config.cluster.workers_per_node;
        for (let w = 0; w < workers; w++) states.set(w, saved.get(w % oldWorkers) ?? null);
        nodeJob.resume = { epoch: manifest.epoch, states };
        const s = restoreMs / 1000;
        const mb = restored.reduce((a, f) => a + f.bytes, 0) / 1e6;
        this.#toCoordinator({
          t: Msg.LOG,
          job: jobId,
          node: this.self,
          message: `restored ${mb.toFixed(1)} MB of the checkpoint after epoch ` +
            `${manifest.epoch}${
              rehome ? ` (written by ${manifest.nodes} nodes, keys re-homed)` : ""
            } in ${s.toFixed(2)} s (${(mb / Math.max(s, 1e-6)).toFixed(0)} MB/s)`,
        });
      }
      this.#job = nodeJob;
      this.#preparing = 0;
      this.#toCoordinator({ t: Msg.PREPARED, job: jobId });
    } catch (e) {
      if (this.#preparing === jobId) this.#preparing = 0;
      this.#toCoordinator({
        t: Msg.FAILED,
        job: jobId,
        node: this.self,
        message: (e as Error).message,
      });
    }
  }

  /**
   * Waits until this node is connected to every other node: a node that restarted may still be
   * dialing (or being dialed by) some of them when node 0 already sees it. Throws naming the
   * missing nodes after `timeoutMs`.
   */
  async #waitForPeers(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const missing: number[] = [];
      for (let n = 0; n < this.nodes; n++) if (!this.#transport.isConnected(n)) missing.push(n);
      if (missing.length === 0) return;
      if (performance.now() >= deadline) {
        throw new Error(
          `node ${this.self} has no connection to node ${missing.join(", node ")} ` +
            `(not back within ps.peer_timeout_ms=${timeoutMs} ms)`,
        );
      }
      await new Promise((r) => setTimeout(r, MESH_POLL_MS));
    }
  }

  #replyWorker(job: NodeJob, worker: number, msg: ToWorker): void {
    if (this.#job !== job) return;
    const w = job.workers[worker];
    if (msg.op === "reply" && msg.vals !== null) {
      w.postMessage(msg, [msg.vals.buffer as ArrayBuffer]);
    } else if (msg.op === "reply" && msg.spare !== undefined) {
      const buf = msg.spare.buffer;
      if (buf instanceof ArrayBuffer) w.postMessage(msg, [buf]);
      else w.postMessage({ op: "reply", id: msg.id, vals: null, clock: msg.clock });
    } else w.postMessage(msg);
  }

  #run(job: NodeJob): void {
    const { config } = job;
    const wpn = config.cluster.workers_per_node;
    this.#info(
      `node ${this.self}: job ${job.id} runs: task ${config.task}, ${wpn} worker(s) on this node`,
    );
    const shared = job.core.shared();
    for (let i = 0; i < wpn; i++) {
      const w = new Worker(this.#workerUrl, { type: "module" });
      w.onmessage = (e: MessageEvent) => this.#onWorkerMessage(job, i, e.data as ToServer);
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#workerFailed(job, i, e.message);
      };
      const init: WorkerInit = {
        config,
        tables: shared,
        worker: this.self * wpn + i,
        workers: this.nodes * wpn,
        node: this.self,
        nodes: this.nodes,
        progress: job.progress.buffer as SharedArrayBuffer,
        localIndex: i,
        clocks: job.core.clockShared.buffer as SharedArrayBuffer,
        resume: job.resume === null ? undefined : {
          epoch: job.resume.epoch,
          state: job.resume.states.get(this.self * wpn + i) ?? null,
        },
      };
      w.postMessage(init);
      job.workers.push(w);
    }
    job.timer = setInterval(() => this.#sendProgress(job), PROGRESS_INTERVAL_MS);
  }

  #sendProgress(job: NodeJob): void {
    let points = 0;
    for (let i = 0; i < job.progress.length; i++) points += job.progress[i];
    if (points === job.lastProgressSent && job.pointsDeclared === job.lastDeclaredSent) return;
    job.lastProgressSent = points;
    job.lastDeclaredSent = job.pointsDeclared;
    this.#toCoordinator({
      t: Msg.PROGRESS,
      job: job.id,
      points,
      epochPoints: job.pointsDeclared,
    });
  }

  #workerFailed(job: NodeJob, worker: number, message: string, userError = false): void {
    (userError ? this.#info : this.#log)(
      `node ${this.self}: worker ${worker} of job ${job.id} failed: ${message}`,
    );
    this.#failJob(
      job,
      `worker ${this.self * job.config.cluster.workers_per_node + worker}: ${message}`,
    );
  }

  #onWorkerMessage(job: NodeJob, worker: number, msg: ToServer): void {
    if (this.#job !== job) return;
    try {
      switch (msg.op) {
        case "pull":
          job.core.workerPull(worker, msg.id, msg.tb, msg.keys, msg.need, msg.barriers, msg.into);
          return;
        case "clock":
          job.core.workerClock(
            this.self * job.config.cluster.workers_per_node + worker,
            msg.clock,
            msg.idleAt ?? -1,
          );
          return;
        case "push":
          job.core.workerPush(worker, msg.id, msg.tb, msg.keys, msg.vals);
          return;
        case "localize":
          job.core.workerLocalize(worker, msg.id, msg.tb, msg.keys);
          return;
        case "checkpoint":
          if (job.config.checkpoint === undefined) {
            throw new RangeError("checkpoint() without checkpoint settings in the job config");
          }
          job.checkpointWaiting.push({ worker, id: msg.id, state: msg.state });
          if (job.checkpointWaiting.length === job.workers.length) {
            this.#checkpointReady(job, msg.epoch).catch((e) =>
              this.#workerFailed(job, worker, (e as Error).message)
            );
          }
          return;
        case "barrier":
          job.barrierWaiting.push({ worker, id: msg.id });
          job.barrierClock = Math.max(job.barrierClock, msg.clock ?? 0);
          if (job.barrierWaiting.length === job.workers.length) {
            const clock = job.barrierClock;
            job.barrierClock = 0;
            this.#toCoordinator({ t: Msg.BARRIER, job: job.id, clock });
          }
          return;
        case "points":
          job.pointsDeclared += msg.points;
          this.#sendProgress(job);
          return;
        case "epoch":
          this.#workerEpoch(job, msg);
          return;
        case "log":
          this.#info(`node ${this.self} worker ${worker}: ${msg.message}`);
          this.#toCoordinator({ t: Msg.LOG, job: job.id, node: this.self, message: msg.message });
          return;
        case "done":
          if (++job.workersDone === job.workers.length) {
            this.#sendProgress(job);
            this.#toCoordinator({ t: Msg.WORKERS_DONE, job: job.id });
          }
          return;
        case "failed":
          if (msg.stack) this.#log(msg.stack);
          // No stack: a user error (e.g. a missing data file), which the driver prints.
          this.#workerFailed(job, worker, msg.message, msg.stack === undefined);
          return;
      }
    } catch (e) {
      // A bad request fails that request's job, not the node.
      this.#log(`node ${this.self}: request of worker ${worker} failed: ${(e as Error).stack}`);
      this.#workerFailed(job, worker, (e as Error).message);
    }
  }

  #workerEpoch(job: NodeJob, msg: Extract<ToServer, { op: "epoch" }>): void {
    let e = job.epochSums.get(msg.epoch);
    if (e === undefined) {
      e = { n: 0, sums: {}, local: 0, remote: 0 };
      job.epochSums.set(msg.epoch, e);
    }
    e.n++;
    addSums(e.sums, msg.sums);
    e.local += msg.local;
    e.remote += msg.remote;
    if (e.n < job.workers.length) return;
    job.epochSums.delete(msg.epoch);
    const sent = this.#transport.stats();
    this.#sendProgress(job);
    this.#toCoordinator({
      t: Msg.EPOCH,
      job: job.id,
      epoch: msg.epoch,
      sums: toNamed(e.sums),
      local: e.local,
      remote: e.remote,
      messages: sent.messagesSent - job.sentAtLastEpoch.messagesSent,
      bytes: sent.bytesSent - job.sentAtLastEpoch.bytesSent,
    });
    job.sentAtLastEpoch = sent;
  }

  /**
   * Every local worker waits in checkpoint(): once this node's data plane is quiet (no request
   * or transfer in flight), it tells node 0.
   */
  async #checkpointReady(job: NodeJob, epoch: number): Promise<void> {
    const limitMs = job.config.ps.peer_timeout_ms ?? PEER_TIMEOUT_FALLBACK_MS;
    const deadline = performance.now() + limitMs;
    while (job.core.pendingRequests > 0 || job.core.pendingTransfers > 0) {
      if (this.#job !== job) return;
      if (performance.now() > deadline) {
        throw new Error(
          `checkpoint after epoch ${epoch}: node ${this.self} still has ` +
            `${job.core.pendingRequests} requests and ${job.core.pendingTransfers} transfers ` +
            `in flight after ${limitMs} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    if (this.#job === job) this.#toCoordinator({ t: Msg.CHECKPOINT_READY, job: job.id, epoch });
  }

  /** Writes this node's file of the checkpoint and tells node 0. */
  async #checkpointWrite(job: NodeJob, epoch: number): Promise<void> {
    const wpn = job.config.cluster.workers_per_node;
    const t0 = performance.now();
    try {
      const file = await writeNodeFile(
        job.config.checkpoint!.dir,
        this.self,
        this.nodes,
        epoch,
        job.core.tables,
        job.checkpointWaiting.map((w) => ({ worker: this.self * wpn + w.worker, state: w.state })),
      );
      if (this.#job !== job) return;
      const writeSeconds = (performance.now() - t0) / 1000;
      this.#toCoordinator({ t: Msg.CHECKPOINT_DONE, job: job.id, epoch, file, writeSeconds });
    } catch (e) {
      this.#failJob(
        job,
        `cannot write the checkpoint after epoch ${epoch} to ` +
          `"${job.config.checkpoint!.dir}": ${(e as Error).message}`,
      );
    }
  }

  /** The checkpoint is complete: the workers go on; this node's older files are removed. */
  #checkpointGo(job: NodeJob, epoch: number): void {
    for (const { worker, id } of job.checkpointWaiting.splice(0)) {
      this.#replyWorker(job, worker, { op: "reply", id, vals: null });
    }
    removeOlderNodeFiles(job.config.checkpoint!.dir, this.self, epoch).catch(() => {});
  }

  #barrierGo(job: NodeJob, clock: number): void {
    const waiting = job.barrierWaiting.splice(0);
    for (const { worker, id } of waiting) {
      this.#replyWorker(job, worker, { op: "reply", id, vals: null, clock });
    }
  }

  #finish(job: NodeJob): void {
    const { core } = job;
    this.#info(`node ${this.self}: job ${job.id} ended`);
    // Statistic names are output (the job summary): snake_case like config keys.
    const stats: Record<string, number> = {
      transfers_out: core.stats.transfersOut,
      forwards: core.stats.forwards,
      queued: core.stats.queued,
      pending_requests: core.pendingRequests,
      pending_transfers: core.pendingTransfers,
      local_keys: core.tables.reduce((a, t) => a + t.table.localCount, 0),
      other_job_dropped: this.#dropped.otherJob,
      malformed_dropped: this.#dropped.malformed,
    };
    this.#teardown(job);
    this.#toCoordinator({ t: Msg.FINISHED, job: job.id, stats: toNamed(stats) });
  }

  #teardown(job: NodeJob): void {
    clearInterval(job.timer);
    for (const w of job.workers) w.terminate();
    if (this.#job === job) {
      this.#job = null;
      this.#transport.setPeerTimeout?.(PEER_TIMEOUT_FALLBACK_MS);
      this.#transport.setFrameLimit?.();
    }
  }

  /**
   * The connection to node `n` is gone (it died or left). A running job cannot finish without
   * it: node 0 aborts it and tells the driver; another node drops its part.
   */
  onPeerLost(n: number, reason: string): void {
    if (this.#closed) return;
    const job = this.#job;
    // Between jobs this is news (e.g. a cluster being stopped); during one it is an error.
    (job !== null || this.#coord !== null ? this.#log : this.#info)(
      `node ${this.self}: lost node ${n}: ${reason}`,
    );
    if (this.self === 0) {
      if (this.#coord !== null) this.#abort(`node ${n} left the cluster (${reason})`);
    } else if (job !== null && n === 0) {
      this.#log(`node ${this.self}: job ${job.id} dropped: the coordinator (node 0) is gone`);
      this.#teardown(job);
    } else if (job !== null) {
      // Messages queued to that node may be lost: the job cannot finish right. Node 0 is told
      // (it aborts the job everywhere), and this node drops its part now, so that nothing of
      // it runs on when the link comes back.
      this.#failJob(job, `lost node ${n} (${reason})`);
      this.#teardown(job);
    }
  }

  /** A connection to node `n` is up: at start, or a lost node came back (a log line). */
  onPeerJoined(n: number): void {
    if (!this.#closed) this.#info(`node ${this.self}: node ${n} joined`);
  }

  /** Stops the running job, if any (node shutdown); later messages and losses are ignored. */
  close(): void {
    this.#closed = true;
    if (this.#job !== null) this.#teardown(this.#job);
  }
}

/**
 * A control message that may be kept past its handler: the only typed arrays in control
 * messages are the values of {@linkcode NamedNumbers}, which may be views of a reused receive
 * buffer, so they are copied.
 */
function holdable(msg: ControlMessage): ControlMessage {
  if (msg.t === Msg.EPOCH) {
    return { ...msg, sums: { ...msg.sums, values: msg.sums.values.slice() } };
  }
  if (msg.t === Msg.FINISHED) {
    return { ...msg, stats: { ...msg.stats, values: msg.stats.values.slice() } };
  }
  return msg;
}

/**
 * True when a job restores a checkpoint exactly as written (same nodes, workers, mode and
 * placement: every node reads its own file); else its keys are re-homed (restoreRehomed).
 */
function sameShape(m: CheckpointManifest, config: JobConfig): boolean {
  const saved = m as CheckpointManifest & { mode?: string; placement?: string };
  return m.nodes === config.cluster.nodes &&
    m.workers_per_node === config.cluster.workers_per_node &&
    (saved.mode === undefined || saved.mode === config.ps.mode) &&
    (saved.placement === undefined || saved.placement === config.ps.placement);
}

/**
 * Checks that a checkpoint's manifest fits the job that resumes from it: the same task and
 * seed; on another cluster shape also that node 0 can read every node's file (re-homing reads
 * them all on every node, so they must be on one machine or a shared folder).
 */
async function checkResumable(m: CheckpointManifest, config: JobConfig, dir: string) {
  const problems: string[] = [];
  if (m.task !== config.task) problems.push(`task ${m.task}, not ${config.task}`);
  if (m.seed !== config.seed) problems.push(`seed ${m.seed}, the job has ${config.seed}`);
  if (problems.length > 0) {
    throw new Error(
      `cannot resume from the checkpoint in "${dir}" (after epoch ${m.epoch}): it was written ` +
        `with ${problems.join("; ")}. Resume with the config that wrote it`,
    );
  }
  if (sameShape(m, config)) return;
  for (const f of m.files) {
    try {
      const st = await Deno.stat(`${dir}/${f.path}`);
      if (st.size === f.bytes) continue;
    } catch { /* reported below */ }
    throw new Error(
      `cannot resume the checkpoint of ${m.nodes} node(s) x ${m.workers_per_node} worker(s) ` +
        `in "${dir}" on ${config.cluster.nodes} node(s) x ${config.cluster.workers_per_node} ` +
        `worker(s): node 0 cannot read "${dir}/${f.path}" (resuming on another cluster shape ` +
        `reads every node's file on every node: put them in one shared folder), or resume on ` +
        `${m.nodes} node(s)`,
    );
  }
}
