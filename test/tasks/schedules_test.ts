import assert from "node:assert/strict";
import {
  checkSchedule,
  dsgdColBlock,
  dsgdPermutation,
  dsgdSchedule,
} from "../../tasks/schedules.ts";

Deno.test("dsgd: every subepoch gives the workers disjoint column blocks", () => {
  for (const n of [1, 2, 3, 4, 7, 16]) {
    for (let epoch = 0; epoch < 5; epoch++) {
      const perm = dsgdPermutation(42, epoch, n);
      for (let s = 0; s < n; s++) {
        const blocks = new Set<number>();
        for (let w = 0; w < n; w++) blocks.add(dsgdColBlock(perm, w, s));
        assert.equal(blocks.size, n, `n=${n} epoch=${epoch} subepoch=${s}`);
      }
      assert.equal(checkSchedule(dsgdSchedule(42, epoch, n), n), undefined);
    }
  }
});

Deno.test("dsgd: every worker visits every block exactly once per epoch", () => {
  for (const n of [2, 5, 8]) {
    const sched = dsgdSchedule(3, 1, n);
    for (let w = 0; w < n; w++) {
      const seen: number[] = [];
      for (let s = 0; s < n; s++) seen.push(sched[s * n + w]);
      assert.deepEqual(seen.sort((a, b) => a - b), [...Array(n).keys()], `worker ${w}`);
    }
  }
});

Deno.test("dsgd: the permutation changes across epochs, is shared by seed", () => {
  const n = 8;
  const perms = new Set<string>();
  for (let e = 0; e < 10; e++) perms.add(dsgdPermutation(1, e, n).join(","));
  assert.ok(perms.size >= 8, `only ${perms.size} distinct permutations in 10 epochs`);
  assert.deepEqual(dsgdPermutation(1, 4, n), dsgdPermutation(1, 4, n));
  assert.notDeepEqual(dsgdPermutation(1, 4, n), dsgdPermutation(2, 4, n));
  for (let e = 0; e < 10; e++) {
    assert.deepEqual([...dsgdPermutation(1, e, n)].sort(), [...Array(n).keys()]);
  }
});

Deno.test("checkSchedule rejects invalid schedules", () => {
  // Two workers on block 0 in subepoch 0.
  assert.match(checkSchedule(Int32Array.of(0, 0, 1, 1), 2)!, /given to two workers/);
  assert.match(checkSchedule(Int32Array.of(0, 1, 0, 1), 2)!, /visited twice/);
  assert.match(checkSchedule(Int32Array.of(0, 2, 1, 0), 2)!, /outside/);
  assert.match(checkSchedule(Int32Array.of(0, 1), 2)!, /expected 4/);
  assert.equal(checkSchedule(Int32Array.of(0, 1, 1, 0), 2), undefined);
});
