/**
 * Local pull + push of one key through the worker API ({@linkcode WorkerPs}, mode lapse, key
 * local) against a plain `Float32Array` loop doing the same copy + add (DESIGN.md section 9:
 * within 2x). Run: `deno bench --allow-all bench/store_bench.ts`.
 *
 * Per group (dim 10, dim 100): the plain loop is the baseline; `deno bench` prints how many
 * times slower each other case is. Cases:
 * - `pullIfLocal+pushIfLocal`: the one-key calls of a localized hot loop (tasks/mf.ts);
 * - `pull+push (1-key batch)`: the batched calls with a one-key `Uint32Array`;
 * - `acquire+release, in place`: the zero-copy path of tasks/mf.ts (one lock pair, not two);
 * - `Table.pullLocal+pushLocal`: the store alone, without the worker API.
 *
 * Group `batch 100 keys` does the same for 100 keys per call (dim 10).
 *
 * @module
 */
import { Table } from "../server/store.ts";
import { WorkerPs } from "../client/worker_api.ts";

const KEYS = 1000;

function setup(dim: number) {
  const table = Table.create(0, { name: "T", keys: KEYS, dim }, KEYS);
  const init = new Float32Array(dim).fill(0.5);
  for (let k = 0; k < KEYS; k++) table.insert(k, init, 0);
  const ps = new WorkerPs([table.shared], "lapse", () => {});
  // The plain baseline: the same values in a flat array (slot = key here).
  const plain = new Float32Array(KEYS * dim).fill(0.5);
  const out = new Float32Array(dim);
  const delta = new Float32Array(dim).fill(1e-7);
  return { table, ps, plain, out, delta };
}

for (const dim of [10, 100]) {
  const { table, ps, plain, out, delta } = setup(dim);
  const group = `local pull+push, 1 key, dim ${dim}`;
  let key = 0;
  const keys1 = new Uint32Array(1);

  Deno.bench({
    name: `plain Float32Array loop (dim ${dim})`,
    group,
    baseline: true,
    fn() {
      key = (key + 7) % KEYS;
      const base = key * dim;
      for (let i = 0; i < dim; i++) out[i] = plain[base + i];
      for (let i = 0; i < dim; i++) plain[base + i] += delta[i];
    },
  });

  Deno.bench({
    name: `WorkerPs pullIfLocal+pushIfLocal (dim ${dim})`,
    group,
    fn() {
      key = (key + 7) % KEYS;
      if (!ps.pullIfLocal(0, key, out, 0)) throw new Error("not local");
      if (!ps.pushIfLocal(0, key, delta, 0)) throw new Error("not local");
    },
  });

  Deno.bench({
    name: `WorkerPs pull+push, 1-key batch (dim ${dim})`,
    group,
    fn() {
      key = (key + 7) % KEYS;
      keys1[0] = key;
      if (ps.pull(0, keys1, out) !== undefined) throw new Error("not local");
      if (ps.push(0, keys1, delta) !== undefined) throw new Error("not local");
    },
  });

  Deno.bench({
    name: `WorkerPs acquire+release, in place (dim ${dim})`,
    group,
    fn() {
      key = (key + 7) % KEYS;
      const at = ps.acquire(0, key);
      if (at < 0) throw new Error("not local");
      const v = ps.values(0);
      for (let i = 0; i < dim; i++) out[i] = v[at + i];
      for (let i = 0; i < dim; i++) v[at + i] += delta[i];
      ps.release(0, key);
    },
  });

  Deno.bench({
    name: `Table.pullLocal+pushLocal (dim ${dim})`,
    group,
    fn() {
      key = (key + 7) % KEYS;
      table.pullLocal(key, out, 0);
      table.pushLocal(key, delta, 0);
    },
  });
}

{
  const dim = 10, n = 100;
  const { ps, plain } = setup(dim);
  const group = `local pull+push, batch of ${n} keys, dim ${dim}`;
  const keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) keys[i] = (i * 7) % KEYS;
  const out = new Float32Array(n * dim);
  const deltas = new Float32Array(n * dim).fill(1e-7);
  Deno.bench({
    name: `plain Float32Array loop (${n} keys)`,
    group,
    baseline: true,
    fn() {
      for (let j = 0; j < n; j++) {
        const base = keys[j] * dim, o = j * dim;
        for (let i = 0; i < dim; i++) out[o + i] = plain[base + i];
      }
      for (let j = 0; j < n; j++) {
        const base = keys[j] * dim, o = j * dim;
        for (let i = 0; i < dim; i++) plain[base + i] += deltas[o + i];
      }
    },
  });
  Deno.bench({
    name: `WorkerPs pull+push (${n} keys)`,
    group,
    fn() {
      if (ps.pull(0, keys, out) !== undefined) throw new Error("not local");
      if (ps.push(0, keys, deltas) !== undefined) throw new Error("not local");
    },
  });
}
