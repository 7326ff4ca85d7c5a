import assert from "node:assert/strict";
import {
  analogy,
  nearest,
  normalized,
  readWordVectors,
  writeWordVectors,
} from "../../data/word_vectors.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lapse-vectors-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const WORDS = ["king", "queen", "man", "woman", "apple", "don't"];
const DIM = 4;
// king - man + woman = queen exactly; apple far away.
const VECS = Float32Array.from([
  [1, 1, 0, 0.1],
  [1, 0, 1, 0.1],
  [0, 1, 0, 0.05],
  [0, 0, 1, 0.05],
  [-1, 0.2, -0.3, 2],
  [0.123456, -0.5, 1e-7, -3.25],
].flat());

for (const ext of ["txt", "bin"]) {
  Deno.test(`word vectors round trip (${ext}): header, words, values; nothing else left`, async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/v.${ext}`;
      let calls = 0;
      await writeWordVectors(
        path,
        WORDS,
        DIM,
        (start, count, out) => {
          calls++;
          out.set(VECS.subarray(start * DIM, (start + count) * DIM));
        },
        undefined,
        4,
      );
      assert.equal(calls, 2, "streamed in chunks of 4 words");
      const bytes = await Deno.readFile(path);
      assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), "6 4\n");
      if (ext === "txt") {
        const lines = new TextDecoder().decode(bytes).trim().split("\n");
        assert.equal(lines.length, 7);
        assert.equal(lines[1], "king 1.000000 1.000000 0.000000 0.100000");
      } else {
        // word, space, 4 float32 little-endian, newline
        assert.equal(bytes.length, 4 + WORDS.reduce((s, w) => s + w.length + 1 + 16 + 1, 0));
      }
      const v = await readWordVectors(path);
      assert.deepEqual(v.words, WORDS);
      assert.equal(v.dim, DIM);
      for (let i = 0; i < VECS.length; i++) {
        assert.ok(Math.abs(v.vectors[i] - VECS[i]) <= (ext === "bin" ? 0 : 5e-7), `value ${i}`);
      }
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [`v.${ext}`]);
    });
  });
}

Deno.test("a failed write leaves the old file and no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/v.txt`;
    await Deno.writeTextFile(path, "old");
    await assert.rejects(
      writeWordVectors(path, WORDS, DIM, () => {
        throw new Error("pull failed");
      }),
      /pull failed/,
    );
    assert.equal(await Deno.readTextFile(path), "old");
    assert.equal([...Deno.readDirSync(dir)].length, 1);
  });
});

Deno.test("nearest and analogy by cosine", () => {
  const v = { words: WORDS, dim: DIM, vectors: VECS };
  const unit = normalized(v);
  const n = nearest(v, unit, "king", 2);
  assert.equal(n.length, 2);
  assert.ok(!n.some((x) => x.word === "king"));
  assert.ok(n[0].cosine >= n[1].cosine);
  assert.equal(analogy(v, unit, "man", "king", "woman", 1)[0].word, "queen");
  assert.throws(() => nearest(v, unit, "prince", 3), /"prince" is not in the vocabulary/);
});

Deno.test("malformed vectors files are named errors", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a.txt`, "hello world\n");
    await assert.rejects(readWordVectors(`${dir}/a.txt`), /first line must be "COUNT DIM"/);
    await Deno.writeTextFile(`${dir}/b.txt`, "3 2\na 1 2\nb 3 4\n");
    await assert.rejects(readWordVectors(`${dir}/b.txt`), /header says 3 words, the file has 2/);
    await assert.rejects(readWordVectors(`${dir}/none.txt`), /not found/);
  });
});
