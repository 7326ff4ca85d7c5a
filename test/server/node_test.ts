/**
 * LapseNode (server/node.ts) driven message by message through a recording transport: every
 * received message is validated; malformed ones and ones of other jobs are dropped and
 * counted, never thrown; messages that arrive before the node's mesh is complete are held.
 * (Worker threads are not started here: the tests stop before RUN.)
 */
import assert from "node:assert/strict";
import type { TaskDefinition } from "../../core/task.ts";
import type { JobConfig } from "../../core/types.ts";
import { LapseNode, type NodeTransport } from "../../server/node.ts";
import { Msg, type NodeMessage } from "../../server/messages.ts";
import type { Message } from "../../server/wire.ts";

const CONFIG = {
  task: "fake",
  seed: 1,
  data: {},
  model: {},
  cluster: { nodes: 2, workers_per_node: 1 },
  ps: {
    mode: "lapse",
    location_caches: false,
    placement: "range",
    max_frame_bytes: 1 << 20,
    batch_keys_max: 1000,
  },
  localize: [],
} as unknown as JobConfig;

const TASK = {
  name: "fake",
  tables: () => [{ name: "w", keys: 8, dim: 2, init: { kind: "constant", value: 1 } }],
  summarize: (s: Record<string, number>) => s,
} as unknown as TaskDefinition;

/** Node 1 of 2, with a transport that records what it sends. */
function node1(opts: { meshReady?: boolean } = {}) {
  const sent: [number, NodeMessage][] = [];
  const lines: string[] = [];
  const transport: NodeTransport = {
    send: (n, msg) => void sent.push([n, structuredClone(msg)]),
    stats: () => ({ messagesSent: sent.length, bytesSent: 0 }),
    isConnected: () => true,
  };
  const node = new LapseNode({
    self: 1,
    nodes: 2,
    transport,
    workerUrl: "file:///nowhere.ts",
    loadTask: () => Promise.resolve(TASK),
    meshReady: opts.meshReady ?? true,
    log: (line) => lines.push(line),
  });
  return { node, sent, lines };
}

/** Lets the node's PREPARE (which awaits the task loader) finish. */
const settle = () => new Promise((r) => setTimeout(r, 10));

Deno.test("a PREPARE makes the job's tables; data of that job is applied, of others dropped", async () => {
  const { node, sent } = node1();
  node.onNodeMessage(0, { t: Msg.PREPARE, job: 7, config: CONFIG });
  await settle();
  assert.deepEqual(sent, [[0, { t: Msg.PREPARED, job: 7 }]]);
  assert.ok(node.core !== null);
  // Keys 4-7 are homed (and held) at node 1: a pull from node 0 is answered.
  const pull = (job: number) => ({
    t: Msg.PULL,
    job,
    table: 0,
    origin: 0,
    requests: Uint32Array.of(5),
    keys: Uint32Array.of(4),
    positions: Uint32Array.of(0),
    need: 0,
    barriers: 0,
  });
  node.onNodeMessage(0, pull(7));
  assert.equal(sent.length, 2);
  assert.equal(sent[1][1].t, Msg.PULL_R);
  assert.equal(sent[1][1].job, 7);
  // The same pull of an aborted job (6) or a later one (8): dropped, counted, no answer.
  node.onNodeMessage(0, pull(6));
  node.onNodeMessage(0, pull(8));
  assert.equal(sent.length, 2);
  assert.deepEqual({ ...node.dropped }, { otherJob: 2, malformed: 0 });
  // Control messages of another job are dropped too (an ABORT of it is only news).
  node.onNodeMessage(0, { t: Msg.FINISH, job: 6 });
  node.onNodeMessage(0, { t: Msg.ABORT, job: 6, reason: "old" });
  assert.equal(node.dropped.otherJob, 3);
  assert.ok(node.core !== null, "job 7 is untouched");
  node.onNodeMessage(0, { t: Msg.ABORT, job: 7, reason: "the driver gave up" });
  assert.equal(node.core, null);
  // After the job: its data messages are of no job here.
  node.onNodeMessage(0, pull(7));
  assert.equal(node.dropped.otherJob, 4);
  assert.equal(sent.length, 2);
  node.close();
});

Deno.test("malformed messages are logged (rate-limited), counted, dropped, and fail the job", async () => {
  const { node, sent, lines } = node1();
  const junk: unknown[] = [
    { t: 99 },
    { t: Msg.PULL, job: 1, table: 0 },
    { nothing: true },
    { t: Msg.PREPARED, job: 1 }, // a message for node 0, sent to node 1
  ];
  for (const msg of junk) node.onNodeMessage(0, msg as Message);
  assert.equal(node.dropped.malformed, 4);
  assert.equal(sent.length, 0, "no job: nothing to fail");
  node.onNodeMessage(0, { t: Msg.PREPARE, job: 3, config: CONFIG });
  await settle();
  // A TRANSFER of this job with the wrong number of floats: the job fails, once.
  const transfer = {
    t: Msg.TRANSFER,
    job: 3,
    table: 0,
    keys: Uint32Array.of(0),
    values: new Float32Array(3),
  };
  for (let i = 0; i < 20; i++) node.onNodeMessage(0, transfer);
  const failed = sent.filter(([, m]) => m.t === Msg.FAILED);
  assert.equal(failed.length, 1);
  assert.match(
    (failed[0][1] as { message: string }).message,
    /malformed TRANSFER from node 0: values: 3 floats for 1 keys of dim 2/,
  );
  assert.equal(node.dropped.malformed, 24);
  // A TRANSFER of a key nobody asked for passes the validator but not the core: no throw.
  node.onNodeMessage(0, {
    t: Msg.TRANSFER,
    job: 3,
    table: 0,
    keys: Uint32Array.of(0),
    values: new Float32Array(2),
  });
  assert.equal(node.dropped.malformed, 25);
  // The log is rate-limited: 25 drops, at most 5 lines in an interval.
  assert.ok(lines.filter((l) => l.includes("dropped")).length <= 5, lines.join("\n"));
  node.close();
});

Deno.test("messages that arrive before the mesh is complete are held, then handled in order", async () => {
  const { node, sent } = node1({ meshReady: false });
  node.onNodeMessage(0, { t: Msg.PREPARE, job: 4, config: CONFIG });
  await settle();
  assert.equal(sent.length, 0, "no PREPARED before the mesh is complete");
  assert.equal(node.core, null);
  node.meshReady();
  await settle();
  assert.deepEqual(sent, [[0, { t: Msg.PREPARED, job: 4 }]]);
  node.close();
});

Deno.test("a PREPARE aborted while its task loads leaves no job; the next one wins", async () => {
  const { node, sent } = node1();
  node.onNodeMessage(0, { t: Msg.PREPARE, job: 10, config: CONFIG });
  node.onNodeMessage(0, { t: Msg.ABORT, job: 10, reason: "gave up" });
  await settle();
  assert.equal(node.core, null);
  node.onNodeMessage(0, { t: Msg.PREPARE, job: 11, config: CONFIG });
  node.onNodeMessage(0, { t: Msg.ABORT, job: 11, reason: "gave up" });
  node.onNodeMessage(0, { t: Msg.PREPARE, job: 12, config: CONFIG });
  await settle();
  assert.deepEqual(sent.map(([, m]) => m.job), [12]);
  node.close();
});
