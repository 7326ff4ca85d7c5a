import assert from "node:assert/strict";
import {
  decodeMessage,
  encodeFrame,
  encodeFrameInto,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
  MalformedFrameError,
  type Message,
  RECEIVE_BUFFER_BYTES_RETAIN,
} from "../../server/wire.ts";

/** Pushes `bytes` split at the given positions and returns the decoded messages. */
function decodeSplit(bytes: Uint8Array, cuts: number[], frameBytesMax = 1 << 20): Message[] {
  const decoder = new FrameDecoder(frameBytesMax);
  const out: Message[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    decoder.push(bytes.subarray(from, cut));
    from = cut;
    for (let body = decoder.next(); body !== null; body = decoder.next()) {
      out.push(decodeMessage(body));
    }
  }
  assert.equal(decoder.bufferedBytes, 0);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sampleMessages(): Message[] {
  return [
    { t: 1, tb: 3, k: new Uint32Array([7, 8, 9]), v: new Float32Array([0.5, -1.25, 3]) },
    { t: 22, job: "job-1", config: { nodes: 2, name: "mf" }, ok: true, none: null },
    { t: 7, k: new Int32Array([-1, 2]), v: new Float32Array(5).fill(2.5), note: "é✓" },
  ];
}

Deno.test("frames are 4-byte multiples with a little-endian body length", () => {
  for (const msg of sampleMessages()) {
    const frame = encodeFrame(msg);
    assert.equal(frame.length % 4, 0);
    const bodyBytes = new DataView(frame.buffer).getUint32(0, true);
    assert.ok(bodyBytes <= frame.length - FRAME_HEADER_BYTES);
    assert.ok(bodyBytes > frame.length - FRAME_HEADER_BYTES - 4);
  }
});

Deno.test("typed arrays and plain values round-trip", () => {
  const msg = {
    t: 5,
    u32: new Uint32Array([0, 1, 0xffffffff]),
    i32: new Int32Array([-5, 0, 2 ** 31 - 1]),
    f32: new Float32Array([1.5, -0, Infinity]),
    f64: new Float64Array([Math.PI, -1e300]),
    u16: new Uint16Array([1, 65535]),
    i16: new Int16Array([-2, 3]),
    u8: new Uint8Array([1, 2, 3]),
    nested: [new Uint32Array([4]), { deep: new Float32Array([6]) }],
    s: "text",
    "ключ-ключ-ключ": new Float32Array([7]), // 14 chars, 25 UTF-8 bytes, on the direct path
    n: 1.5,
    big: 2 ** 40,
  };
  const [out] = decodeSplit(encodeFrame(msg), []) as unknown as (typeof msg)[];
  assert.deepEqual(out, msg);
  assert.ok(out.u32 instanceof Uint32Array);
  assert.ok(out.i32 instanceof Int32Array);
  assert.ok(out.f32 instanceof Float32Array);
  assert.ok(out.f64 instanceof Float64Array);
  assert.ok(out.u8 instanceof Uint8Array);
  assert.ok((out.nested[1] as { deep: Float32Array }).deep instanceof Float32Array);
});

Deno.test("a chunk split at every byte position gives the same frames", () => {
  const msgs = sampleMessages();
  const bytes = concat(msgs.map(encodeFrame));
  for (let cut = 0; cut <= bytes.length; cut++) {
    assert.deepEqual(decodeSplit(bytes, [cut]), msgs, `split at ${cut}`);
  }
  // and one byte at a time
  const every = Array.from({ length: bytes.length }, (_, i) => i);
  assert.deepEqual(decodeSplit(bytes, every), msgs);
});

Deno.test("many frames in one chunk", () => {
  const msgs: Message[] = [];
  for (let i = 0; i < 1000; i++) {
    msgs.push({ t: 1, r: i, k: new Uint32Array(i % 7).fill(i) });
  }
  const out = decodeSplit(concat(msgs.map(encodeFrame)), []);
  assert.equal(out.length, 1000);
  assert.deepEqual(out, msgs);
});

Deno.test("a declared length above frameBytesMax throws FrameTooLargeError", () => {
  const decoder = new FrameDecoder(100);
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 101, true);
  decoder.push(header);
  assert.throws(() => decoder.next(), (err: unknown) => {
    assert.ok(err instanceof FrameTooLargeError);
    assert.match(err.message, /frame of 101 bytes exceeds the limit of 100 bytes/);
    assert.equal(err.frameBytes, 101);
    assert.equal(err.frameBytesMax, 100);
    return true;
  });
  // exactly at the limit is fine
  const ok = new FrameDecoder(100);
  new DataView(header.buffer).setUint32(0, 100, true);
  ok.push(header);
  ok.push(new Uint8Array(100));
  assert.equal(ok.next()?.length, 100);
});

Deno.test("malformed bodies throw MalformedFrameError", () => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array([0xff, 0x12]), /not valid CBOR/],
    [new Uint8Array([]), /not valid CBOR/],
    [new Uint8Array([0xa1, 0x61]), /not valid CBOR/], // truncated map
    [new Uint8Array([0x83, 1, 2, 3]), /not a CBOR map but an array/],
    [new Uint8Array([0x05]), /not a CBOR map but a number/],
    [new Uint8Array([0xa1, 0x61, 0x78, 0x01]), /no numeric "t"/], // { x: 1 }
    [new Uint8Array([0xa1, 0x61, 0x74, 0x61, 0x31]), /no numeric "t" \(got a string\)/],
  ];
  for (const [body, pattern] of cases) {
    assert.throws(() => decodeMessage(body), (err: unknown) => {
      assert.ok(err instanceof MalformedFrameError, String(err));
      assert.match(err.message, pattern);
      return true;
    });
  }
});

Deno.test("decoded 4-byte typed arrays are views of the receive buffer, not copies", () => {
  // Vary what precedes each array so that every alignment residue and every length class
  // (1-, 2-, 3- and 5-byte CBOR lengths) occurs.
  for (const elements of [0, 1, 5, 6, 63, 64, 16383, 16384, 300_000]) {
    for (const prefix of ["", "a", "ab", "abc"]) {
      const msg = {
        t: 3,
        [prefix + "p"]: prefix,
        k: new Uint32Array(elements).map((_, i) => i),
        v: new Float32Array(elements + 1).fill(0.25),
        list: [new Int32Array(3).fill(-7), new Uint16Array(elements % 5)],
      };
      const frame = encodeFrame(msg);
      const decoder = new FrameDecoder(1 << 24);
      // large frames arrive in pieces, as from a socket
      for (let at = 0; at < frame.length; at += 65536) {
        decoder.push(frame.subarray(at, at + 65536));
      }
      const body = decoder.next();
      assert.ok(body !== null);
      assert.equal(body.byteOffset % 4, 0);
      const out = decodeMessage(body) as unknown as typeof msg;
      const where = `elements=${elements} prefix=${prefix.length}`;
      assert.equal(out.k.buffer, body.buffer, `k copied: ${where}`);
      assert.equal(out.v.buffer, body.buffer, `v copied: ${where}`);
      assert.equal(out.list[0].buffer, body.buffer, `list[0] copied: ${where}`);
      assert.equal(out.list[1].buffer, body.buffer, `list[1] copied: ${where}`);
      assert.deepEqual(out, msg, where);
    }
  }
});

Deno.test("nested typed arrays (encoded by cbor-x) are realigned too, at every offset", () => {
  // A string of 0..7 bytes before the list moves the nested arrays through every residue mod
  // 4, with 1-, 2-, 3- and 5-byte CBOR lengths (the last needs the self-describe tag).
  for (const elements of [1, 7, 100, 20_000, 70_000]) {
    for (let pad = 0; pad < 8; pad++) {
      const msg = {
        t: 2,
        s: "x".repeat(pad),
        list: [new Float32Array(elements).fill(pad), { k: new Uint32Array(elements) }],
      };
      const [body] = bodies(encodeFrame(msg));
      const out = decodeMessage(body) as unknown as typeof msg;
      const where = `elements=${elements} pad=${pad}`;
      assert.equal((out.list[0] as Float32Array).buffer, body.buffer, `list[0] copied: ${where}`);
      assert.equal((out.list[1] as { k: Uint32Array }).k.buffer, body.buffer, where);
      assert.deepEqual(out, msg, where);
    }
  }
});

/** All frame bodies in `bytes`. */
function bodies(bytes: Uint8Array): Uint8Array[] {
  const decoder = new FrameDecoder(1 << 24);
  decoder.push(bytes);
  const out: Uint8Array[] = [];
  for (let body = decoder.next(); body !== null; body = decoder.next()) out.push(body);
  return out;
}

Deno.test("returned bodies are never overwritten by later chunks", () => {
  const decoder = new FrameDecoder(1 << 24);
  decoder.push(encodeFrame({ t: 1, v: new Float32Array(1000).fill(1) }));
  const first = decodeMessage(decoder.next()!) as unknown as { v: Float32Array };
  assert.equal(first.v.buffer.byteLength > 0, true);
  for (let i = 0; i < 200; i++) {
    decoder.push(encodeFrame({ t: 1, v: new Float32Array(1000).fill(i + 2) }));
    const msg = decodeMessage(decoder.next()!) as unknown as { v: Float32Array };
    assert.equal(msg.v[999], i + 2);
  }
  assert.ok(first.v.every((x) => x === 1));
});

Deno.test("8-byte arrays round-trip even when they have to be copied", () => {
  for (const prefix of ["", "a", "ab", "abc", "abcd"]) {
    const msg = { t: 1, [prefix]: 0, d: new Float64Array([1, 2, 3]), b: new BigInt64Array([-1n]) };
    const [out] = decodeSplit(encodeFrame(msg), [1]);
    assert.deepEqual(out, msg);
  }
});

Deno.test("space()/commit() receive without a copy and grow for a large frame", () => {
  const frame = encodeFrame({ t: 9, v: new Float32Array(1_000_000).fill(3) });
  const decoder = new FrameDecoder(1 << 24);
  let at = 0;
  let calls = 0;
  while (at < frame.length) {
    const space = decoder.space(16);
    const n = Math.min(space.length, frame.length - at, 100_000);
    space.set(frame.subarray(at, at + n));
    decoder.commit(n);
    at += n;
    calls++;
    // once the header is in, the whole frame fits in the offered space
    if (at >= 4 && at < frame.length) assert.ok(decoder.space(1).length >= frame.length - at);
  }
  assert.ok(calls <= Math.ceil(frame.length / 100_000) + 1);
  const out = decodeMessage(decoder.next()!) as unknown as { v: Float32Array };
  assert.equal(out.v.length, 1_000_000);
  assert.equal(out.v[999_999], 3);
  assert.throws(() => decoder.commit(1 << 30), RangeError);
});

// --- encodeFrameInto and the decoder's reuse mode ---------------------------------------------

Deno.test("encodeFrameInto writes encodeFrame's bytes into dirty memory, at any offset", () => {
  for (const msg of [...sampleMessages(), { t: 4, v: new Float32Array(70_000).fill(1.25) }]) {
    const want = encodeFrame(msg);
    const memory = new Uint8Array(want.length + 64).fill(0xee); // garbage, padding included
    let asked = -1;
    const bytes = encodeFrameInto(msg, (n) => {
      asked = n;
      return memory.subarray(8, 8 + n);
    });
    assert.equal(bytes, want.length);
    assert.equal(asked, want.length);
    assert.deepEqual(memory.subarray(8, 8 + bytes), want, "same bytes, padding zeroed");
    assert.ok(memory.subarray(8 + bytes).every((b) => b === 0xee), "nothing written beyond");
  }
  // A reserve that throws (a size limit, say) leaves nothing half-written for the next frame.
  assert.throws(() =>
    encodeFrameInto({ t: 1, k: new Uint32Array(3) }, () => {
      throw new RangeError("no room");
    }), /no room/);
  const next = { t: 2, v: new Float32Array([1, 2]) };
  assert.deepEqual(encodeFrameInto(next, (n) => new Uint8Array(n)), encodeFrame(next).length);
  assert.throws(
    () => encodeFrameInto(next, () => new Uint8Array(4)),
    /reserve\(\d+\) returned 4 bytes/,
  );
});

/**
 * Frames of varied sizes: mid-sized ones that fill the initial buffer with a frame left over
 * (so it is moved to the front), then some larger than the buffer (so it grows), then more.
 */
function mixedMessages(): Message[] {
  const msgs: Message[] = [];
  const mid = Array.from({ length: 40 }, (_, i) => [12_345, 3, 20_000, 777, 30_001][i % 5]);
  const large = [0, 1, 3, 100, 16_000, 70_000, 5, 300_000, 2, 64_000, 1, 1_000_000, 7, 10];
  [...mid, ...large, ...mid].forEach((n, i) => {
    msgs.push({ t: 1 + (i % 5), i, k: new Uint32Array(n % 1000).fill(i), v: new Float32Array(n) });
    (msgs[msgs.length - 1].v as Float32Array).fill(i + 0.5);
  });
  return msgs;
}

/** A deep copy of a decoded message whose typed arrays own exactly their elements. */
function copyOut<T>(value: T): T {
  if (ArrayBuffer.isView(value)) return (value as unknown as Uint8Array).slice() as T;
  if (Array.isArray(value)) return value.map(copyOut) as T;
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copyOut(v)])) as T;
  }
  return value;
}

/**
 * Feeds `bytes` to a reusing decoder through space()/commit() in reads of the given sizes (as
 * a socket would) and returns the messages, copied out at once (what a handler must do).
 */
function receiveReusing(bytes: Uint8Array, reads: number[]): Message[] {
  const decoder = new FrameDecoder(1 << 24, { reuse: true });
  const out: Message[] = [];
  let at = 0, r = 0;
  while (at < bytes.length) {
    const space = decoder.space(16);
    const n = Math.min(space.length, reads[r++ % reads.length], bytes.length - at);
    space.set(bytes.subarray(at, at + n));
    decoder.commit(n);
    at += n;
    for (let body = decoder.next(); body !== null; body = decoder.next()) {
      assert.equal(body.byteOffset % 4, 0, "bodies stay 4-byte aligned");
      out.push(copyOut(decodeMessage(body)));
    }
  }
  assert.equal(decoder.bufferedBytes, 0);
  return out;
}

Deno.test("a reusing decoder delivers split and merged frames like a fresh one", () => {
  const msgs = mixedMessages();
  const bytes = concat(msgs.map(encodeFrame));
  for (const reads of [[bytes.length], [65_536], [1, 7, 4096, 65_536, 3], [100_003]]) {
    assert.deepEqual(receiveReusing(bytes, reads), msgs, `reads ${reads}`);
  }
  // And via push(), with cuts at every position of a few frames.
  const small = concat(sampleMessages().map(encodeFrame));
  for (let cut = 0; cut <= small.length; cut++) {
    const decoder = new FrameDecoder(1 << 20, { reuse: true });
    const out: Message[] = [];
    for (const part of [small.subarray(0, cut), small.subarray(cut)]) {
      decoder.push(part);
      for (let body = decoder.next(); body !== null; body = decoder.next()) {
        out.push(copyOut(decodeMessage(body)));
      }
    }
    assert.deepEqual(out, sampleMessages(), `split at ${cut}`);
  }
});

Deno.test("a reusing decoder receives into one buffer; a body kept past space() is invalid", () => {
  const decoder = new FrameDecoder(1 << 24, { reuse: true });
  const receive = (msg: Message) => {
    const frame = encodeFrame(msg);
    const space = decoder.space(frame.length);
    space.set(frame);
    decoder.commit(frame.length);
    return decodeMessage(decoder.next()!) as unknown as { v: Float32Array };
  };
  const first = receive({ t: 1, v: new Float32Array(1000).fill(1) });
  assert.equal(first.v[0], 1, "valid until the next space()");
  const buffer = first.v.buffer;
  for (let i = 0; i < 100; i++) {
    const msg = receive({ t: 1, v: new Float32Array(1000).fill(i + 2) });
    assert.equal(msg.v.buffer, buffer, "the same receive buffer every time");
    assert.equal(msg.v[999], i + 2);
  }
  // The documented rule: `first` was valid only until the next space(); its memory now holds
  // a later message. (A Connection hands every message to its handler before reading on.)
  assert.equal(first.v[0], 101);
  assert.equal(decoder.bufferBytes, 256 * 1024);
});

Deno.test("a reusing decoder grows for a large frame and gives up a huge buffer afterwards", () => {
  const decoder = new FrameDecoder(1 << 28, { reuse: true });
  const feed = (msg: Message) => {
    const frame = encodeFrame(msg);
    for (let at = 0; at < frame.length;) {
      const space = decoder.space(65_536);
      const n = Math.min(space.length, 65_536, frame.length - at);
      space.set(frame.subarray(at, at + n));
      decoder.commit(n);
      at += n;
    }
    return copyOut(decodeMessage(decoder.next()!)) as unknown as { v: Float32Array };
  };
  const big = feed({ t: 1, v: new Float32Array(2_000_000).fill(2) }); // 8 MB: kept
  assert.equal(big.v[1_999_999], 2);
  const size = decoder.bufferBytes;
  assert.ok(size >= 8_000_000);
  for (let i = 0; i < 3; i++) assert.equal(feed({ t: 1, v: new Float32Array(10) }).v.length, 10);
  assert.equal(decoder.bufferBytes, size, "a buffer up to the retain limit is kept");
  const huge = feed({ t: 1, v: new Float32Array(RECEIVE_BUFFER_BYTES_RETAIN / 4 + 1).fill(3) });
  assert.equal(huge.v[10], 3);
  assert.ok(decoder.bufferBytes > RECEIVE_BUFFER_BYTES_RETAIN);
  assert.equal(feed({ t: 1, v: new Float32Array(10).fill(4) }).v[9], 4);
  assert.ok(decoder.bufferBytes <= 1 << 20, "a huge buffer is given up once empty");
});

Deno.test("the default decoder never reuses: bodies stay valid", () => {
  const decoder = new FrameDecoder(1 << 24);
  assert.equal(decoder.reuse, false);
  decoder.push(encodeFrame({ t: 1, v: new Float32Array(100_000).fill(1) }));
  const first = decodeMessage(decoder.next()!) as unknown as { v: Float32Array };
  for (let i = 0; i < 20; i++) {
    decoder.push(encodeFrame({ t: 1, v: new Float32Array(100_000).fill(i) }));
    decoder.next();
  }
  assert.ok(first.v.every((x) => x === 1));
});

// --- shared-memory payloads -------------------------------------------------------------------

/** Where in `frame` the `length` floats of `values` start (their bytes, found by search). */
function payloadAt(frame: Uint8Array, values: Float32Array): number {
  const want = new Uint8Array(values.slice().buffer);
  outer: for (let at = 0; at + want.length <= frame.length; at++) {
    for (let i = 0; i < want.length; i++) if (frame[at + i] !== want[i]) continue outer;
    return at;
  }
  return -1;
}

Deno.test("a shared-memory payload lands at its source's address modulo 8 and decodes intact", () => {
  const slab = new Float32Array(new SharedArrayBuffer(4 * 70_000));
  for (let i = 0; i < slab.length; i++) slab[i] = i + 0.5;
  let checked = 0;
  // Payloads of 1-, 3- and 5-byte length heads; the arrays before them shift where it starts.
  for (const length of [3, 1000, 65_000]) {
    for (const from of [0, 1, 2, 3]) {
      for (const before of [0, 1, 2, 3, 5]) {
        const values = slab.subarray(from, from + length);
        const msg = { t: 3, job: 1, keys: new Uint32Array(before).fill(7), values, clock: 0 };
        const frame = encodeFrame(msg);
        assert.equal(frame.byteOffset, 0);
        const at = payloadAt(frame, values);
        assert.ok(at > 0, `${length} ${from} ${before}`);
        // 8-byte steps of the slab: the same residue modulo 8 in the frame (a fast copy).
        assert.equal(at % 8, values.byteOffset % 8, `${length} ${from} ${before}`);
        assert.equal((at - FRAME_HEADER_BYTES) % 4, 0, "and a multiple of 4 in the body");
        const got = decodeSplit(frame, [])[0];
        assert.deepEqual([...(got.keys as Uint32Array)], new Array(before).fill(7));
        assert.deepEqual(got.values, values.slice(), `${length} ${from} ${before}`);
        // Written at an offset that breaks the residue: copied through the bounce buffer.
        const out = new Uint8Array(frame.length + 4).fill(0xee);
        encodeFrameInto(msg, (n) => out.subarray(4, 4 + n));
        assert.deepEqual(out.subarray(4), frame);
        checked++;
      }
    }
  }
  assert.equal(checked, 60);
});
