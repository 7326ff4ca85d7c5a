/**
 * Memory rules of server/connection.ts over real loopback TCP: pooled send buffers (small
 * frames appended to one buffer, large ones written at once, partial writes), and the reused
 * receive buffer (a message's arrays are valid only while its handler runs).
 */
import assert from "node:assert/strict";
import { Connection, type ConnectionOptions } from "../../server/connection.ts";
import { encodeFrame, type Message } from "../../server/wire.ts";

/** A sender and a receiver Connection over loopback TCP; the receiver calls `onMessage`. */
async function pair(
  onMessage: (msg: Message) => void,
  receiver_options: Partial<ConnectionOptions> = {},
): Promise<[Connection, Connection]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [accepted, dialed] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
  ]);
  listener.close();
  const sender = new Connection(dialed, { name: "receiver" });
  const receiver = new Connection(accepted, { name: "sender", onMessage, ...receiver_options });
  sender.start();
  receiver.start();
  return [sender, receiver];
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** What a handler may keep of a message: copies (see Connection.onMessage). */
interface Seen {
  i: number;
  length: number;
  first: number;
  last: number;
  sum: number;
}

function see(msg: Message): Seen {
  const v = msg.v as Float32Array;
  let sum = 0;
  for (let j = 0; j < v.length; j++) sum += v[j];
  return { i: msg.i as number, length: v.length, first: v[0], last: v[v.length - 1], sum };
}

function expected(i: number, length: number): Seen {
  return { i, length, first: i, last: i, sum: i * length };
}

Deno.test("small and large frames, interleaved, arrive intact and in order", async () => {
  const seen: Seen[] = [];
  const [sender, receiver] = await pair((msg) => seen.push(see(msg)));
  try {
    // Lengths from a few floats to frames larger than a socket buffer takes at once (partial
    // writes), in one tick and across ticks; the sender's buffers are reused meanwhile.
    const lengths = [1, 3, 700_000, 5, 10, 2_000_000, 65_000, 1, 66_000, 1_500_000, 2, 4];
    const want: Seen[] = [];
    let i = 0;
    for (let round = 0; round < 3; round++) {
      for (const n of lengths) {
        sender.send({ t: 1, i, v: new Float32Array(n).fill(i) });
        want.push(expected(i++, n));
      }
      if (round === 1) await sender.drain();
      else await new Promise((resolve) => setTimeout(resolve, 0));
    }
    // A frame encoded once (as for a broadcast), large and small.
    const large = encodeFrame({ t: 1, i, v: new Float32Array(300_000).fill(i) });
    sender.sendFrame(large);
    want.push(expected(i++, 300_000));
    sender.sendFrame(encodeFrame({ t: 1, i, v: new Float32Array(2).fill(i) }));
    want.push(expected(i++, 2));
    await sender.drain();
    await until(() => seen.length === want.length, "all messages");
    assert.deepEqual(seen, want);
    assert.equal(receiver.bytesReceived, sender.bytesSent);
    assert.equal(sender.queuedBytes, 0);
  } finally {
    await sender.close();
    await receiver.closed;
  }
});

Deno.test("a large frame is written at once; small ones wait for the end of the tick", async () => {
  const seen: number[] = [];
  const [sender, receiver] = await pair((msg) => seen.push(msg.i as number));
  try {
    sender.send({ t: 1, i: 0 });
    sender.send({ t: 1, i: 1 });
    assert.equal(sender.writes, 0, "small frames are coalesced first");
    sender.send({ t: 1, i: 2, v: new Float32Array(100_000) });
    assert.equal(sender.writes, 1, "a large frame starts the write, the small ones in front");
    sender.send({ t: 1, i: 3 });
    await sender.drain();
    await until(() => seen.length === 4, "all messages");
    assert.deepEqual(seen, [0, 1, 2, 3]);
  } finally {
    await sender.close();
    await receiver.closed;
  }
});

Deno.test("a message's arrays are valid only until its handler returns", async () => {
  const kept: Message[] = [];
  const copies: Float32Array[] = [];
  const [sender, receiver] = await pair((msg) => {
    kept.push(msg); // against the rule, to show it
    copies.push((msg.v as Float32Array).slice()); // what a handler that keeps data does
  });
  try {
    sender.send({ t: 1, v: new Float32Array(1000).fill(1) });
    await until(() => kept.length === 1, "the first message");
    assert.equal((kept[0].v as Float32Array)[0], 1, "valid inside (and right after) the handler");
    sender.send({ t: 1, v: new Float32Array(1000).fill(2) });
    await until(() => kept.length === 2, "the second message");
    // The receive buffer was reused: the first message's array now shows the second one.
    assert.equal((kept[0].v as Float32Array)[0], 2);
    assert.deepEqual(copies.map((c) => c[999]), [1, 2], "copies stay valid");
    assert.equal(kept[0].t, 1, "plain values may be kept");
  } finally {
    await sender.close();
    await receiver.closed;
  }
});

Deno.test("reuseReceiveBuffer: false keeps every message's arrays valid", async () => {
  const kept: Message[] = [];
  const [sender, receiver] = await pair((msg) => kept.push(msg), {
    reuseReceiveBuffer: false,
  });
  try {
    for (let i = 0; i < 50; i++) {
      sender.send({ t: 1, v: new Float32Array(10_000).fill(i) });
      if (i % 10 === 9) await sender.drain();
    }
    await until(() => kept.length === 50, "all messages");
    kept.forEach((msg, i) => assert.ok((msg.v as Float32Array).every((x) => x === i), `${i}`));
  } finally {
    await sender.close();
    await receiver.closed;
  }
});
