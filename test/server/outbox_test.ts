import assert from "node:assert/strict";
import { Outbox } from "../../server/outbox.ts";
import { type DataMessage, Msg } from "../../server/messages.ts";

Deno.test("outbox: push rows from one array, interleaved over nodes, arrive with their values", () => {
  const sent: { node: number; keys: number[]; values: number[] }[] = [];
  const box = new Outbox(0, 3, 1, (node: number, msg: DataMessage) => {
    assert.equal(msg.t, Msg.PUSH);
    if (msg.t !== Msg.PUSH) return;
    sent.push({ node, keys: [...msg.keys], values: [...msg.values] });
  });
  const dim = 2, n = 10;
  const deltas = new Float32Array(n * dim);
  for (let i = 0; i < deltas.length; i++) deltas[i] = i;
  // Keys 0..3 and 7..9 to node 1 (two runs of consecutive rows), 4..6 to node 2.
  for (let i = 0; i < n; i++) {
    box.push(i >= 4 && i <= 6 ? 2 : 1, 0, 0, 5, i, i, deltas, i * dim, dim);
  }
  // Rows of another array for node 1 in between flushes: copied, not mixed up with the above.
  box.push(1, 0, 0, 5, 99, 10, Float32Array.of(-1, -2), 0, dim);
  box.flush();
  deltas.fill(0); // the outbox must have copied everything by the flush
  const byNode = Object.fromEntries(sent.map((s) => [s.node, s]));
  assert.deepEqual(byNode[1].keys, [0, 1, 2, 3, 7, 8, 9, 99]);
  assert.deepEqual(byNode[1].values, [0, 1, 2, 3, 4, 5, 6, 7, 14, 15, 16, 17, 18, 19, -1, -2]);
  assert.deepEqual(byNode[2].keys, [4, 5, 6]);
  assert.deepEqual(byNode[2].values, [8, 9, 10, 11, 12, 13]);
});

Deno.test("outbox: bulk push replies stay within the split size", () => {
  const sizes: number[] = [];
  const box = new Outbox(0, 2, 1, (_node: number, msg: DataMessage) => {
    if (msg.t === Msg.PUSH_R) sizes.push(msg.keys.length);
  }, 120);
  const r = new Uint32Array(25).fill(3), k = new Uint32Array(25).map((_, i) => i);
  box.pushReplies(1, 0, r, k, 0, 25);
  box.flush();
  assert.deepEqual(sizes, [10, 10, 5], "120 bytes of 12 per entry: 10 entries a message");
});
