/**
 * The wire path of a large pull reply: {@linkcode encodeFrame}, then {@linkcode FrameDecoder}
 * (the receive buffer filled in 64 KiB reads, as a socket does) and {@linkcode decodeMessage},
 * against a raw copy of the same bytes: a memcpy into a reused buffer (the baseline) and an
 * allocation + memcpy (encodeFrame and a default decoder allocate a fresh buffer per large
 * frame). The `reused` cases are what a `Connection` does: {@linkcode encodeFrameInto} a
 * pooled send buffer, and a decoder in reuse mode (one receive buffer for all frames).
 * Run: `deno bench --allow-all bench/wire_bench.ts`.
 *
 * Message: a `PULL_R` of 10,000 keys (`r`, `k`, `p` as Uint32Array, `v` as Float32Array of
 * `keys * dim` floats), for dim 100 (4 MB of values) and dim 10.
 *
 * @module
 */
import {
  decodeMessage,
  encodeFrame,
  encodeFrameInto,
  FRAME_BYTES_MAX_DEFAULT,
  FrameDecoder,
} from "../server/wire.ts";
import { Msg } from "../server/messages.ts";

const KEYS = 10_000;
const READ = 64 * 1024;

function pullReply(dim: number) {
  const r = new Uint32Array(KEYS).fill(7);
  const k = new Uint32Array(KEYS);
  const p = new Uint32Array(KEYS);
  for (let i = 0; i < KEYS; i++) k[i] = p[i] = i;
  const v = new Float32Array(KEYS * dim).fill(0.25);
  return {
    t: Msg.PULL_R,
    job: 1,
    table: 0,
    holder: 0,
    requests: r,
    keys: k,
    positions: p,
    values: v,
    clock: 0,
  };
}

/** Feeds `frame` to a decoder the way the connection's read loop does: 64 KiB reads. */
function receive(frame: Uint8Array, d = new FrameDecoder()): Uint8Array {
  let off = 0;
  let body: Uint8Array | null = null;
  while (body === null) {
    const space = d.space(READ);
    const n = Math.min(space.length, READ, frame.length - off);
    space.set(frame.subarray(off, off + n));
    d.commit(n);
    off += n;
    body = d.next();
  }
  return body;
}

for (const dim of [100, 10]) {
  const msg = pullReply(dim);
  const frame = encodeFrame(msg);
  const bytes = frame.length;
  const group = `pull reply, ${KEYS} keys x dim ${dim} (${(bytes / 1e6).toFixed(2)} MB frame)`;
  let sink = 0;

  const into = new Uint8Array(bytes);
  Deno.bench({
    name: `raw memcpy of ${bytes} bytes (reused buffer)`,
    group,
    baseline: true,
    fn() {
      into.set(frame);
      sink += into[bytes - 1];
    },
  });

  Deno.bench({
    name: `raw alloc + memcpy of ${bytes} bytes`,
    group,
    fn() {
      const copy = new Uint8Array(bytes);
      copy.set(frame);
      sink += copy[bytes - 1];
    },
  });

  Deno.bench({
    name: "encodeFrame",
    group,
    fn() {
      sink += encodeFrame(msg).length;
    },
  });

  Deno.bench({
    name: "FrameDecoder (64 KiB reads) + decodeMessage",
    group,
    fn() {
      const m = decodeMessage(receive(frame)) as Record<string, any>;
      sink += m.values.length;
    },
  });

  Deno.bench({
    name: "encodeFrame + FrameDecoder + decodeMessage",
    group,
    fn() {
      const m = decodeMessage(receive(encodeFrame(msg))) as Record<string, any>;
      sink += m.values.length;
    },
  });

  const send_buf = new Uint8Array(bytes);
  Deno.bench({
    name: "encodeFrameInto (reused buffer)",
    group,
    fn() {
      sink += encodeFrameInto(msg, () => send_buf);
    },
  });

  const reusing = new FrameDecoder(FRAME_BYTES_MAX_DEFAULT, { reuse: true });
  Deno.bench({
    name: "FrameDecoder, reused buffer (64 KiB reads) + decodeMessage",
    group,
    fn() {
      const m = decodeMessage(receive(frame, reusing)) as Record<string, any>;
      sink += m.values.length;
    },
  });

  Deno.bench({
    name: "encodeFrameInto + FrameDecoder + decodeMessage, buffers reused",
    group,
    fn() {
      const n = encodeFrameInto(msg, () => send_buf);
      const m = decodeMessage(receive(send_buf.subarray(0, n), reusing)) as Record<string, any>;
      sink += m.values.length;
    },
  });

  Deno.bench({
    name: "decodeMessage only (body already received)",
    group,
    fn() {
      const body = frame.subarray(4, 4 + new DataView(frame.buffer).getUint32(0, true));
      sink += (decodeMessage(body) as Record<string, any>).values.length;
    },
  });

  // Keep the results alive so nothing is optimised away.
  globalThis.addEventListener("unload", () => {
    if (sink === -1) console.log(sink);
  });
}
