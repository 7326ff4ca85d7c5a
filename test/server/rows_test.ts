/** Copying rows in runs of consecutive positions (server/rows.ts). */
import assert from "node:assert/strict";
import { copyFloats, gatherRows, scatterRows } from "../../server/rows.ts";

/** The per-row loop the run copies replace. */
function naive(src: Float32Array, dst: Float32Array, pos: number[], dim: number, scatter: boolean) {
  pos.forEach((p, j) => {
    for (let i = 0; i < dim; i++) {
      if (scatter) dst[p * dim + i] = src[j * dim + i];
      else dst[j * dim + i] = src[p * dim + i];
    }
  });
}

Deno.test("scatter and gather equal the per-row loop, for runs, gaps and disorder", () => {
  const dim = 3, rows = 12;
  const src = Float32Array.from({ length: rows * dim }, (_, i) => i + 1);
  for (const pos of [[0, 1, 2, 3], [5, 6, 0, 1, 9], [11, 3, 4, 5, 2], [7], []]) {
    for (const scatter of [true, false]) {
      const want = new Float32Array(rows * dim), got = new Float32Array(rows * dim);
      naive(src, want, pos, dim, scatter);
      (scatter ? scatterRows : gatherRows)(src, got, Uint32Array.from(pos), 0, pos.length, dim);
      assert.deepEqual(got, want, `${scatter ? "scatter" : "gather"} ${pos}`);
    }
  }
});

Deno.test("a sub-range of entries copies only those", () => {
  const dst = new Float32Array(8);
  scatterRows(Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8), dst, Uint32Array.of(0, 1, 2, 3), 1, 3, 2);
  assert.deepEqual(Array.from(dst), [0, 0, 3, 4, 5, 6, 0, 0]);
});

Deno.test("copyFloats: into and out of shared memory at offsets that differ modulo 8", () => {
  const n = 40_000; // several pieces of the bounce buffer
  const plain = Float32Array.from({ length: n + 2 }, (_, i) => i + 0.25);
  const shared = new Float32Array(new SharedArrayBuffer(4 * (n + 2)));
  for (const [from, at] of [[0, 0], [1, 0], [0, 1], [1, 1], [2, 1]]) {
    shared.fill(-1);
    copyFloats(plain.subarray(from, from + n), shared, at);
    assert.equal(shared[at - 1] ?? -1, -1, "nothing before");
    assert.ok(shared.subarray(at, at + n).every((x, i) => x === i + from + 0.25), `${from} ${at}`);
    const back = new Float32Array(n + 2).fill(-1);
    copyFloats(shared.subarray(at, at + n), back, from);
    assert.ok(
      back.subarray(from, from + n).every((x, i) => x === i + from + 0.25),
      `${from} ${at}`,
    );
    assert.equal(back[from + n] ?? -1, -1, "nothing after");
  }
});
