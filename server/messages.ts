/**
 * Every message between nodes, and between node 0 and a driver: one discriminated union
 * ({@linkcode NodeMessage}, {@linkcode DriverRequest}, {@linkcode DriverEvent}) and the one
 * validator ({@linkcode validateMessage}) that every received message goes through before any
 * handler sees it.
 *
 * On the wire a message is one CBOR map (see wire.ts) with a numeric type `t` (the frame-level
 * tag that the handshake messages share) and readable field names: the names cost a few bytes
 * per message, never per key, and data-plane messages carry up to ~1 MiB of keys each. Keys,
 * request ids, positions and values travel as typed arrays (4-byte aligned, so a receiver
 * reads them as views of its receive buffer, without a copy). Nothing on the wire is a map
 * with an unbounded number of keys: per-name numbers (a task's sums, node statistics, epoch
 * metrics) travel as {@linkcode NamedNumbers}, an array of names and a `Float64Array`.
 *
 * Job isolation: every data-plane and control message carries the id of the job it belongs
 * to (`job`), chosen by node 0 at submit time. A node applies a message only to the job of
 * that id; anything else is dropped and counted (`otherJobDropped` in the node's statistics).
 *
 * @module
 */
import type { JobConfig } from "../core/types.ts";
import type { CheckpointFile } from "./checkpoint.ts";

/** Message types (`t`). Handshake types (240-244, handshake.ts) are not used here. */
export const Msg = {
  // data plane, node -> node (DESIGN.md section 5)
  PULL: 1,
  PUSH: 2,
  PULL_R: 3,
  PUSH_R: 4,
  LOCALIZE: 5,
  HANDOVER: 6,
  TRANSFER: 7,
  CLOCK: 8,
  // control, node -> node (node 0 coordinates)
  PREPARE: 20,
  PREPARED: 21,
  RUN: 22,
  BARRIER: 23,
  BARRIER_GO: 24,
  PROGRESS: 25,
  EPOCH: 26,
  WORKERS_DONE: 27,
  FINISH: 28,
  FINISHED: 29,
  ABORT: 30,
  FAILED: 31,
  LOG: 32,
  // checkpoints (see server/checkpoint.ts)
  CHECKPOINT_READY: 33,
  CHECKPOINT_WRITE: 34,
  CHECKPOINT_DONE: 35,
  CHECKPOINT_GO: 36,
  // driver <-> node 0
  SUBMIT: 40,
  JOB_INFO: 41,
  JOB_PROGRESS: 42,
  JOB_EPOCH: 43,
  JOB_DONE: 44,
  JOB_ERROR: 45,
  JOB_LOG: 46,
  ERROR: 47,
} as const;

/** Numbers by name, as two parallel arrays (never a map on the wire: see the module doc). */
export type NamedNumbers = { names: string[]; values: Float64Array };

// --- data plane ------------------------------------------------------------------------------
// One table per message. Entry i of a message is (requests[i], keys[i], positions[i]) and, with
// values, the `dim` floats at values[i * dim ..]. `requests` are request ids of the origin node,
// `positions` the entries' places in the origin's request.

/** Pull request or forward: served by the key's holder, or forwarded. */
export type PullMessage = {
  t: typeof Msg.PULL;
  job: number;
  table: number;
  /** The node whose worker asked (the answer goes there directly). */
  origin: number;
  requests: Uint32Array;
  keys: Uint32Array;
  positions: Uint32Array;
  /** Stale mode: the clock the values must be fresh to (0 in other modes). */
  need: number;
  /** Stale mode: the barriers the reading worker completed (0 in other modes). */
  barriers: number;
};

/** Push request or forward: `values` are the deltas to add. */
export type PushMessage = {
  t: typeof Msg.PUSH;
  job: number;
  table: number;
  origin: number;
  requests: Uint32Array;
  keys: Uint32Array;
  positions: Uint32Array;
  values: Float32Array;
};

/** Pulled values, holder -> origin. */
export type PullReplyMessage = {
  t: typeof Msg.PULL_R;
  job: number;
  table: number;
  /** The node that served the entries (the sender): a location hint for the keys. */
  holder: number;
  requests: Uint32Array;
  keys: Uint32Array;
  positions: Uint32Array;
  values: Float32Array;
  /** Stale mode: the clock the values are fresh to (see Outbox.stamp). */
  clock: number;
};

/** Applied pushes, holder -> origin. */
export type PushReplyMessage = {
  t: typeof Msg.PUSH_R;
  job: number;
  table: number;
  holder: number;
  requests: Uint32Array;
  keys: Uint32Array;
};

/** "Move these keys to `dest`", requester (= dest) -> home. */
export type LocalizeMessage = {
  t: typeof Msg.LOCALIZE;
  job: number;
  table: number;
  dest: number;
  keys: Uint32Array;
};

/** "Send these keys to `dest`", home -> old owner. */
export type HandoverMessage = {
  t: typeof Msg.HANDOVER;
  job: number;
  table: number;
  dest: number;
  keys: Uint32Array;
};

/** The values of keys that move to the receiver, holder -> new owner. */
export type TransferMessage = {
  t: typeof Msg.TRANSFER;
  job: number;
  table: number;
  keys: Uint32Array;
  values: Float32Array;
};

/**
 * Stale mode, any node -> every node: job worker `worker` flushed its pushes of the clocks
 * before `clock` (sent after those pushes; TCP keeps each pair FIFO). `idleAt` >= 0: the
 * worker waits in the barrier after its `idleAt` completed barriers (or finished); else -1.
 */
export type ClockMessage = {
  t: typeof Msg.CLOCK;
  job: number;
  worker: number;
  clock: number;
  idleAt: number;
};

/** Messages of the data plane and the relocation protocol (handled by PsCore). */
export type DataMessage =
  | ClockMessage
  | PullMessage
  | PushMessage
  | PullReplyMessage
  | PushReplyMessage
  | LocalizeMessage
  | HandoverMessage
  | TransferMessage;

// --- control, node <-> node ------------------------------------------------------------------

/** 0 -> all: create the job's tables, initialise the home keys, answer PREPARED. */
export type PrepareMessage = { t: typeof Msg.PREPARE; job: number; config: JobConfig };
/** all -> 0. */
export type PreparedMessage = { t: typeof Msg.PREPARED; job: number };
/** 0 -> all: start the worker threads. */
export type RunMessage = { t: typeof Msg.RUN; job: number };
/** all -> 0: every local worker arrived at the barrier (stale mode: the largest clock of them). */
export type BarrierMessage = { t: typeof Msg.BARRIER; job: number; clock: number };
/** 0 -> all: release the barrier `generation` (stale mode: every worker goes on at `clock`). */
export type BarrierGoMessage = {
  t: typeof Msg.BARRIER_GO;
  job: number;
  generation: number;
  clock: number;
};
/** all -> 0: points done so far, and points declared for the current epoch. */
export type ProgressMessage = {
  t: typeof Msg.PROGRESS;
  job: number;
  points: number;
  epochPoints: number;
};
/** all -> 0: one node's sums of an epoch (added over its workers) and traffic. */
export type EpochMessage = {
  t: typeof Msg.EPOCH;
  job: number;
  epoch: number;
  sums: NamedNumbers;
  local: number;
  remote: number;
  messages: number;
  bytes: number;
};
/** all -> 0: every local worker returned. */
export type WorkersDoneMessage = { t: typeof Msg.WORKERS_DONE; job: number };
/** 0 -> all: free the job, answer FINISHED. */
export type FinishMessage = { t: typeof Msg.FINISH; job: number };
/** all -> 0: the node's statistics of the job. */
export type FinishedMessage = { t: typeof Msg.FINISHED; job: number; stats: NamedNumbers };
/** 0 -> all: stop the job. */
export type AbortMessage = { t: typeof Msg.ABORT; job: number; reason: string };
/** any -> 0: the job failed on `node`. */
export type FailedMessage = { t: typeof Msg.FAILED; job: number; node: number; message: string };
/** any -> 0: a worker's log line, for the driver. */
export type LogMessage = { t: typeof Msg.LOG; job: number; node: number; message: string };

/** all -> 0: every local worker waits in checkpoint() and this node's data plane is quiet. */
export type CheckpointReadyMessage = { t: typeof Msg.CHECKPOINT_READY; job: number; epoch: number };
/** 0 -> all: write your file of the checkpoint after `epoch`. */
export type CheckpointWriteMessage = { t: typeof Msg.CHECKPOINT_WRITE; job: number; epoch: number };
/** all -> 0: this node's file is written. */
export type CheckpointDoneMessage = {
  t: typeof Msg.CHECKPOINT_DONE;
  job: number;
  epoch: number;
  file: CheckpointFile;
  writeSeconds: number;
};
/** 0 -> all: the manifest is written; the workers go on. */
export type CheckpointGoMessage = { t: typeof Msg.CHECKPOINT_GO; job: number; epoch: number };

/** Control messages between nodes. */
export type ControlMessage =
  | CheckpointReadyMessage
  | CheckpointWriteMessage
  | CheckpointDoneMessage
  | CheckpointGoMessage
  | PrepareMessage
  | PreparedMessage
  | RunMessage
  | BarrierMessage
  | BarrierGoMessage
  | ProgressMessage
  | EpochMessage
  | WorkersDoneMessage
  | FinishMessage
  | FinishedMessage
  | AbortMessage
  | FailedMessage
  | LogMessage;

/** Every message one node sends another. */
export type NodeMessage = DataMessage | ControlMessage;

// --- driver <-> node 0 -----------------------------------------------------------------------

/** driver -> node 0: run this job. */
export type SubmitMessage = { t: typeof Msg.SUBMIT; config: JobConfig };
/** What a driver may send. */
export type DriverRequest = SubmitMessage;

/** node 0 -> driver: the job was accepted. */
export type JobInfoMessage = {
  t: typeof Msg.JOB_INFO;
  job: number;
  nodes: number;
  workers: number;
};
/** node 0 -> driver: points done, and points of the current epoch. */
export type JobProgressMessage = {
  t: typeof Msg.JOB_PROGRESS;
  job: number;
  points: number;
  epochPoints: number;
};
/** node 0 -> driver: an epoch's metrics. */
export type JobEpochMessage = {
  t: typeof Msg.JOB_EPOCH;
  job: number;
  epoch: number;
  metrics: NamedNumbers;
};
/** node 0 -> driver: the job ended well. */
export type JobDoneMessage = {
  t: typeof Msg.JOB_DONE;
  job: number;
  wallSeconds: number;
  loadSeconds: number;
  /** Per node, by node id. */
  nodeStats: NamedNumbers[];
};
/** node 0 -> driver: the job failed (or was refused: then `job` is 0). */
export type JobErrorMessage = {
  t: typeof Msg.JOB_ERROR;
  job: number;
  node: number;
  message: string;
};
/** node 0 -> driver: a worker's log line. */
export type JobLogMessage = { t: typeof Msg.JOB_LOG; job: number; node: number; message: string };
/** node -> driver: a request that could not be handled. */
export type ErrorMessage = { t: typeof Msg.ERROR; message: string };

/** What a node sends a driver. */
export type DriverEvent =
  | JobInfoMessage
  | JobProgressMessage
  | JobEpochMessage
  | JobDoneMessage
  | JobErrorMessage
  | JobLogMessage
  | ErrorMessage;

/** Names for log lines. */
export function msgName(t: number): string {
  return NAMES.get(t) ?? `#${t}`;
}
const NAMES = new Map<number, string>(Object.entries(Msg).map(([name, t]) => [t, name]));

/** True for the types of the data plane (PULL .. CLOCK), handled by the job's PsCore. */
export function isDataType(t: number): boolean {
  return t >= Msg.PULL && t <= Msg.CLOCK;
}

/** {@linkcode NamedNumbers} of a record (insertion order). */
export function toNamed(record: Record<string, number>): NamedNumbers {
  const names = Object.keys(record);
  const values = new Float64Array(names.length);
  for (let i = 0; i < names.length; i++) values[i] = record[names[i]];
  return { names, values };
}

/** A record of {@linkcode NamedNumbers} (for code that adds them up or shows them). */
export function fromNamed(named: NamedNumbers): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < named.names.length; i++) out[named.names[i]] = named.values[i];
  return out;
}

// --- validation ------------------------------------------------------------------------------

/** The shape of one table of the running job, as the validator needs it. */
export interface TableShape {
  keys: number;
  dim: number;
}

/** What the validator knows about the receiver. */
export interface ValidationContext {
  /**
   * Who sent the message: node `node` of a cluster of `nodes` nodes (to a node), a driver (to
   * node 0), or node 0 (to a driver).
   */
  from: { node: number; nodes: number } | "driver" | "coordinator";
  /**
   * The receiver's running job (nodes only): its id and tables. A data-plane message of
   * another job (or when no job runs) is {@linkcode OTHER_JOB}.
   */
  job?: { id: number; tables: readonly TableShape[] } | null;
}

/** {@linkcode validateMessage}'s verdict for a data-plane message of another (or no) job. */
export const OTHER_JOB = "other job";

/**
 * Checks a received message completely before anything handles it: the type is one the
 * sender may send, every field has its type (typed arrays of the right kind, integers in
 * range, node ids of the cluster), parallel arrays have equal lengths, values have
 * `keys.length * dim` floats, tables and keys exist in the running job, and the sender-relative
 * rules of the protocol hold (a reply's holder and a localize's destination are the sender).
 *
 * Never throws. Returns null when the message is valid (it may then be used as the matching
 * union member), {@linkcode OTHER_JOB} for a well-formed data-plane message of another job
 * (or of none: no job runs here), else a short reason.
 *
 * Checks that need more of the job's state (an answer for an unknown request, a position
 * beyond its request) are made by the handler, which drops the entry instead of throwing.
 */
export function validateMessage(msg: unknown, ctx: ValidationContext): string | null {
  if (msg === null || typeof msg !== "object") return "not a map";
  const m = msg as Record<string, unknown>;
  const t = m.t;
  if (typeof t !== "number") return "no numeric type t";
  const from = ctx.from;
  if (from === "driver") {
    if (t !== Msg.SUBMIT) return `a driver may not send ${msgName(t)}`;
    // Its content is node 0's to check, with the code lapse train uses (config/job_check.ts).
    return isObject(m.config) ? null : "config is not a map";
  }
  if (from === "coordinator") return validateDriverEvent(m, t);
  const nodes = from.nodes;
  if (typeof m.job !== "number" || !isU32(m.job)) return "job is not a job id";
  if (isDataType(t)) return validateData(m, t, from.node, nodes, ctx.job ?? null);
  switch (t) {
    case Msg.PREPARE: {
      const c = m.config as JobConfig;
      if (!isObject(c) || typeof c.task !== "string") return "config is not a job config";
      if (!isObject(c.cluster) || !isCount(c.cluster.workers_per_node)) {
        return "config.cluster.workers_per_node is not a count";
      }
      if (!isObject(c.ps) || typeof c.ps.mode !== "string") return "config.ps is not ps settings";
      return null;
    }
    case Msg.PREPARED:
    case Msg.RUN:
    case Msg.WORKERS_DONE:
    case Msg.FINISH:
      return null;
    case Msg.BARRIER:
      return isU32(m.clock) ? null : "clock is not a clock";
    case Msg.BARRIER_GO:
      if (!isU32(m.clock)) return "clock is not a clock";
      return isU32(m.generation) ? null : "generation is not a count";
    case Msg.PROGRESS:
      return isAmount(m.points) && isAmount(m.epochPoints) ? null : "points are not amounts";
    case Msg.EPOCH:
      if (!isCount(m.epoch)) return "epoch is not a count";
      if (!isAmount(m.local) || !isAmount(m.remote)) return "access counts are not amounts";
      if (!isAmount(m.messages) || !isAmount(m.bytes)) return "traffic is not amounts";
      return namedProblem(m.sums, "sums");
    case Msg.FINISHED:
      return namedProblem(m.stats, "stats");
    case Msg.ABORT:
      return typeof m.reason === "string" ? null : "reason is not a string";
    case Msg.CHECKPOINT_READY:
    case Msg.CHECKPOINT_WRITE:
    case Msg.CHECKPOINT_GO:
      return isCount(m.epoch) ? null : "epoch is not a count";
    case Msg.CHECKPOINT_DONE: {
      if (!isCount(m.epoch)) return "epoch is not a count";
      if (!isAmount(m.writeSeconds)) return "writeSeconds is not a time";
      const f = m.file as CheckpointFile;
      if (!isObject(f) || !isNode(f.node, nodes) || typeof f.path !== "string") {
        return "file is not a checkpoint file of a node";
      }
      return isAmount(f.bytes) && isU32(f.hash) ? null : "file bytes or hash are not numbers";
    }
    case Msg.FAILED:
    case Msg.LOG:
      if (!isNode(m.node, nodes)) return `node ${m.node} is not a node of ${nodes}`;
      return typeof m.message === "string" ? null : "message is not a string";
    default:
      return `${msgName(t)} is not a message between nodes`;
  }
}

function validateDriverEvent(m: Record<string, unknown>, t: number): string | null {
  if (t === Msg.ERROR) return typeof m.message === "string" ? null : "message is not a string";
  if (typeof m.job !== "number" || !isU32(m.job)) return "job is not a job id";
  switch (t) {
    case Msg.JOB_INFO:
      return isCount(m.nodes) && isCount(m.workers) ? null : "nodes or workers not counts";
    case Msg.JOB_PROGRESS:
      return isAmount(m.points) && isAmount(m.epochPoints) ? null : "points are not amounts";
    case Msg.JOB_EPOCH:
      return isCount(m.epoch) ? namedProblem(m.metrics, "metrics") : "epoch is not a count";
    case Msg.JOB_DONE: {
      if (typeof m.wallSeconds !== "number" || typeof m.loadSeconds !== "number") {
        return "times are not numbers";
      }
      if (!Array.isArray(m.nodeStats)) return "nodeStats is not an array";
      for (const s of m.nodeStats) {
        const why = namedProblem(s, "nodeStats");
        if (why !== null) return why;
      }
      return null;
    }
    case Msg.JOB_ERROR:
    case Msg.JOB_LOG:
      if (!isU32(m.node)) return "node is not a node id";
      return typeof m.message === "string" ? null : "message is not a string";
    default:
      return `${msgName(t)} is not a message for a driver`;
  }
}

function validateData(
  m: Record<string, unknown>,
  t: number,
  from: number,
  nodes: number,
  job: { id: number; tables: readonly TableShape[] } | null,
): string | null {
  if (t === Msg.CLOCK) {
    // The worker's range is the job's: PsCore checks it.
    if (!isU32(m.worker) || !isU32(m.clock)) return "worker or clock is not a count";
    if (typeof m.idleAt !== "number" || !Number.isInteger(m.idleAt) || m.idleAt < -1) {
      return `idleAt ${m.idleAt} is not -1 or a count`;
    }
    return job === null || m.job !== job.id ? OTHER_JOB : null;
  }
  const keys = m.keys;
  if (!(keys instanceof Uint32Array) || keys.length === 0) {
    return "keys: not a non-empty Uint32Array";
  }
  if (!isU32(m.table)) return "table is not a table id";
  const n = keys.length;
  let hasValues = false;
  switch (t) {
    case Msg.PULL:
    case Msg.PUSH:
      if (!isNode(m.origin, nodes)) return `origin ${m.origin} is not a node of ${nodes}`;
      if (!u32Of(m.requests, n)) return `requests: not a Uint32Array of ${n}`;
      if (!u32Of(m.positions, n)) return `positions: not a Uint32Array of ${n}`;
      if (t === Msg.PULL && (!isU32(m.need) || !isU32(m.barriers))) {
        return "need or barriers is not a count";
      }
      hasValues = t === Msg.PUSH;
      break;
    case Msg.PULL_R:
    case Msg.PUSH_R:
      if (m.holder !== from) return `holder ${m.holder} is not the sender ${from}`;
      if (!u32Of(m.requests, n)) return `requests: not a Uint32Array of ${n}`;
      if (t === Msg.PULL_R) {
        if (!u32Of(m.positions, n)) return `positions: not a Uint32Array of ${n}`;
        if (!isU32(m.clock)) return "clock is not a clock";
        hasValues = true;
      }
      break;
    case Msg.LOCALIZE:
      if (m.dest !== from) return `dest ${m.dest} is not the requester ${from}`;
      break;
    case Msg.HANDOVER:
      if (!isNode(m.dest, nodes)) return `dest ${m.dest} is not a node of ${nodes}`;
      break;
    case Msg.TRANSFER:
      hasValues = true;
      break;
  }
  const values = m.values;
  if (hasValues && !(values instanceof Float32Array)) return "values: not a Float32Array";
  if (job === null || m.job !== job.id) return OTHER_JOB;
  const table = job.tables[m.table as number];
  if (table === undefined) return `table ${m.table} is not one of the job's ${job.tables.length}`;
  if (hasValues && (values as Float32Array).length !== n * table.dim) {
    return `values: ${(values as Float32Array).length} floats for ${n} keys of dim ${table.dim}`;
  }
  const limit = table.keys;
  for (let i = 0; i < n; i++) {
    if (keys[i] >= limit) return `key ${keys[i]} of table ${m.table} beyond its ${limit} keys`;
  }
  return null;
}

function isObject(x: unknown): x is Record<string, any> {
  return x !== null && typeof x === "object" && !Array.isArray(x) && !ArrayBuffer.isView(x);
}

function isU32(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** A finite number >= 0 (points and traffic are added up as floats). */
function isAmount(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x) && x >= 0;
}

function isNode(x: unknown, nodes: number): boolean {
  return typeof x === "number" && Number.isInteger(x) && x >= 0 && x < nodes;
}

function u32Of(x: unknown, n: number): boolean {
  return x instanceof Uint32Array && x.length === n;
}

function namedProblem(x: unknown, what: string): string | null {
  if (!isObject(x)) return `${what} is not names and values`;
  const { names, values } = x as NamedNumbers;
  if (!Array.isArray(names) || !(values instanceof Float64Array)) {
    return `${what} is not names and values`;
  }
  if (names.length !== values.length) {
    return `${what}: ${names.length} names for ${values.length} values`;
  }
  for (const name of names) if (typeof name !== "string") return `${what}: a name is not text`;
  return null;
}
