import assert from "node:assert/strict";
import { task } from "../../tasks/pscheck.ts";

Deno.test("pscheck verdict: a healthy run passes, any inconsistency fails naming it", () => {
  const healthy = { mismatched_keys: 0, violations: 0, final_error: 0, untouched_max: 0 };
  assert.equal(task.verdict!(healthy), null);
  const bad = task.verdict!({ ...healthy, mismatched_keys: 2, final_error: -3 });
  assert.match(bad!, /pscheck failed: keys with a wrong final value 2, final pulls off by 3/);
  assert.match(task.verdict!({ ...healthy, violations: 1 })!, /consistency violations 1/);
});

Deno.test("pscheck summarize: a key whose final value differs from its pushes is mismatched", () => {
  const m = task.summarize({
    workers: 2,
    pushes_0: 4,
    seen_0: 4,
    pushes_1: 2,
    seen_1: 1,
    violations: 0,
    final_total: 12,
  });
  assert.equal(m.mismatched_keys, 1);
  assert.equal(m.keys_checked, 2);
  assert.equal(task.verdict!(m) !== null, true);
});
