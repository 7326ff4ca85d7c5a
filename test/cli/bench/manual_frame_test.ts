/**
 * The frames of the manual mf baseline over real loopback TCP: a round trip straight into the
 * receiver's buffer, and every way a stream can be broken (bad magic, unknown kind, impossible
 * length, wrong block size, a connection that ends inside a header or a payload).
 */
import assert from "node:assert/strict";
import {
  encodeFrameHeader,
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  FrameError,
  type FrameHeader,
  FrameKind,
  FrameReader,
  writeAll,
  writeFrame,
} from "../../../cli/bench/manual_frame.ts";

/** A connected pair of loopback sockets. */
async function pair(): Promise<{ a: Deno.TcpConn; b: Deno.TcpConn }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  return { a, b };
}

/** Sends raw `bytes` on one end, closes it, and returns a reader of the other end. */
async function readerOf(bytes: Uint8Array): Promise<{ reader: FrameReader; done: () => void }> {
  const { a, b } = await pair();
  await writeAll(a, bytes);
  a.close();
  return { reader: new FrameReader(b, "worker 7"), done: () => b.close() };
}

function header(h: FrameHeader): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES);
  encodeFrameHeader(h, out);
  return out;
}

const BLOCK: FrameHeader = { kind: FrameKind.BLOCK, block: 3, epoch: 2, step: 1, payloadBytes: 16 };

Deno.test("manual frames: a block goes through TCP into the receiver's buffer, then a clean end", async () => {
  const { a, b } = await pair();
  const values = new Float32Array(1000).map((_, i) => i * 0.5 - 7);
  const payload = new Uint8Array(values.buffer);
  const h = { kind: FrameKind.BLOCK, block: 5, epoch: 9, step: 3, payloadBytes: payload.length };
  const sent = writeFrame(a, new Uint8Array(FRAME_HEADER_BYTES), h, payload);
  const reader = new FrameReader(b, "worker 1");
  const got = await reader.readHeader();
  assert.deepEqual(got, h);
  const into = new Float32Array(1000);
  await reader.readPayload(got!, new Uint8Array(into.buffer));
  assert.equal(await sent, FRAME_HEADER_BYTES + 4000);
  assert.deepEqual(into, values);
  a.close();
  assert.equal(await reader.readHeader(), null, "a close between frames is a clean end");
  b.close();
});

Deno.test("manual frames: a bad magic is a FrameError naming the peer", async () => {
  const bytes = header(BLOCK);
  bytes[0] ^= 0xff;
  const { reader, done } = await readerOf(bytes);
  await assert.rejects(() => reader.readHeader(), (e: Error) => {
    assert.ok(e instanceof FrameError);
    assert.match(e.message, /bad frame from worker 7: magic 0x/);
    assert.match(e.message, new RegExp(FRAME_MAGIC.toString(16)));
    return true;
  });
  done();
});

Deno.test("manual frames: unknown kind and impossible lengths are rejected", async () => {
  for (
    const [h, re] of [
      [{ ...BLOCK, kind: 9 }, /unknown kind 9/],
      [{ ...BLOCK, payloadBytes: 6 }, /payload of 6 bytes/],
      [{ ...BLOCK, payloadBytes: 0xfffffffc }, /payload of 4294967292 bytes/],
    ] as const
  ) {
    const { reader, done } = await readerOf(header(h));
    await assert.rejects(() => reader.readHeader(), re);
    done();
  }
});

Deno.test("manual frames: a payload of the wrong size for the block is rejected", async () => {
  const { reader, done } = await readerOf(header(BLOCK));
  const h = await reader.readHeader();
  await assert.rejects(
    () => reader.readPayload(h!, new Uint8Array(32)),
    /16 payload bytes for block 3, expected 32/,
  );
  done();
});

Deno.test("manual frames: short reads inside a header and inside a payload", async () => {
  {
    const { reader, done } = await readerOf(header(BLOCK).subarray(0, 10));
    await assert.rejects(
      () => reader.readHeader(),
      /short read from worker 7: the connection ended after 10 of the 24 bytes of a frame header/,
    );
    done();
  }
  {
    const bytes = new Uint8Array(FRAME_HEADER_BYTES + 12);
    bytes.set(header(BLOCK));
    const { reader, done } = await readerOf(bytes);
    const h = await reader.readHeader();
    await assert.rejects(
      () => reader.readPayload(h!, new Uint8Array(16)),
      /ended after 12 of the 16 payload bytes of block 3 \(epoch 2, step 1\)/,
    );
    done();
  }
});

Deno.test("manual frames: writeFrame refuses a payload that disagrees with its header", async () => {
  const { a, b } = await pair();
  await assert.rejects(
    () => writeFrame(a, new Uint8Array(FRAME_HEADER_BYTES), BLOCK, new Uint8Array(8)),
    RangeError,
  );
  a.close();
  b.close();
});
