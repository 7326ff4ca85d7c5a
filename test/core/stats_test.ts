import assert from "node:assert/strict";
import { topK } from "../../core/stats.ts";

Deno.test("topK: best first, ties keep the lower index first, k above n returns all", () => {
  const xs = [3, 9, 1, 7, 9, -2];
  assert.deepEqual(topK(xs.length, 3, (i) => xs[i]), [[1, 9], [4, 9], [3, 7]]);
  assert.deepEqual(topK(xs.length, 1, (i) => xs[i]), [[1, 9]]);
  assert.deepEqual(topK(3, 10, (i) => -i), [[0, -0], [1, -1], [2, -2]]);
  assert.deepEqual(topK(0, 5, () => 1), []);
  // Against a full sort on random scores.
  const ys = Array.from({ length: 500 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
  const want = ys.map((s, i) => [i, s] as [number, number]).sort((a, b) =>
    b[1] - a[1] || a[0] - b[0]
  );
  assert.deepEqual(topK(ys.length, 25, (i) => ys[i]), want.slice(0, 25));
});
