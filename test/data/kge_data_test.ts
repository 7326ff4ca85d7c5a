import assert from "node:assert/strict";
import {
  assignRelations,
  evalSample,
  FilterIndex,
  kgDirSize,
  KgGenerator,
  readKgDir,
  type Triples,
} from "../../data/kge_data.ts";
import { kCore, type NamedGraph, splitTriples } from "../../data/wordnet.ts";

const WN_BODY = new URL("../../data/wn_body", import.meta.url).pathname;

async function withDir(files: Record<string, string>, fn: (dir: string) => void | Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "kge-data-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function rows(t: Triples): number[][] {
  return Array.from(t.heads, (h, i) => [h, t.rels[i], t.tails[i]]);
}

Deno.test("names reader: sorted dictionaries from train, ids of valid/test by name", async () => {
  await withDir({
    "train.txt": "b\tlikes\ta\nc\thates\tb\n\na\tlikes\tc\r\n",
    "valid.txt": "a\thates\tb\n",
    "test.txt": "c\tlikes\ta\n",
  }, (dir) => {
    const d = readKgDir(dir);
    assert.deepEqual(d.entityNames, ["a", "b", "c"]);
    assert.deepEqual(d.relationNames, ["hates", "likes"]);
    assert.deepEqual(rows(d.train), [[1, 1, 0], [2, 0, 1], [0, 1, 2]]);
    assert.deepEqual(rows(d.valid), [[0, 0, 1]]);
    assert.deepEqual(rows(d.test), [[2, 1, 0]]);
  });
});

Deno.test("names reader: an unknown entity in valid names the file and line", async () => {
  await withDir({ "train.txt": "a\tr\tb\n", "valid.txt": "a\tr\tb\nb\tr\tzzz\n" }, (dir) => {
    assert.throws(() => readKgDir(dir), /valid\.txt:2: unknown entity "zzz"/);
  });
});

Deno.test("names reader: a malformed line names the file and line", async () => {
  await withDir({ "train.txt": "a\tr\tb\na r b\n" }, (dir) => {
    assert.throws(() => readKgDir(dir), /train\.txt:2: expected 3 tab-separated fields/);
  });
});

Deno.test("reader: a missing directory or train file is a clear error", async () => {
  assert.throws(
    () => readKgDir("/nonexistent/kge"),
    /data directory "\/nonexistent\/kge" not found/,
  );
  await withDir({ "valid.txt": "a\tr\tb\n" }, (dir) => {
    assert.throws(() => readKgDir(dir), /no train\.txt or train\.tsv/);
  });
});

Deno.test("ids reader (.del): counts and names from the id files, range errors", async () => {
  await withDir({
    "train.del": "0\t0\t1\n2\t1\t0\n",
    "valid.del": "1\t0\t3\n",
    "entity_ids.del": "0\ta\n1\tb\n2\tc\n3\td\n",
    "relation_ids.del": "0\tr\n1\ts\n",
  }, (dir) => {
    const d = readKgDir(dir);
    assert.equal(d.entities, 4);
    assert.equal(d.relations, 2);
    assert.deepEqual(d.entityNames, ["a", "b", "c", "d"]);
    assert.deepEqual(rows(d.valid), [[1, 0, 3]]);
  });
  await withDir({ "train.del": "0\t0\t1\n", "test.del": "0\t0\t5\n" }, (dir) => {
    assert.throws(() => readKgDir(dir), /test\.del:1: unknown entity 5 \(2 entities in train\)/);
  });
  await withDir({ "train.del": "0\t0\tx\n" }, (dir) => {
    assert.throws(() => readKgDir(dir), /train\.del:1: ids must be integers/);
  });
});

Deno.test("the shipped wn_body graph loads; valid and test entities all occur in train", () => {
  const d = readKgDir(WN_BODY);
  assert.equal(d.entities, 1993);
  assert.equal(d.relations, 7);
  assert.equal(d.train.heads.length, 5078);
  assert.equal(d.valid.heads.length, 300);
  assert.equal(d.test.heads.length, 300);
});

Deno.test("generator: deterministic, parts add up to the whole, Zipf skew", () => {
  const cfg = {
    entities: 1000,
    relations: 20,
    triples: 20000,
    zipf_entities: 1,
    zipf_relations: 1,
    valid: 50,
    test: 60,
    seed: 5,
  };
  const a = new KgGenerator(cfg), b = new KgGenerator(cfg);
  const all = a.train();
  assert.deepEqual(all, b.train());
  assert.equal(all.heads.length, 20000);
  // Every n-th triple per relation: the parts are the whole.
  const parts = [0, 1, 2].map((w) => a.train(() => true, { w, n: 3 }));
  assert.equal(parts.reduce((s, p) => s + p.heads.length, 0), 20000);
  // Data clustering: each worker generates only its relations; together everything.
  const owner = assignRelations(a.counts, 3);
  const mine = [0, 1, 2].map((w) => a.train((r) => owner[r] === w));
  assert.equal(mine.reduce((s, p) => s + p.heads.length, 0), 20000);
  for (const m of mine) {
    assert.ok(m.heads.length > 20000 / 3 * 0.7, `unbalanced: ${m.heads.length}`);
  }
  // Skew: the most frequent entity is far above the mean (20 per entity for 40k slots).
  const freq = new Int32Array(1000);
  for (let i = 0; i < all.heads.length; i++) {
    freq[all.heads[i]]++;
    freq[all.tails[i]]++;
  }
  assert.ok(Math.max(...freq) > 500, `max frequency ${Math.max(...freq)}`);
  assert.equal(a.heldOut(1).heads.length, 50);
  assert.equal(a.heldOut(2).heads.length, 60);
  assert.notDeepEqual(rows(a.heldOut(1)).slice(0, 10), rows(a.heldOut(2)).slice(0, 10));
});

Deno.test("assignRelations: greedy by count, balanced", () => {
  const owner = assignRelations([100, 60, 50, 40, 10], 2);
  // 100 -> w0; 60 -> w1; 50 -> w1 (110); 40 -> w0 (140); 10 -> w1 (120).
  assert.deepEqual([...owner], [0, 1, 1, 0, 1]);
});

Deno.test("evalSample: everything under the cap, else evenly spaced", () => {
  const t: Triples = {
    heads: Uint32Array.from({ length: 10 }, (_, i) => i),
    rels: new Uint32Array(10),
    tails: new Uint32Array(10),
  };
  assert.equal(evalSample(t, 0), t);
  assert.deepEqual([...evalSample(t, 4).heads], [0, 2, 5, 7]);
});

Deno.test("FilterIndex: the known answers of each query, sorted", () => {
  const q: Triples = {
    heads: Uint32Array.of(0),
    rels: Uint32Array.of(1),
    tails: Uint32Array.of(2),
  };
  const known: Triples = {
    heads: Uint32Array.of(0, 0, 0, 3, 5, 0),
    rels: Uint32Array.of(1, 1, 0, 1, 1, 1),
    tails: Uint32Array.of(4, 2, 2, 2, 2, 1),
  };
  const f = new FilterIndex(q, 2, [known]);
  const list = (g: number) => [...f.answers.subarray(f.start[g], f.start[g + 1])];
  assert.deepEqual(list(f.tailGroup[0]), [1, 2, 4]);
  assert.deepEqual(list(f.headGroup[0]), [0, 3, 5]);
});

Deno.test("WordNet split: held-out triples keep their entities in train; k-core", () => {
  // A star plus a chain: a k=2 core drops the leaves.
  const g: NamedGraph = {
    entities: ["a", "b", "c", "d", "e"],
    relations: ["r", "s"],
    heads: Uint32Array.of(0, 1, 2, 0, 1, 2, 3),
    rels: Uint32Array.of(0, 0, 0, 1, 1, 1, 0),
    tails: Uint32Array.of(1, 2, 0, 2, 0, 1, 4),
  };
  const core = kCore(g, 2);
  assert.deepEqual(core.entities, ["a", "b", "c"]);
  assert.equal(core.heads.length, 6);
  const sp = splitTriples(core, 2, 2, 1);
  const inTrain = new Set<number>();
  for (const i of sp.train) inTrain.add(core.heads[i]).add(core.tails[i]);
  for (const i of [...sp.valid, ...sp.test]) {
    assert.ok(inTrain.has(core.heads[i]) && inTrain.has(core.tails[i]));
  }
  assert.equal(sp.train.length + sp.valid.length + sp.test.length, 6);
  assert.deepEqual(splitTriples(core, 2, 2, 1), sp);
});

Deno.test("lapse data wordnet's builder reproduces the shipped wn_body graph byte for byte", async () => {
  const { buildWordnetDir } = await import("../../data/wordnet.ts");
  await withDir({}, async (dir) => {
    const r = await buildWordnetDir(dir, {
      lexFiles: [8],
      minDegree: 2,
      valid: 300,
      test: 300,
      seed: 1,
    });
    assert.deepEqual([r.entities, r.relations, r.train, r.valid, r.test], [
      1993,
      7,
      5078,
      300,
      300,
    ]);
    for (const f of ["train.txt", "valid.txt", "test.txt"]) {
      assert.equal(
        await Deno.readTextFile(`${dir}/${f}`),
        await Deno.readTextFile(`${WN_BODY}/${f}`),
        f,
      );
    }
  });
});

Deno.test("kgDirSize: the sizes readKgDir gives, and its errors, without building the graph", async () => {
  const same = (dir: string, format?: "names" | "ids") => {
    const d = readKgDir(dir, format);
    assert.deepEqual(kgDirSize(dir, format), { entities: d.entities, relations: d.relations });
  };
  same(WN_BODY);
  // Blank and whitespace-only lines (one with tabs) are skipped; CRLF; no final newline.
  await withDir({
    "train.txt": "a\tr\tb\r\n\n \t \t \nb\ts\tc\n   \nc\tr\ta",
    "valid.txt": "a\ts\tc\n",
  }, (dir) => {
    same(dir);
    assert.deepEqual(kgDirSize(dir), { entities: 3, relations: 2 });
  });
  await withDir({ "train.del": "0\t0\t4\n2\t1\t3\n" }, (dir) => same(dir));
  // What readKgDir rejects, kgDirSize rejects with the same message.
  const cases: Record<string, string>[] = [
    { "train.txt": "a\tr\tb\na r b\n" }, // too few fields
    { "train.txt": "a\tr\tb\tc\n" }, // too many
    { "train.txt": "a\t\tb\n" }, // an empty field
    { "train.txt": "a\tr\tb\n", "test.txt": "a\tr\tz\n" }, // unknown entity
    { "train.txt": "a\tr\tb\n", "valid.txt": "a\tq\tb\n" }, // unknown relation
    { "train.txt": "\n\n" }, // no triple
  ];
  for (const files of cases) {
    await withDir(files, (dir) => {
      let message = "";
      try {
        readKgDir(dir);
      } catch (e) {
        message = (e as Error).message;
      }
      assert.ok(message.length > 0, JSON.stringify(files));
      assert.throws(() => kgDirSize(dir), (e: Error) => e.message === message);
    });
  }
});
