/**
 * Raw loopback TCP baselines (bandwidth, round trips, request/reply) against a peer in a
 * worker thread (raw_tcp_peer.ts), both sides reusing their buffers.
 *
 * @module
 */
import { writeAll } from "../../server/handshake.ts";
import type { RawPeerRequest } from "./raw_tcp_peer.ts";

/**
 * A loopback peer in a worker thread: `sink` reads `bytes` then answers one byte; `echo` echoes
 * `bytes`-byte messages; `reply` answers every 16-byte request with `bytes` bytes.
 */
async function rawPeer(
  mode: "sink" | "echo" | "reply",
  bytes: number,
): Promise<{ conn: Deno.Conn; worker: Worker }> {
  const worker = new Worker(new URL("./raw_tcp_peer.ts", import.meta.url), { type: "module" });
  const port = await new Promise<number>((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data.port);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`raw TCP peer: ${e.message}`));
    };
    worker.postMessage({ mode, bytes } satisfies RawPeerRequest);
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return { conn, worker };
}

async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) throw new Error("raw TCP peer closed early");
    got += n;
  }
}

/** MB/s (decimal) of streaming `mib` MiB in 1 MiB writes to a sink in a worker thread. */
export async function rawTcpBandwidth(mib: number): Promise<number> {
  const chunk = new Uint8Array(1 << 20).fill(7);
  const total = mib * chunk.length;
  const { conn, worker } = await rawPeer("sink", total);
  try {
    const t0 = performance.now();
    for (let i = 0; i < mib; i++) await writeAll(conn, chunk);
    await readFull(conn, new Uint8Array(1));
    const s = (performance.now() - t0) / 1000;
    return total / s / 1e6;
  } finally {
    conn.close();
    worker.terminate();
  }
}

/**
 * Times (ms) of request/answer exchanges with a peer in a worker thread, both sides reusing
 * their buffers: `echo` answers every `bytes`-byte request with the same bytes (a round trip);
 * `reply` answers a 16-byte request with `bytes` bytes (the shape of a batched pull, with
 * nothing but TCP in it).
 */
async function rawTcpExchange(
  mode: "echo" | "reply",
  bytes: number,
  reps: number,
  warmup: number,
): Promise<number[]> {
  const { conn, worker } = await rawPeer(mode, bytes);
  const req = new Uint8Array(mode === "echo" ? bytes : 16), back = new Uint8Array(bytes);
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + reps; i++) {
      const t0 = performance.now();
      await writeAll(conn, req);
      await readFull(conn, back);
      if (i >= warmup) times.push(performance.now() - t0);
    }
    return times;
  } finally {
    conn.close();
    worker.terminate();
  }
}

/** Round-trip times (ms) of `bytes`-byte ping-pongs with an echo in a worker thread. */
export function rawTcpRtt(reps: number, bytes = 64, warmup = 50): Promise<number[]> {
  return rawTcpExchange("echo", bytes, reps, warmup);
}

/** Times (ms) of 16-byte requests answered with `bytes` bytes. */
export function rawTcpRequestReply(bytes: number, reps: number, warmup = 5): Promise<number[]> {
  return rawTcpExchange("reply", bytes, reps, warmup);
}
