import assert from "node:assert/strict";
import { initValue, Table } from "../../server/store.ts";

Deno.test("table: insert, pull, push, remove; slots are reused", () => {
  const t = Table.create(0, { name: "W", keys: 10, dim: 3 }, 2);
  const v = Float32Array.of(1, 2, 3);
  t.insert(4, v, 0);
  assert.equal(t.isLocal(4), true);
  assert.equal(t.isLocal(5), false);
  const out = new Float32Array(3);
  assert.equal(t.pullLocal(4, out, 0), true);
  assert.deepEqual([...out], [1, 2, 3]);
  assert.equal(t.pushLocal(4, Float32Array.of(1, 1, 1), 0), true);
  assert.equal(t.pullLocal(5, out, 0), false, "a key that is not here is not pulled");
  assert.equal(t.pushLocal(5, out, 0), false);
  const back = new Float32Array(3);
  t.remove(4, back, 0);
  assert.deepEqual([...back], [2, 3, 4]);
  assert.equal(t.isLocal(4), false);
  assert.equal(t.localCount, 0);
  assert.throws(() => t.remove(4, back, 0), /not local/);
  t.insert(7, v, 0);
  assert.throws(() => t.insert(7, v, 0), /is local/);
  assert.throws(() => t.pullLocal(10, out, 0), /Key 10 is out of range for table "W" \(0 \.\. 9\)/);
  assert.throws(() => t.isLocal(-1), /Key -1 is out of range/);
});

Deno.test("table: grows past its capacity and keeps every value", () => {
  const t = Table.create(0, { name: "H", keys: 5000, dim: 4 }, 1);
  const v = new Float32Array(4);
  for (let k = 0; k < 5000; k++) {
    v.fill(k);
    t.insert(k, v, 0);
  }
  const out = new Float32Array(4);
  for (let k = 0; k < 5000; k += 97) {
    assert.equal(t.pullLocal(k, out, 0), true);
    assert.deepEqual([...out], [k, k, k, k]);
  }
  assert.equal(t.localCount, 5000);
});

Deno.test("table: bad shapes are RangeErrors naming the table", () => {
  assert.throws(() => Table.create(0, { name: "X", keys: 0, dim: 1 }, 1), /Table "X" has 0 keys/);
  assert.throws(() => Table.create(0, { name: "X", keys: 10, dim: 0 }, 1), /dim 0/);
  assert.throws(
    () => Table.create(0, { name: "X", keys: 2 ** 30, dim: 1024 }, 1),
    /more than the limit/,
  );
});

Deno.test("initValue is deterministic per (seed, table, key) and honours the spec", () => {
  const a = new Float32Array(8), b = new Float32Array(8), c = new Float32Array(8);
  initValue({ kind: "uniform", scale: 0.5 }, 1, 0, 42, 8, a, 0);
  initValue({ kind: "uniform", scale: 0.5 }, 1, 0, 42, 8, b, 0);
  initValue({ kind: "uniform", scale: 0.5 }, 1, 0, 43, 8, c, 0);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  for (const x of a) assert.ok(Math.abs(x) <= 0.5);
  initValue({ kind: "constant", value: 3 }, 1, 0, 1, 8, a, 0);
  assert.deepEqual([...a], new Array(8).fill(3));
  initValue({ kind: "zero" }, 1, 0, 1, 8, a, 0);
  assert.deepEqual([...a], new Array(8).fill(0));
});

Deno.test("table: worker threads update shared values while the server thread moves keys", async () => {
  // Two real worker threads push +1 and pull under the key locks while this (server) thread
  // removes and re-inserts keys and grows the slab. Afterwards every key's value equals the
  // pushes that reported success: nothing lost, nothing torn, nothing applied twice.
  // Half the keys arrive during the run, so the slab grows under the workers' feet.
  const keys = 2048, dim = 16, rounds = 400_000;
  const t = Table.create(0, { name: "C", keys, dim }, 64);
  const zero = new Float32Array(dim);
  for (let k = 0; k < keys / 2; k++) t.insert(k, zero, 0);
  const url = new URL("./fixtures/store_worker.ts", import.meta.url).href;
  const workers = [0, 1].map(() => new Worker(url, { type: "module" }));
  const results = workers.map((w) =>
    new Promise<{ applied: Int32Array; torn: number }>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => reject(e);
    })
  );
  for (const w of workers) w.postMessage({ shared: t.shared, rounds, keys });
  // Move keys out and back in (with their values) while the workers run.
  const parked = new Float32Array(dim);
  let moves = 0;
  const deadline = performance.now() + 20_000;
  let done = false;
  Promise.all(results).then(() => done = true);
  let arrived = keys / 2;
  while (!done && performance.now() < deadline) {
    if (arrived < keys) t.insert(arrived++, zero, 0);
    const k = moves % arrived;
    t.remove(k, parked, 0);
    t.insert(k, parked, 0);
    moves++;
    if (moves % 256 === 0) await new Promise((r) => setTimeout(r, 0));
  }
  const [a, b] = await Promise.all(results);
  for (const w of workers) w.terminate();
  assert.ok(moves > 0, "the server thread moved keys during the run");
  assert.ok(arrived > keys / 2 + 64, "keys arrived (and the slab grew) during the run");
  assert.equal(a.torn + b.torn, 0, "no pull saw a half-updated value");
  const out = new Float32Array(dim);
  for (let k = 0; k < keys; k++) {
    assert.equal(t.pullLocal(k, out, 0), true);
    for (let i = 0; i < dim; i++) assert.equal(out[i], a.applied[k] + b.applied[k], `key ${k}`);
  }
});

Deno.test("table: a thread waiting for a busy key lock sleeps on it and is woken by unlock", async () => {
  const t = Table.create(0, { name: "L", keys: 8, dim: 4 }, 8);
  t.insert(5, new Float32Array(4), 0);
  t.lock(5);
  const url = new URL("./fixtures/store_worker.ts", import.meta.url).href;
  const w = new Worker(url, { type: "module" });
  try {
    const done = new Promise<unknown>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => reject(e);
    });
    w.postMessage({ shared: t.shared, rounds: 0, keys: 8, lockOnce: 5 });
    // After its spin the worker marks the lock 2 ("a thread sleeps") and sleeps.
    const deadline = Date.now() + 30_000;
    while (Atomics.load(t.locks, 5) !== 2) {
      assert.ok(Date.now() < deadline, "the worker never marked the lock as slept on");
      await new Promise((r) => setTimeout(r, 5));
    }
    const out = new Float32Array(4);
    assert.equal(t.index[5] >= 0, true);
    copyOut(t, 5, out);
    assert.equal(out[0], 0, "the worker did not enter while the lock was held");
    t.unlock(5);
    assert.deepEqual(await done, { locked: true });
    assert.equal(Atomics.load(t.locks, 5), 0, "the worker's unlock freed the lock");
    assert.equal(t.pullLocal(5, out, 0), true);
    assert.equal(out[0], 1, "the worker added under the lock after the wake-up");
  } finally {
    w.terminate();
  }
});

/** Reads a key's value without its lock (the test holds it). */
function copyOut(t: Table, key: number, out: Float32Array): void {
  const at = t.index[key] * t.dim;
  out.set(t.values.subarray(at, at + t.dim));
}

Deno.test("initValue: floats limits the random part of a key, the rest starts at zero", () => {
  const all = new Float32Array(6), part = new Float32Array(6);
  initValue({ kind: "uniform", scale: 1 }, 3, 0, 9, 6, all, 0);
  initValue({ kind: "uniform", scale: 1, floats: 4 }, 3, 0, 9, 6, part.fill(7), 0);
  assert.deepEqual([...part.subarray(0, 4)], [...all.subarray(0, 4)]);
  assert.deepEqual([...part.subarray(4)], [0, 0]);
  assert.ok(all.subarray(4).some((x) => x !== 0));
});

Deno.test("table: pullRun copies local keys in order, in runs, and stops at the first absent", () => {
  for (const dim of [3, 100]) {
    const t = Table.create(0, { name: "R", keys: 20, dim }, 4);
    const v = new Float32Array(dim);
    // Keys 0..9 in slots 0..9 (consecutive), then 15 and 12 in slots out of key order.
    for (const k of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 12]) t.insert(k, v.fill(k), 0);
    const keys = Uint32Array.of(2, 3, 4, 12, 15, 9, 9, 0, 11, 5);
    const out = new Float32Array(keys.length * dim).fill(-1);
    // From position 1: keys 3, 4, 12, 15, 9, 9, 0 are local, 11 is not.
    assert.equal(t.pullRun(keys, 1, keys.length, out, dim), 7, `dim ${dim}`);
    for (let j = 0; j < 7; j++) {
      assert.deepEqual([...out.subarray((j + 1) * dim, (j + 2) * dim)], [...v.fill(keys[j + 1])]);
    }
    assert.equal(out[0], -1, "nothing before offset written");
    assert.equal(out[8 * dim], -1, "nothing for the absent key written");
    assert.equal(t.pullRun(keys, 8, keys.length, out, 0), 0, "starts at an absent key");
    assert.equal(t.pullRun(keys, 2, 2, out, 0), 0, "empty range");
    // A neighbour locked elsewhere (a worker's acquire) but outside the range is not touched.
    t.lock(4);
    const held = new Float32Array(dim);
    const done = t.pullRun(Uint32Array.of(3), 0, 1, held, 0);
    assert.equal(done, 1);
    t.unlock(4);
    assert.deepEqual([...t.locks].filter((l) => l !== 0), [], "every lock released");
    assert.throws(() => t.pullRun(Uint32Array.of(1, 20), 1, 2, out, 0), /Key 20 is out of range/);
    assert.throws(() => t.pullRun(Uint32Array.of(1, 20), 0, 2, out, 0), /Key 20 is out of range/);
    assert.deepEqual([...t.locks].filter((l) => l !== 0), [], "no lock left held by a throw");
    t.pushLocal(3, new Float32Array(dim).fill(1), 0);
    assert.equal(t.pullRun(Uint32Array.of(2, 3), 0, 2, out, 0), 2);
    assert.equal(out[dim], 4, "sees the latest push");
  }
});

Deno.test("table: pushRun adds rows to local keys in order and stops at the first absent", () => {
  for (const dim of [2, 100]) {
    const t = Table.create(0, { name: "P", keys: 20, dim }, 4);
    for (const k of [0, 1, 2, 3, 9, 5]) t.insert(k, new Float32Array(dim).fill(k), 0);
    const keys = Uint32Array.of(7, 1, 2, 3, 9, 5, 5, 0, 11, 2);
    const deltas = new Float32Array(keys.length * dim);
    for (let j = 0; j < keys.length; j++) deltas.fill(j, j * dim, (j + 1) * dim);
    // From position 1: keys 1, 2, 3, 9, 5, 5, 0 are local (5 twice), 11 is not.
    assert.equal(t.pushRun(keys, 1, keys.length, deltas, dim), 7, `dim ${dim}`);
    const out = new Float32Array(dim);
    const expect: Record<number, number> = {
      1: 1 + 1,
      2: 2 + 2,
      3: 3 + 3,
      9: 9 + 4,
      5: 5 + 5 + 6,
      0: 7,
    };
    for (const [k, x] of Object.entries(expect)) {
      assert.equal(t.pullLocal(Number(k), out, 0), true);
      assert.deepEqual([...out], new Array(dim).fill(x), `key ${k}, dim ${dim}`);
    }
    assert.equal(t.pushRun(keys, 0, 1, deltas, 0), 0, "starts at an absent key");
    assert.deepEqual([...t.locks].filter((l) => l !== 0), [], "every lock released");
  }
});

Deno.test("table: arrivals is odd exactly while an insert publishes a slot", () => {
  const t = Table.create(0, { name: "W", keys: 4, dim: 1 }, 4);
  const seen: number[] = [];
  // The key's lock is taken around the publication: look at the counter from inside it.
  const lock = t.lock;
  t.lock = (key) => {
    seen.push(Atomics.load(t.arrivals, 0));
    lock.call(t, key);
  };
  t.insert(2, Float32Array.of(1), 0);
  t.lock = lock;
  assert.deepEqual(seen, [1], "odd while the slot is published");
  assert.equal(Atomics.load(t.arrivals, 0), 2, "even once it is");
  t.remove(2, new Float32Array(1), 0);
  assert.equal(Atomics.load(t.arrivals, 0), 2, "a removal is no arrival");
  assert.equal(Table.attach(t.shared).arrivals[0], 2, "shared with the worker threads");
});

Deno.test("table: lockRunValues locks a run of consecutive slots and views its values", () => {
  const dim = 3;
  const t = Table.create(0, { name: "R", keys: 10, dim }, 10);
  const v = new Float32Array(dim);
  // Keys 2, 3, 4 in slots 0, 1, 2; then key 8 (slot 3), key 6 (slot 4).
  for (const k of [2, 3, 4, 8, 6]) t.insert(k, v.fill(k), 0);
  const keys = Uint32Array.of(9, 2, 3, 4, 6, 8);
  assert.equal(t.lockRunValues(keys, 0, keys.length), null, "key 9 is not here");
  assert.equal(t.locks[9], 0, "nothing stays locked");
  const run = t.lockRunValues(keys, 1, keys.length)!;
  assert.deepEqual([...run], [2, 2, 2, 3, 3, 3, 4, 4, 4], "keys 2, 3, 4 (key 6 is not next)");
  assert.ok(run.buffer === t.values.buffer, "a view of the slab, not a copy");
  assert.deepEqual([...keys.subarray(1, 4)].map((k) => t.locks[k]), [1, 1, 1]);
  t.unlockRun(keys, 1, 4);
  assert.deepEqual([...t.locks], new Array(10).fill(0));
  assert.deepEqual([...t.lockRunValues(keys, 1, 3)!], [2, 2, 2, 3, 3, 3], "stops at `end`");
  t.unlockRun(keys, 1, 3);
  assert.deepEqual([...t.lockRunValues(keys, 4, 6)!], [6, 6, 6], "slot 4 then slot 3: two runs");
  t.unlockRun(keys, 4, 5);
  assert.deepEqual([...t.locks], new Array(10).fill(0));
});

Deno.test("table: rows copied to addresses that differ from the slab modulo 8 arrive intact", () => {
  // Odd dims put every other row at another residue; out at an odd offset shifts them all.
  for (const dim of [81, 100, 257, 1000, 1001]) {
    const keys = 6;
    const t = Table.create(0, { name: "S", keys, dim }, keys);
    const v = new Float32Array(dim);
    for (let k = 0; k < keys; k++) t.insert(k, v.map((_, f) => 1000 * k + f), 0);
    for (const skew of [0, 1]) {
      const out = new Float32Array(keys * dim + 2).fill(-1);
      for (let k = 0; k < keys; k++) assert.ok(t.pullLocal(k, out, k * dim + skew));
      assert.equal(out[skew - 1] ?? -1, -1);
      assert.equal(out[keys * dim + skew], -1, "nothing after");
      for (let k = 0; k < keys; k++) {
        const row = out.subarray(k * dim + skew, (k + 1) * dim + skew);
        assert.ok(row.every((x, f) => x === 1000 * k + f), `dim ${dim} skew ${skew} key ${k}`);
      }
      const all = new Float32Array(keys * dim + 1);
      const ks = Uint32Array.from({ length: keys }, (_, k) => k);
      assert.equal(t.pullRun(ks, 0, keys, all, skew), keys);
      const got = all.subarray(skew, skew + keys * dim);
      assert.ok(got.every((x, i) => x === 1000 * Math.floor(i / dim) + (i % dim)), `run ${dim}`);
    }
  }
});
