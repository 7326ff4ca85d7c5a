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

Deno.test("outbox: pullRun and pushRun send what the per-entry calls send, split alike", () => {
  const dim = 3, n = 50, rid = 7;
  const keys = new Uint32Array(n).map((_, i) => 1000 + i);
  const deltas = new Float32Array(n * dim).map((_, i) => i / 2);
  const record = (out: unknown[]) => (node: number, msg: DataMessage) => {
    const m = msg as unknown as Record<string, unknown>;
    const copy: Record<string, unknown> = { node };
    for (const [k, v] of Object.entries(m)) {
      copy[k] = ArrayBuffer.isView(v) ? [...(v as Uint32Array)] : v;
    }
    out.push(copy);
  };
  const one: unknown[] = [], bulk: unknown[] = [];
  // A split of 200 bytes: 16 pull entries (12 bytes) or 8 push entries (24 bytes) a message.
  const a = new Outbox(0, 3, 1, record(one), 200), b = new Outbox(0, 3, 1, record(bulk), 200);
  for (let i = 0; i < n; i++) a.pull(2, 0, 0, rid, keys[i], i);
  for (let i = 0; i < n; i++) a.push(1, 0, 0, rid, keys[i], i, deltas, i * dim, dim);
  a.flush();
  for (let i = 0; i < n;) i += b.pullRun(2, 0, rid, keys, i, n - i);
  for (let i = 0; i < 20;) i += b.pushRun(1, 0, rid, keys, i, 20 - i, deltas, dim);
  for (let i = 20; i < n;) i += b.pushRun(1, 0, rid, keys, i, n - i, deltas, dim);
  b.flush();
  assert.ok(one.length >= 8, `split into ${one.length} messages`);
  assert.deepEqual(bulk, one);
});

Deno.test("outbox: pullRepliesNow sends its entries as one message, after what was batched", () => {
  const sent: DataMessage[] = [];
  const box = new Outbox(0, 2, 1, (_node: number, msg: DataMessage) => sent.push(msg));
  const dim = 2;
  box.buf[box.pullReply(1, 0, 9, 40, 0, dim)] = 5; // one batched entry first
  const r = Uint32Array.of(3, 3, 3), k = Uint32Array.of(10, 11, 12), p = Uint32Array.of(0, 1, 2);
  box.pullRepliesNow(1, 0, r, k, p, 1, 2, Float32Array.of(1, 2, 3, 4));
  box.flush();
  assert.deepEqual(sent.map((m) => m.t), [Msg.PULL_R, Msg.PULL_R], "nothing left to flush");
  const [first, now] = sent;
  if (first.t !== Msg.PULL_R || now.t !== Msg.PULL_R) return;
  assert.deepEqual([...first.keys], [40]);
  assert.deepEqual([...now.requests], [3, 3]);
  assert.deepEqual([...now.keys], [11, 12]);
  assert.deepEqual([...now.positions], [1, 2]);
  assert.deepEqual([...now.values], [1, 2, 3, 4]);
  assert.equal(now.holder, 0);
  assert.equal(box.pullRepliesMax(dim), Math.floor((1024 * 1024) / (4 * dim + 12)));
});

Deno.test("outbox: a PUSH whose rows all come from one array sends a view of it", () => {
  const dim = 2, deltas = Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7);
  const sent: { keys: number[]; values: number[]; view: boolean }[] = [];
  // The message is valid during the call only (its arrays are reused): copied here.
  const box = new Outbox(0, 2, 1, (_node: number, msg: DataMessage) => {
    if (msg.t !== Msg.PUSH) return assert.fail(`PUSH expected, got ${msg.t}`);
    const view = msg.values.buffer === deltas.buffer;
    sent.push({ keys: [...msg.keys], values: [...msg.values], view });
  });
  const keys = Uint32Array.of(20, 21, 22, 23);
  box.pushRun(1, 0, 7, keys, 1, 3, deltas, dim);
  box.flush();
  // Another array joins the batch: the rows are copied into the message's own array.
  box.pushRun(1, 0, 8, keys, 0, 2, deltas, dim);
  box.push(1, 0, 0, 9, 30, 0, Float32Array.of(-1, -2), 0, dim);
  box.flush();
  assert.deepEqual(sent, [
    { keys: [21, 22, 23], values: [2, 3, 4, 5, 6, 7], view: true }, // no copy before the frame's
    { keys: [20, 21, 30], values: [0, 1, 2, 3, -1, -2], view: false },
  ]);
});
