/** The buffer pool shared by worker threads and the server thread (server/buffer_pool.ts). */
import assert from "node:assert/strict";
import {
  BufferPool,
  POOL_BUFFER_BYTES_MIN,
  POOL_BUFFERS_MAX,
  POOL_BYTES_MAX,
} from "../../server/buffer_pool.ts";

const KIB = 1024;

Deno.test("take returns the smallest kept buffer that is large enough", () => {
  const pool = new BufferPool();
  const a = new ArrayBuffer(256 * KIB), b = new ArrayBuffer(128 * KIB);
  pool.give(a);
  pool.give(b);
  assert.equal(pool.size, 2);
  assert.equal(pool.take(100 * KIB), b);
  assert.equal(pool.take(300 * KIB), null);
  assert.equal(pool.take(200 * KIB), a);
  assert.equal(pool.size, 0);
  assert.equal(pool.bytes, 0);
});

Deno.test("small, shared, resizable, detached and duplicate buffers are not kept", () => {
  const pool = new BufferPool();
  pool.give(new ArrayBuffer(POOL_BUFFER_BYTES_MIN - 1));
  pool.give(new SharedArrayBuffer(POOL_BUFFER_BYTES_MIN));
  pool.give(new ArrayBuffer(POOL_BUFFER_BYTES_MIN, { maxByteLength: 2 * POOL_BUFFER_BYTES_MIN }));
  const detached = new ArrayBuffer(POOL_BUFFER_BYTES_MIN);
  structuredClone(detached, { transfer: [detached] });
  pool.give(detached);
  assert.equal(pool.size, 0);
  const ok = new ArrayBuffer(POOL_BUFFER_BYTES_MIN);
  pool.give(ok);
  pool.give(ok);
  assert.equal(pool.size, 1, "a buffer is never handed out twice");
  // Requests below the minimum are allocated fresh, not served from the pool.
  assert.equal(pool.take(POOL_BUFFER_BYTES_MIN - 1), null);
  assert.equal(pool.take(POOL_BUFFER_BYTES_MIN), ok);
});

Deno.test("over the limits the smallest buffers go first", () => {
  const pool = new BufferPool();
  const sizes = Array.from({ length: POOL_BUFFERS_MAX + 2 }, (_, i) => (i + 1) * 64 * KIB);
  for (const n of sizes) pool.give(new ArrayBuffer(n));
  assert.equal(pool.size, POOL_BUFFERS_MAX);
  assert.equal(pool.take(64 * KIB)!.byteLength, 3 * 64 * KIB);
  const big = new ArrayBuffer(POOL_BYTES_MAX);
  pool.give(big);
  assert.equal(pool.size, 1, "the byte limit drops the others");
  assert.equal(pool.bytes, POOL_BYTES_MAX);
});
