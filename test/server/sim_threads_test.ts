/**
 * The simulated cluster with worker threads (sim_network.ts, `threads`): the real WorkerPs reads
 * local keys in shared memory while its node's server thread moves keys, scripted message by
 * message.
 */
import assert from "node:assert/strict";
import type { TableSpec } from "../../core/types.ts";
import { Msg } from "../../server/messages.ts";
import { SimCluster } from "./sim_network.ts";

// 12 keys over 3 nodes, range placement: key 4 has its home at node 1.
const T: TableSpec[] = [{ name: "t", keys: 12, dim: 2, init: { kind: "constant", value: 1.5 } }];

Deno.test("worker threads: a key arriving between two reads of one pull is read in position order", () => {
  // pscheck's rare "key went backwards" (3 nodes, real processes, loaded machine), replayed:
  // a worker pulls [4, 4]; position 0 misses, the TRANSFER of key 4 is inserted while the worker
  // thread is preempted, position 1 reads it in shared memory; then another node's push lands;
  // then the server thread reads position 0. Position 1 then held an older value than 0.
  const s = new SimCluster({ nodes: 3, tables: T, threads: true, record: true });
  const loc = s.localize(0, 0, 0, [4]); // not awaited
  s.deliverWorker(0, 0, "post");
  s.deliver(0, 1, Msg.LOCALIZE);
  assert.deepEqual(s.flying(), ["TRANSFER 1->0"]);
  let reads = 0;
  s.preempt = () => {
    if (++reads === 2) s.deliver(1, 0, Msg.TRANSFER); // between the two reads of key 4
  };
  const pull = s.pull(0, 0, 0, [4, 4]);
  s.preempt = null;
  assert.equal(reads, 2, "both positions were read in shared memory first");
  assert.equal(pull.done, false, "position 0 missed: the pull waits for the server thread");
  // Node 2 pushes +1: home 1 forwards it to the new owner 0, where it is applied.
  const push = s.push(2, 0, 0, [4], 1);
  s.deliverWorker(2, 0, "post");
  s.deliver(2, 1, Msg.PUSH);
  s.deliver(1, 0, Msg.PUSH);
  assert.deepEqual(s.value(0, 4), [2.5, 2.5]);
  s.deliverWorker(0, 0, "post"); // the pull's missed positions, read on the server thread
  s.deliverWorker(0, 0, "reply"); // the localize
  s.deliverWorker(0, 0, "reply"); // the pull
  s.run(100); // the PUSH_R to node 2 and its reply to the worker
  assert.ok(loc.done && pull.done && push.done);
  assert.deepEqual(
    [pull.row(0, 2), pull.row(1, 2)],
    [[2.5, 2.5], [2.5, 2.5]],
    "both positions read after the push, as the first one was",
  );
  s.checkSettled();
});
