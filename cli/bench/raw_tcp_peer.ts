/**
 * The far end of the raw-TCP baselines of `lapse bench localize`, run in a worker thread:
 * TCP and nothing else, so the cluster's figures can be put next to what loopback TCP does.
 *
 * Protocol with the creating thread: it posts `{ mode, bytes }`; this worker listens on a random
 * loopback port, posts `{ port }` and serves one connection:
 * - `sink`: reads `bytes` bytes, then answers one byte;
 * - `echo`: echoes every `bytes`-byte message;
 * - `reply`: answers every 16-byte request with `bytes` bytes.
 *
 * @module
 */
/// <reference lib="deno.worker" />

/** What the creating thread posts to start the peer. */
export interface RawPeerRequest {
  mode: "sink" | "echo" | "reply";
  bytes: number;
}

async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<boolean> {
  let got = 0;
  while (got < buf.length) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

async function writeAll(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) off += await conn.write(buf.subarray(off));
}

async function serve({ mode, bytes }: RawPeerRequest): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  self.postMessage({ port: listener.addr.port });
  const conn = await listener.accept();
  listener.close();
  conn.setNoDelay(true);
  try {
    if (mode === "sink") {
      const buf = new Uint8Array(1 << 20);
      let got = 0;
      while (got < bytes) {
        const n = await conn.read(buf);
        if (n === null) break;
        got += n;
      }
      await writeAll(conn, new Uint8Array([1]));
    } else if (mode === "reply") {
      const req = new Uint8Array(16), out = new Uint8Array(bytes).fill(7);
      while (await readFull(conn, req)) await writeAll(conn, out);
    } else {
      const buf = new Uint8Array(bytes);
      while (await readFull(conn, buf)) await writeAll(conn, buf);
    }
  } finally {
    conn.close();
    self.close();
  }
}

self.onmessage = (e: MessageEvent<RawPeerRequest>) => {
  serve(e.data).catch((err) => {
    throw err;
  });
};
