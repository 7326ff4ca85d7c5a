/**
 * Where the time of a large remote pull (and push) goes on the server threads, without
 * sockets, processes or scheduling noise: two {@linkcode PsCore}s in one thread, joined by
 * `encodeFrame` -> `FrameDecoder` -> `decodeMessage` (the real wire code). Baseline: a memcpy
 * of the values into a reused buffer (what the data itself costs to move once).
 * Run: `deno bench --allow-all bench/pscore_bench.ts`.
 *
 * Cases (10,000 keys x dim 100 = 4 MB of values, all held by node 0, requested by node 1):
 * - `round trip`: workerPull at node 1 -> PULL -> node 0 serves -> PULL_R -> node 1 delivers;
 * - `serve`: node 0 handling one decoded PULL (store reads, reply batching, encodeFrame);
 * - `deliver`: node 1 handling one decoded PULL_R (copy into the request, completion);
 * - `issue`: node 1's workerPull alone (routing 10,000 keys, encodeFrame of the PULL);
 * - push `round trip`: workerPush -> PUSH -> node 0 adds -> PUSH_R -> node 1 completes.
 *
 * The cluster-level figure is `lapse bench localize` (adds TCP, two processes and the
 * worker <-> server thread messages).
 *
 * @module
 */
import { PsCore } from "../server/ps_core.ts";
import { decodeMessage, encodeFrame, FrameDecoder } from "../server/wire.ts";
import { Msg } from "../server/messages.ts";

const KEYS = 10_000, DIM = 100;

type Frame = { from: number; to: number; frame: Uint8Array };

function pair() {
  const queue: Frame[] = [];
  let completed = 0;
  const cores = [0, 1].map((self) =>
    new PsCore({
      self,
      nodes: 2,
      mode: "lapse",
      location_caches: true,
      placement: "range",
      seed: 1,
      send: (node, msg) => queue.push({ from: self, to: node, frame: encodeFrame(msg) }),
      reply: () => completed++,
    })
  );
  // Node 0 is home (and holder) of keys < KEYS.
  for (const c of cores) {
    c.createTables([{ name: "P", keys: 2 * KEYS, dim: DIM, init: { kind: "constant", value: 1 } }]);
  }
  const decode = (frame: Uint8Array) => {
    const d = new FrameDecoder();
    d.push(frame);
    return decodeMessage(d.next()!) as Record<string, any>;
  };
  const pump = () => {
    while (queue.length > 0) {
      const { from, to, frame } = queue.shift()!;
      cores[to].onMessage(from, decode(frame));
    }
  };
  return { cores, queue, pump, decode, completed: () => completed };
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
  const { cores, pump, completed } = pair();
  let id = 0;
  Deno.bench({
    name: "pull round trip (issue + serve + deliver, wire included)",
    group,
    fn() {
      const before = completed();
      cores[1].workerPull(0, ++id, 0, keys);
      pump();
      if (completed() !== before + 1) throw new Error("pull not completed");
    },
  });
}

{
  const { cores, queue, decode } = pair();
  cores[1].workerPull(0, 1, 0, keys);
  const pull = decode(queue.shift()!.frame);
  Deno.bench({
    name: "serve: node 0 handles one PULL (reads + reply + encodeFrame)",
    group,
    fn() {
      cores[0].onMessage(1, pull);
      queue.length = 0;
    },
  });
}

{
  const { cores, queue, decode, completed } = pair();
  cores[1].workerPull(0, 1, 0, keys);
  const pull = decode(queue.shift()!.frame);
  cores[0].onMessage(1, pull);
  const reply = decode(queue.shift()!.frame);
  let id = 1;
  Deno.bench({
    name: "deliver: node 1 handles one PULL_R (copy + completion)",
    group,
    fn(b) {
      // A fresh request to answer (not timed), then its reply (timed).
      cores[1].workerPull(0, ++id, 0, keys);
      const rid = decode(queue.shift()!.frame).r[0];
      (reply.r as Uint32Array).fill(rid);
      const before = completed();
      b.start();
      cores[1].onMessage(0, reply);
      b.end();
      if (completed() !== before + 1) throw new Error("pull not completed");
    },
  });
}

{
  const { cores, queue } = pair();
  let id = 0;
  Deno.bench({
    name: "issue: node 1 workerPull (routing + encodeFrame of the PULL)",
    group,
    fn() {
      cores[1].workerPull(0, ++id, 0, keys);
      queue.length = 0;
    },
  });
}

{
  const { cores, pump, completed } = pair();
  let id = 0;
  Deno.bench({
    name: "push round trip (issue + add + ack, wire included)",
    group,
    fn() {
      const before = completed();
      cores[1].workerPush(0, ++id, 0, keys, deltas);
      pump();
      if (completed() !== before + 1) throw new Error("push not completed");
    },
  });
}

// The message types used above, so that a renumbering shows up here.
if (Msg.PULL !== 1 || Msg.PULL_R !== 3) throw new Error("bench/pscore_bench.ts: Msg changed");
