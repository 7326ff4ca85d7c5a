import assert from "node:assert/strict";
import {
  countVocab,
  keepProbabilities,
  listCorpusFiles,
  readSlice,
  tokenize,
  unigramTable,
} from "../../data/text_corpus.ts";
import { brownSentences } from "../../data/brown.ts";

async function withTempDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lapse-corpus-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("tokenize: lowercase; words are letter/digit runs with inner ' and -", () => {
  assert.deepEqual(
    tokenize("The jury said Atlanta's term-end ``report'' was fine."),
    ["the", "jury", "said", "atlanta's", "term-end", "report", "was", "fine"],
  );
  assert.deepEqual(tokenize("U.S. 1961 -- don’t  'quote' x-"), [
    "u",
    "s",
    "1961",
    "don't",
    "quote",
    "x",
  ]);
  assert.deepEqual(tokenize("Éclair naïve ÜBER"), ["éclair", "naïve", "über"]);
  assert.deepEqual(tokenize(" , . `` '' ; "), []);
});

Deno.test("brownSentences strips tags, one sentence per line", () => {
  const s = brownSentences(
    "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ./.\n\n\n\tIt's/pps+bez a/at test/nn\n",
  );
  assert.deepEqual(s, ["The Fulton jury said .", "It's a test"]);
});

/** A corpus in a folder of 3 files (one with CRLF, one without a final newline). */
async function writeCorpus(dir: string): Promise<string> {
  const c = `${dir}/corpus`;
  await Deno.mkdir(`${c}/sub`, { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < 300; i++) {
    lines.push(`the cat ${i % 7 === 0 ? "sat" : "ran"} on mat number ${i % 11} of ${i % 3}`);
  }
  await Deno.writeTextFile(`${c}/a.txt`, lines.slice(0, 100).join("\n") + "\n");
  await Deno.writeTextFile(`${c}/b.txt`, lines.slice(100, 200).join("\r\n"));
  await Deno.writeTextFile(`${c}/sub/c.txt`, lines.slice(200).join("\n") + "\n\n");
  await Deno.writeTextFile(`${c}/.hidden`, "ignored ignored ignored\n".repeat(50));
  return c;
}

Deno.test("vocabulary: counted once, sorted by count then word, min_count and max_vocab", async () => {
  await withTempDir(async (dir) => {
    const c = await writeCorpus(dir);
    const files = listCorpusFiles(c);
    assert.deepEqual(files.files.map((f) => f.slice(c.length)), ["/a.txt", "/b.txt", "/sub/c.txt"]);
    const v = countVocab(files, { minCount: 5, maxVocab: 0 });
    assert.equal(v.corpusWords, 300 * 9);
    assert.deepEqual(v.words.slice(0, 5), ["cat", "mat", "number", "of", "on"]); // 300 each
    assert.equal(v.counts[0], 300);
    for (let i = 1; i < v.words.length; i++) {
      assert.ok(
        v.counts[i - 1] > v.counts[i] ||
          (v.counts[i - 1] === v.counts[i] && v.words[i - 1] < v.words[i]),
        `order at ${i}`,
      );
    }
    assert.ok(!v.index.has("ignored"), "hidden files are not part of the corpus");
    const top = countVocab(files, { minCount: 5, maxVocab: 3 });
    assert.deepEqual(top.words, ["cat", "mat", "number"]);
    const frequent = countVocab(files, { minCount: 100, maxVocab: 0 });
    assert.ok(!frequent.index.has("sat") && v.index.has("sat")); // "sat": 43 times
    assert.notEqual(frequent.fingerprint, v.fingerprint);
  });
});

Deno.test("slices: disjoint, cover the corpus in order, identical vocabulary for any cut", async () => {
  await withTempDir(async (dir) => {
    const c = await writeCorpus(dir);
    const files = listCorpusFiles(c);
    const vocab = countVocab(files, { minCount: 1, maxVocab: 0 });
    const whole = readSlice(files, vocab, 0, 1, 1000);
    assert.equal(whole.count, 300);
    assert.equal(whole.words.length, 300 * 9);
    for (const workers of [2, 3, 5, 8]) {
      const parts: number[] = [];
      let sentences = 0;
      for (let w = 0; w < workers; w++) {
        const s = readSlice(files, vocab, w, workers, 1000);
        sentences += s.count;
        parts.push(...s.words);
        assert.ok(s.count > 0, `worker ${w}/${workers} got no sentence`);
      }
      assert.equal(sentences, 300, `workers ${workers}`);
      assert.deepEqual(parts, [...whole.words], `workers ${workers}`);
      // Counting again (as another node would) gives the same vocabulary.
      const again = countVocab(listCorpusFiles(c), { minCount: 1, maxVocab: 0 });
      assert.equal(again.fingerprint, vocab.fingerprint);
    }
    // Long lines are cut into sentences of max_sentence words.
    const cut = readSlice(files, vocab, 0, 1, 4);
    assert.equal(cut.count, 300 * 3);
  });
});

Deno.test("subsampling keeps word2vec's fraction; the unigram table follows count^0.75", () => {
  const counts = [1000, 100, 10, 1];
  const vocab = {
    words: ["a", "b", "c", "d"],
    counts: Float64Array.from(counts),
    index: new Map(),
    trainWords: 1111,
    corpusWords: 1111,
    distinct: 4,
    fingerprint: 0,
  };
  const keep = keepProbabilities(vocab, 1e-2);
  const st = 1e-2 * 1111;
  assert.ok(Math.abs(keep[0] - (Math.sqrt(1000 / st) + 1) * st / 1000) < 1e-6);
  assert.equal(keep[3], 1); // rare words are always kept
  assert.ok(keep[0] < keep[1] && keep[1] < 1);
  assert.ok(keepProbabilities(vocab, 0).every((p) => p === 1));
  const table = unigramTable(vocab, 100_000);
  const seen = [0, 0, 0, 0];
  for (const w of table) seen[w]++;
  const z = counts.reduce((s, c) => s + c ** 0.75, 0);
  counts.forEach((c, i) => {
    const want = c ** 0.75 / z;
    assert.ok(Math.abs(seen[i] / table.length - want) < 0.002, `word ${i}: ${seen[i]}`);
  });
});

Deno.test("bad corpora: empty, binary, not UTF-8, no words, empty vocabulary", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/empty.txt`, "");
    assert.throws(() => listCorpusFiles(`${dir}/empty.txt`), /is empty/);
    assert.throws(() => listCorpusFiles(`${dir}/missing.txt`), /not found/);
    await Deno.writeFile(`${dir}/bin.dat`, Uint8Array.of(65, 66, 10, 0, 1, 2, 10));
    assert.throws(
      () => countVocab(listCorpusFiles(`${dir}/bin.dat`), { minCount: 1, maxVocab: 0 }),
      /line 2 has a NUL byte: a binary file/,
    );
    await Deno.writeFile(`${dir}/latin1.txt`, Uint8Array.of(99, 97, 102, 0xe9, 10));
    assert.throws(
      () => countVocab(listCorpusFiles(`${dir}/latin1.txt`), { minCount: 1, maxVocab: 0 }),
      /not UTF-8 text/,
    );
    await Deno.writeTextFile(`${dir}/punct.txt`, ". , ;\n--\n");
    assert.throws(
      () => countVocab(listCorpusFiles(`${dir}/punct.txt`), { minCount: 1, maxVocab: 0 }),
      /has no words/,
    );
    await Deno.writeTextFile(`${dir}/few.txt`, "a b c\n");
    assert.throws(
      () => countVocab(listCorpusFiles(`${dir}/few.txt`), { minCount: 5, maxVocab: 0 }),
      /vocabulary .* is empty.*min_count=5/,
    );
  });
});
