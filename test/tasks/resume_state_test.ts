import assert from "node:assert/strict";
import { decodeInts, encodeInts, resumeFrom } from "../../tasks/resume_state.ts";
import { Rng } from "../../core/rng.ts";
import { isUserError } from "../../core/errors.ts";

Deno.test("resume state: pools round-trip through base64; a wrong size or a non-string is refused", () => {
  for (const n of [0, 1, 2, 3, 1000, 40_000]) {
    const a = new Uint32Array(n);
    for (let i = 0; i < n; i++) a[i] = (i * 2654435761) >>> 0;
    const text = encodeInts(a);
    assert.equal(typeof text, "string");
    const b = new Uint32Array(n);
    assert.ok(decodeInts(text, b), `n=${n}`);
    assert.deepEqual(b, a);
    // Int32 views of the same bits (w2v's pools are Int32Array).
    const c = new Int32Array(n);
    assert.ok(decodeInts(text, c));
    assert.deepEqual(new Uint32Array(c.buffer), a);
  }
  const out = new Uint32Array(4).fill(7);
  assert.equal(decodeInts(encodeInts(new Uint32Array(5)), out), false);
  assert.equal(decodeInts(42, out), false);
  assert.equal(decodeInts(null, out), false);
  assert.equal(decodeInts("!!!!!!!!!!!!!!!!!!!!!!!!", out), false);
  assert.deepEqual([...out], [7, 7, 7, 7], "untouched when refused");
});

Deno.test("resume state: the generator's state continues the same sequence (Gaussian spare too)", () => {
  const a = new Rng(123);
  for (let i = 0; i < 10; i++) a.nextU32();
  a.nextGaussian(); // leaves a spare
  const saved = JSON.parse(JSON.stringify(a.getState()));
  const b = new Rng(0);
  b.setState(saved);
  for (let i = 0; i < 100; i++) {
    assert.equal(b.nextGaussian(), a.nextGaussian());
    assert.equal(b.nextU32(), a.nextU32());
  }
  assert.throws(() => b.setState([1, 2]), RangeError);
  assert.throws(() => b.setState({ state: 1 }), RangeError);
});

Deno.test("resume state: epoch and seed checked; the same worker of the same shape reuses its streams", () => {
  const job = { seed: 5, epochs: 10, worker: 1, workers: 2 };
  assert.deepEqual(resumeFrom("kge", { epoch: 3, seed: 5, worker: 1, workers: 2 }, job), {
    firstEpoch: 3,
    sameWorker: true,
  });
  // Re-homed on 4 workers: worker 3 gets old worker 1's state, but not its random streams.
  assert.equal(
    resumeFrom("kge", { epoch: 3, seed: 5, worker: 1, workers: 2 }, {
      ...job,
      worker: 3,
      workers: 4,
    })
      .sameWorker,
    false,
  );
  const refused = (state: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(() => resumeFrom("w2v", state, job), (e) => {
      assert.ok(isUserError(e), String(e));
      assert.match((e as Error).message, pattern);
      return true;
    });
  refused({ epoch: 3, seed: 6 }, /^w2v: the checkpoint's worker state .* \(seed 5\)/);
  refused({ epoch: "3", seed: 5 }, /does not fit this w2v job/);
  refused({ epoch: 10, seed: 5 }, /after epoch 9, the last one of a 10-epoch job.*model\.epochs/);
});
