import assert from "node:assert/strict";
import {
  blockOf,
  blockStart,
  distinctSorted,
  forEachLine,
  type GenerateConfig,
  generatedRowCount,
  generateRatings,
  groupByColBlock,
  type Ratings,
  readRatingsFile,
  shuffleRange,
  sortByCol,
  trueColFactor,
  trueRowFactor,
} from "../../data/mf_data.ts";
import { hash32, Rng } from "../../core/rng.ts";

const GEN: GenerateConfig = {
  rows: 300,
  cols: 200,
  nnz: 12345,
  rank: 4,
  noise: 0.1,
  seed: 9,
  test_fraction: 0.2,
};

/** All ratings of a list of sets as sorted "row,col,val" strings. */
function asStrings(...sets: Ratings[]): string[] {
  const out: string[] = [];
  for (const r of sets) {
    for (let t = 0; t < r.length; t++) out.push(`${r.rows[t]},${r.cols[t]},${r.vals[t]}`);
  }
  return out.sort();
}

async function withTempFile(
  suffix: string,
  text: string,
  fn: (path: string) => Promise<void>,
): Promise<void> {
  const path = await Deno.makeTempFile({ suffix });
  try {
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("Rng is deterministic, uniform and Gaussian", () => {
  const a = new Rng(5), b = new Rng(5), c = new Rng(6);
  const xa = [a.nextU32(), a.nextU32()], xb = [b.nextU32(), b.nextU32()];
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, [c.nextU32(), c.nextU32()]);
  let sum = 0, sq = 0, u = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const g = a.nextGaussian();
    sum += g;
    sq += g * g;
    const f = a.nextFloat();
    assert.ok(f >= 0 && f < 1);
    u += f;
  }
  assert.ok(Math.abs(sum / n) < 0.05, `mean ${sum / n}`);
  assert.ok(Math.abs(sq / n - 1) < 0.05, `variance ${sq / n}`);
  assert.ok(Math.abs(u / n - 0.5) < 0.02, `uniform mean ${u / n}`);
  assert.notEqual(hash32(1, 2, 3), hash32(1, 3, 2));
});

Deno.test("generator: deterministic, nnz distinct cells, union over workers is the same data", () => {
  const one = generateRatings(GEN);
  const again = generateRatings(GEN);
  assert.deepEqual(one.train.vals, again.train.vals);
  assert.deepEqual(one.test.cols, again.test.cols);
  assert.equal(one.train.length + one.test.length, GEN.nnz);
  const cells = new Set<number>();
  for (const r of [one.train, one.test]) {
    for (let t = 0; t < r.length; t++) {
      assert.ok(r.rows[t] < GEN.rows && r.cols[t] < GEN.cols);
      cells.add(r.rows[t] * GEN.cols + r.cols[t]);
    }
  }
  assert.equal(cells.size, GEN.nnz, "ratings are distinct cells");
  const all = asStrings(one.train, one.test);
  for (const workers of [2, 3, 7]) {
    const parts = [];
    for (let w = 0; w < workers; w++) {
      const p = generateRatings(GEN, w, workers);
      // Worker w only has rows of its block.
      const r0 = blockStart(w, GEN.rows, workers), r1 = blockStart(w + 1, GEN.rows, workers);
      for (const r of [p.train, p.test]) {
        for (let t = 0; t < r.length; t++) assert.ok(r.rows[t] >= r0 && r.rows[t] < r1);
      }
      parts.push(p.train, p.test);
    }
    assert.deepEqual(asStrings(...parts), all, `union over ${workers} workers`);
  }
  const other = generateRatings({ ...GEN, seed: 10 });
  assert.notDeepEqual(other.train.vals.subarray(0, 10), one.train.vals.subarray(0, 10));
});

Deno.test("generator: row counts, test fraction, rating scale and noise", () => {
  let total = 0;
  for (let i = 0; i < GEN.rows; i++) {
    const k = generatedRowCount(GEN, i);
    assert.ok(k === 41 || k === 42, `row ${i} has ${k}`);
    total += k;
  }
  assert.equal(total, GEN.nnz);
  const big: GenerateConfig = { rows: 500, cols: 400, nnz: 40000, rank: 8, noise: 0.3, seed: 2 };
  const { train, test } = generateRatings(big);
  const frac = test.length / (train.length + test.length);
  assert.ok(Math.abs(frac - 0.1) < 0.01, `default test fraction ${frac}`);
  // Rating variance ~ 1 + noise^2; residual against the true factors ~ noise.
  const u = new Float64Array(big.rank), v = new Float64Array(big.rank);
  let sq = 0, res = 0;
  for (let t = 0; t < train.length; t++) {
    const x = train.vals[t];
    sq += x * x;
    trueRowFactor(big, train.rows[t], u);
    trueColFactor(big, train.cols[t], v);
    let dot = 0;
    for (let f = 0; f < big.rank; f++) dot += u[f] * v[f];
    res += (x - dot) ** 2;
  }
  const variance = sq / train.length, noise = Math.sqrt(res / train.length);
  assert.ok(variance > 0.8 && variance < 1.3, `rating variance ${variance}`);
  assert.ok(Math.abs(noise - 0.3) < 0.01, `noise std ${noise}`);
  assert.throws(() => generateRatings({ ...big, nnz: 500 * 400 + 1 }), /exceeds/);
  assert.throws(() => generateRatings({ ...big, rows: 0 }), /rows/);
  assert.throws(() => generateRatings({ ...big, test_fraction: 1 }), /test_fraction/);
  // A full matrix works (k = cols for every row).
  const full = generateRatings({ rows: 5, cols: 6, nnz: 30, rank: 2, noise: 0, seed: 1 });
  assert.equal(full.train.length + full.test.length, 30);
});

Deno.test("blocks: blockOf inverts blockStart", () => {
  for (const [n, blocks] of [[10, 3], [7, 7], [100, 8], [5, 1], [3, 5]]) {
    for (let i = 0; i < n; i++) {
      const b = blockOf(i, n, blocks);
      assert.ok(
        blockStart(b, n, blocks) <= i && i < blockStart(b + 1, n, blocks),
        `${i} ${n} ${blocks}`,
      );
    }
    assert.equal(blockStart(blocks, n, blocks), n);
  }
});

Deno.test("groupByColBlock, shuffleRange, sortByCol, distinctSorted", () => {
  const { train } = generateRatings(GEN);
  const g = groupByColBlock(train, GEN.cols, 3);
  assert.equal(g.offsets[0], 0);
  assert.equal(g.offsets[3], train.length);
  for (let b = 0; b < 3; b++) {
    for (let t = g.offsets[b]; t < g.offsets[b + 1]; t++) {
      assert.equal(blockOf(g.cols[t], GEN.cols, 3), b);
    }
  }
  assert.deepEqual(asStrings(g), asStrings(train));
  const before = asStrings(g);
  const block1 = g.cols.slice(g.offsets[1], g.offsets[2]);
  shuffleRange(g, g.offsets[1], g.offsets[2], new Rng(1));
  assert.deepEqual(asStrings(g), before, "shuffling keeps the ratings");
  assert.notDeepEqual(g.cols.slice(g.offsets[1], g.offsets[2]), block1, "order changed");
  for (let t = g.offsets[1]; t < g.offsets[2]; t++) {
    assert.equal(blockOf(g.cols[t], GEN.cols, 3), 1);
  }
  const s = sortByCol(g, GEN.cols);
  for (let t = 1; t < s.length; t++) assert.ok(s.cols[t - 1] <= s.cols[t]);
  assert.deepEqual(asStrings(s), before);
  assert.deepEqual(distinctSorted(Uint32Array.of(5, 1, 5, 3, 1)), Uint32Array.of(1, 3, 5));
  assert.deepEqual(distinctSorted(Uint32Array.of(9, 2, 2, 7), 1, 3), Uint32Array.of(2));
});

Deno.test("readers: MatrixMarket (1-based) with row blocks", async () => {
  const text = [
    "%%MatrixMarket matrix coordinate real general",
    "% a comment",
    "4 3 5",
    "1 1 1.5",
    "2 3 -2",
    "3 2 0.25",
    "4 1 4e-1",
    "4 3 7",
    "",
  ].join("\n");
  await withTempFile(".mtx", text, async (path) => {
    const all = await readRatingsFile(path, { rows: 4, cols: 3, testFraction: 0 });
    assert.equal(all.total, 5);
    assert.deepEqual(all.header, { rows: 4, cols: 3, nnz: 5 });
    assert.deepEqual(asStrings(all.train), [
      "0,0,1.5",
      "1,2,-2",
      "2,1,0.25",
      "3,0,0.4000000059604645",
      "3,2,7",
    ]);
    const b1 = await readRatingsFile(path, {
      rows: 4,
      cols: 3,
      testFraction: 0,
      block: 1,
      blocks: 2,
    });
    assert.deepEqual(asStrings(b1.train), ["2,1,0.25", "3,0,0.4000000059604645", "3,2,7"]);
    await assert.rejects(
      () => readRatingsFile(path, { rows: 3, cols: 3 }),
      /:3: matrix is 4 x 3, larger than the configured 3 x 3/,
    );
  });
  await withTempFile(
    ".mtx",
    "%%MatrixMarket matrix coordinate real general\n2 2 3\n1 1 1\n2 2 2\n",
    async (path) => {
      await assert.rejects(
        () => readRatingsFile(path, { rows: 2, cols: 2 }),
        /declares 3 entries, found 2/,
      );
    },
  );
  await withTempFile(".mtx", "%%MatrixMarket matrix array real general\n2 2\n", async (path) => {
    await assert.rejects(
      () => readRatingsFile(path, { rows: 2, cols: 2 }),
      /:1: only 'matrix coordinate'/,
    );
  });
});

Deno.test("readers: CSV/TSV, header, index base, delimiters, test split", async () => {
  await withTempFile(
    ".csv",
    "user,item,rating\n0,0,1\n1,2,2.5\n\n# c\n2,1,3,1234567\n",
    async (path) => {
      const r = await readRatingsFile(path, { rows: 3, cols: 3, testFraction: 0 });
      assert.deepEqual(asStrings(r.train), ["0,0,1", "1,2,2.5", "2,1,3"]);
      await assert.rejects(
        () => readRatingsFile(path, { rows: 3, cols: 3, indexBase: 1 }),
        new RegExp(`${path}:2: row 0 out of range 1\\.\\.3 \\(index base 1\\)`),
      );
    },
  );
  await withTempFile(".tsv", "1\t1\t1\r\n3\t3\t2\r\n", async (path) => {
    const r = await readRatingsFile(path, { rows: 3, cols: 3, indexBase: 1, testFraction: 0 });
    assert.deepEqual(asStrings(r.train), ["0,0,1", "2,2,2"]);
    await assert.rejects(
      () => readRatingsFile(path, { rows: 3, cols: 3 }),
      /:2: row 3 out of range 0\.\.2/,
    );
  });
  await withTempFile(".txt", "0 1 2\n  1   0   3  \n", async (path) => {
    const r = await readRatingsFile(path, { rows: 2, cols: 2, testFraction: 0 });
    assert.deepEqual(asStrings(r.train), ["0,1,2", "1,0,3"]);
  });
  await withTempFile(".csv", "0;1;2\n1;0;3\n", async (path) => {
    const r = await readRatingsFile(path, { rows: 2, cols: 2, delimiter: ";", testFraction: 0 });
    assert.equal(r.train.length, 2);
  });
  // Test split: deterministic, ~ the fraction, the same rating always on the same side.
  const lines: string[] = [];
  for (let i = 0; i < 100; i++) for (let j = 0; j < 50; j++) lines.push(`${i},${j},${i - j}`);
  await withTempFile(".csv", lines.join("\n"), async (path) => {
    const a = await readRatingsFile(path, { rows: 100, cols: 50, testFraction: 0.25 });
    const b = await readRatingsFile(path, {
      rows: 100,
      cols: 50,
      testFraction: 0.25,
      block: 0,
      blocks: 4,
    });
    assert.equal(a.train.length + a.test.length, 5000);
    assert.ok(Math.abs(a.test.length / 5000 - 0.25) < 0.03, `test ${a.test.length}`);
    const testA = new Set(asStrings(a.test));
    for (const s of asStrings(b.test)) assert.ok(testA.has(s));
    assert.equal(b.train.length + b.test.length, 1250);
  });
});

Deno.test("readers: malformed lines name the file and line", async () => {
  const cases: [string, RegExp][] = [
    ["0,0,1\n1,1\n", /:2: expected 3 fields/],
    ["0,0,1\n0,0,1\n1,x,2\n", /:3: row and column must be integers/],
    ["0,0,1\n1.5,0,2\n", /:2: row and column must be integers/],
    ["0,0,abc\n", /:1: value is not a finite number/],
    ["0,5,1\n", /:1: column 5 out of range 0\.\.2/],
  ];
  for (const [text, re] of cases) {
    await withTempFile(".csv", text, async (path) => {
      const err = await readRatingsFile(path, { rows: 3, cols: 3 }).then(() => null, (e) => e);
      assert.ok(err instanceof Error, `no error for ${JSON.stringify(text)}`);
      assert.match(err.message, re);
      assert.ok(err.message.startsWith(path), err.message);
    });
  }
});

Deno.test("forEachLine splits chunks and line endings correctly", async () => {
  const text = "alpha\r\nbeta\n\ngamma-ü-long-line\nlast";
  await withTempFile(".txt", text, async (path) => {
    for (const chunk of [1, 3, 7, 1024]) {
      const got: string[] = [];
      const n = await forEachLine(path, (l, no) => got.push(`${no}:${l}`), chunk);
      assert.equal(n, 5);
      assert.deepEqual(got, ["1:alpha", "2:beta", "3:", "4:gamma-ü-long-line", "5:last"]);
    }
  });
});
