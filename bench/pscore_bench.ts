/**
 * Where the time of a large remote pull (and push) goes on the server threads, without
 * sockets, processes or scheduling noise: two {@linkcode PsCore}s in one thread, joined the way
 * a `Connection` joins them (the real wire code): each message is encoded straight into a
 * pooled send buffer (`encodeFrameInto`), which is free again once the receiver has handled
 * it, and each receiving node has one `FrameDecoder` that reuses its receive buffer. The
 * worker is emulated as `WorkerPs` behaves: request arrays are fresh or, when large, backed by
 * the buffer of an earlier answer, and belong to the core once passed (see PsCore.workerPull),
 * so memory circulates as in a real node. Baseline: a memcpy of the values into a reused
 * buffer (what the data itself costs to move once).
 * Run: `deno bench --allow-all bench/pscore_bench.ts`.
 *
 * Cases (10,000 keys x dim 100 = 4 MB of values, all held by node 0, requested by node 1):
 * - `round trip`: workerPull at node 1 -> PULL -> node 0 serves -> PULL_R -> node 1 delivers;
 * - `serve`: node 0 handling one decoded PULL (store reads, reply batching, encodeFrameInto);
 * - `deliver`: node 1 handling the decoded PULL_R messages of one pull (copy into the request,
 *   completion);
 * - `issue`: node 1's workerPull alone (routing 10,000 keys, encodeFrameInto of the PULL);
 * - push `round trip`: workerPush -> PUSH -> node 0 adds -> PUSH_R -> node 1 completes (the
 *   worker's copy of the deltas included, as WorkerPs makes one).
 *
 * The cluster-level figure is `lapse bench localize` (adds TCP, two processes and the
 * worker <-> server thread messages).
 *
 * @module
 */
import { PsCore } from "../server/ps_core.ts";
import {
  decodeMessage,
  encodeFrameInto,
  FRAME_BYTES_MAX_DEFAULT,
  FrameDecoder,
} from "../server/wire.ts";
import {
  type DataMessage,
  Msg,
  type PullMessage,
  type PullReplyMessage,
  validateMessage,
} from "../server/messages.ts";

const KEYS = 10_000, DIM = 100;
const JOB = { id: 1, tables: [{ keys: 2 * KEYS, dim: DIM }] };

/** The validator every node runs on every received message, as a node runs it. */
function checked(msg: unknown, to: number): DataMessage {
  const why = validateMessage(msg, { from: { node: 1 - to, nodes: 2 }, job: JOB });
  if (why !== null) throw new Error(`bench: ${why}`);
  return msg as DataMessage;
}

type Frame = { from: number; to: number; frame: Uint8Array };

function pair() {
  const queue: Frame[] = [];
  const free: Uint8Array[] = [];
  let completed = 0;
  let taken: Uint8Array = new Uint8Array(0);
  const reserve = (bytes: number) => {
    let i = free.findIndex((b) => b.length >= bytes);
    if (i < 0) {
      free.push(new Uint8Array(bytes));
      i = free.length - 1;
    }
    taken = free[i];
    free.splice(i, 1);
    return taken;
  };
  // The worker's buffers of answers, reused for its next large requests (as WorkerPs does).
  const spares: ArrayBuffer[] = [];
  const cores: PsCore[] = [0, 1].map((self) =>
    new PsCore({
      self,
      nodes: 2,
      job: 1,
      mode: "lapse",
      locationCaches: true,
      placement: "range",
      seed: 1,
      send: (node, msg) => {
        const bytes = encodeFrameInto(msg, reserve);
        queue.push({ from: self, to: node, frame: taken.subarray(0, bytes) });
      },
      reply: (_worker, _id, vals) => {
        completed++;
        if (vals !== null && vals.byteLength >= 64 * 1024) spares.push(vals.buffer as ArrayBuffer);
      },
    })
  );
  // Node 0 is home (and holder) of keys < KEYS.
  for (const c of cores) {
    c.createTables([{ name: "P", keys: 2 * KEYS, dim: DIM, init: { kind: "constant", value: 1 } }]);
  }
  const spare = (bytes: number) => {
    const i = spares.findIndex((b) => b.byteLength >= bytes);
    return i < 0 ? null : spares.splice(i, 1)[0];
  };
  /** A pull request's keys: at the front of a spare answer buffer when there is one. */
  const pullKeys = (src: Uint32Array) => {
    const buf = spare(src.length * DIM * 4);
    const k = buf === null ? new Uint32Array(src.length) : new Uint32Array(buf, 0, src.length);
    k.set(src);
    return k;
  };
  /** A push request's copy of the deltas, in a spare buffer when there is one. */
  const pushDeltas = (src: Float32Array) => {
    const buf = spare(src.byteLength);
    const d = buf === null ? new Float32Array(src.length) : new Float32Array(buf, 0, src.length);
    d.set(src);
    return d;
  };
  // One decoder per receiving node, reusing its buffer (as a Connection's does).
  const decoders = [0, 1].map(() => new FrameDecoder(FRAME_BYTES_MAX_DEFAULT, { reuse: true }));
  const decode = (frame: Uint8Array, to: number) => {
    const d = decoders[to];
    d.push(frame);
    return checked(decodeMessage(d.next()!), to);
  };
  const pump = () => {
    while (queue.length > 0) {
      const { from, to, frame } = queue.shift()!;
      cores[to].onMessage(from, decode(frame, to));
      free.push(new Uint8Array(frame.buffer)); // written and received: reusable
    }
  };
  /** Drops the queued frames (their send buffers are free again). */
  const discard = () => {
    for (const { frame } of queue.splice(0)) free.push(new Uint8Array(frame.buffer));
  };
  /**
   * All queued messages for node `to`, each decoded from its own copy of the frame: they stay
   * valid (a large answer is several messages, which one reused decoder could not keep).
   */
  const takeAll = (to: number) => {
    const out: DataMessage[] = [];
    while (queue.length > 0 && queue[0].to === to) {
      const { frame } = queue.shift()!;
      const d = new FrameDecoder(FRAME_BYTES_MAX_DEFAULT);
      d.push(frame.slice());
      out.push(checked(decodeMessage(d.next()!), to));
      free.push(new Uint8Array(frame.buffer));
    }
    return out;
  };
  return { cores, pump, discard, takeAll, pullKeys, pushDeltas, completed: () => completed };
}

const keys = new Uint32Array(KEYS);
for (let i = 0; i < KEYS; i++) keys[i] = i;
const deltas = new Float32Array(KEYS * DIM);
const group = `remote pull, ${KEYS} keys x dim ${DIM} (${(KEYS * DIM * 4) / 1e6} MB), in memory`;

{
  const src = new Float32Array(KEYS * DIM).fill(1), dst = new Float32Array(KEYS * DIM);
  Deno.bench({
    name: "memcpy of the values (reused buffer)",
    group,
    baseline: true,
    fn() {
      dst.set(src);
    },
  });
}

{
  const { cores, pump, pullKeys, completed } = pair();
  let id = 0;
  Deno.bench({
    name: "pull round trip (issue + serve + deliver, wire included)",
    group,
    fn() {
      const before = completed();
      cores[1].workerPull(0, ++id, 0, pullKeys(keys));
      pump();
      if (completed() !== before + 1) throw new Error("pull not completed");
    },
  });
}

{
  const { cores, takeAll, discard, pullKeys } = pair();
  cores[1].workerPull(0, 1, 0, pullKeys(keys));
  const pulls = takeAll(0);
  Deno.bench({
    name: "serve: node 0 handles one PULL (reads + reply + encodeFrameInto)",
    group,
    fn() {
      for (const pull of pulls) cores[0].onMessage(1, pull);
      discard();
    },
  });
}

{
  const { cores, takeAll, pullKeys, completed } = pair();
  cores[1].workerPull(0, 1, 0, pullKeys(keys));
  for (const pull of takeAll(0)) cores[0].onMessage(1, pull);
  // The answer: node 0 sends it as several PULL_R messages (one per reply batch).
  const replies = takeAll(1);
  let id = 1;
  Deno.bench({
    name: "deliver: node 1 handles one PULL_R (copy + completion)",
    group,
    fn(b) {
      // A fresh request to answer (not timed; its PULL is dropped), then the answer (timed).
      cores[1].workerPull(0, ++id, 0, pullKeys(keys));
      const rid = (takeAll(0)[0] as PullMessage).requests[0];
      for (const reply of replies) (reply as PullReplyMessage).requests.fill(rid);
      const before = completed();
      b.start();
      for (const reply of replies) cores[1].onMessage(0, reply);
      b.end();
      if (completed() !== before + 1) throw new Error("pull not completed");
    },
  });
}

{
  const { cores, pump, pullKeys, completed } = pair();
  let id = 0;
  Deno.bench({
    name: "issue: node 1 workerPull (routing + encodeFrameInto of the PULL)",
    group,
    fn(b) {
      const before = completed();
      const k = pullKeys(keys);
      b.start();
      cores[1].workerPull(0, ++id, 0, k);
      b.end();
      pump(); // serve and deliver (not timed), so that requests end and buffers circulate
      if (completed() !== before + 1) throw new Error("pull not completed");
    },
  });
}

{
  const { cores, pump, pullKeys, pushDeltas, completed } = pair();
  let id = 0;
  Deno.bench({
    name: "push round trip (copy + issue + add + ack, wire included)",
    group,
    fn(b) {
      // A pull first (not timed), as a training step does: its answer's buffer takes the copy.
      cores[1].workerPull(0, ++id, 0, pullKeys(keys));
      pump();
      const before = completed();
      b.start();
      cores[1].workerPush(0, ++id, 0, keys.slice(), pushDeltas(deltas));
      pump();
      b.end();
      if (completed() !== before + 1) throw new Error("push not completed");
    },
  });
}

// The message types used above, so that a renumbering shows up here.
if (Msg.PULL !== 1 || Msg.PULL_R !== 3) throw new Error("bench/pscore_bench.ts: Msg changed");
