/**
 * Plain-text corpora for word vectors (task `w2v`): tokenisation, the vocabulary, each worker's
 * slice of the sentences, frequent-word subsampling and the unigram^0.75 table of negatives.
 *
 * Corpus: one UTF-8 text file, or a folder of them (every regular file whose name does not start
 * with `.`, in subfolders too, in code-unit order of their paths relative to the folder).
 *
 * Tokenisation ({@linkcode tokenize}): a **sentence is a line** (a line longer than
 * `max_sentence` words is cut into several sentences, as the original word2vec does); the line
 * is lowercased (`toLowerCase`, Unicode-aware); a **word** is a maximal run of letters, digits
 * and combining marks (Unicode `\p{L}\p{N}\p{M}`), where an apostrophe (`'` or `’`, stored as
 * `'`) or a hyphen between two such characters stays inside the word: `Atlanta's` ->
 * `atlanta's`, `term-end` -> `term-end`, `U.S.` -> `u`, `s`; everything else (punctuation,
 * whitespace, symbols) separates words and is dropped.
 *
 * Vocabulary ({@linkcode countVocab}): one pass over the whole corpus counts every word; words
 * seen fewer than `min_count` times are dropped (and then skipped in the text, as in word2vec);
 * the rest are sorted by count (descending) then by the word (code units, ascending), and
 * `max_vocab` (if set) keeps the first ones. Word `i` of this order is key `i` of the tables.
 * The order depends only on the corpus, never on the number of workers or on timing, so every
 * node and worker that counts gets the same vocabulary ({@linkcode Vocab.fingerprint} checks it).
 *
 * Slices ({@linkcode readSlice}): the files are seen as one byte stream of `T` bytes; the line
 * that starts at byte `p` belongs to worker `floor(p * workers / T)`. A worker seeks to its range
 * and reads only its own lines, so the slices are disjoint, cover the corpus, are about equal in
 * bytes and do not depend on anything but the corpus and the number of workers.
 *
 * Bad input is a `RangeError` naming the file (and line): an empty corpus, a file with a NUL
 * byte or invalid UTF-8 (`binary`), a line above 16 MiB, an empty vocabulary after `min_count`.
 *
 * @module
 */
import { USER_ERROR } from "../core/errors.ts";
import { sharedF32, sharedI32 } from "./shared_arrays.ts";

/** Longest line accepted (bytes): a corpus without line breaks is a mistake, not a sentence. */
export const LINE_BYTES_MAX = 16 * 1024 * 1024;
/** Most files in a corpus folder. */
export const CORPUS_FILES_MAX = 100_000;
/** Most distinct words counted (before min_count): memory is bounded. */
export const DISTINCT_WORDS_MAX = 50_000_000;

const WORD = /[\p{L}\p{N}\p{M}]+(?:['’-][\p{L}\p{N}\p{M}]+)*/gu;
const CURLY = /’/g;

/**
 * The words of one line, as defined above (lowercased).
 *
 * @example
 * ```ts
 * import { tokenize } from "./text_corpus.ts";
 * tokenize("The jury said Atlanta's term-end ``report'' was fine.");
 * // ["the", "jury", "said", "atlanta's", "term-end", "report", "was", "fine"]
 * ```
 */
export function tokenize(line: string): string[] {
  const m = line.toLowerCase().match(WORD);
  if (m === null) return [];
  for (let i = 0; i < m.length; i++) if (m[i].includes("’")) m[i] = m[i].replace(CURLY, "'");
  return m;
}

/** The files of a corpus and their sizes (the byte stream of the slices). */
export interface CorpusFiles {
  /** The path given (a file or a folder). */
  path: string;
  files: string[];
  sizes: number[];
  /** Sum of sizes. */
  bytes: number;
}

/** Bad input is the user's: a `RangeError` the CLI reports as one line (exit status 2). */
function corpusError(msg: string): RangeError {
  const e = new RangeError(msg);
  (e as RangeError & { [USER_ERROR]: boolean })[USER_ERROR] = true;
  return e;
}

/** Lists a corpus (a file, or a folder's files recursively, sorted); throws if there is none. */
export function listCorpusFiles(path: string): CorpusFiles {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw corpusError(
        `corpus "${path}" not found (set data.file to a text file or a folder of them; ` +
          `"lapse data brown --out FILE" writes one)`,
      );
    }
    throw corpusError(`cannot read corpus "${path}": ${(e as Error).message}`);
  }
  const files: string[] = [];
  if (st.isFile) files.push(path);
  else if (st.isDirectory) {
    const walk = (dir: string, depth: number) => {
      if (depth > 32) return;
      const entries = [...Deno.readDirSync(dir)].filter((e) => !e.name.startsWith("."));
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        const p = `${dir}/${e.name}`;
        if (e.isDirectory) walk(p, depth + 1);
        else if (e.isFile) {
          files.push(p);
          if (files.length > CORPUS_FILES_MAX) {
            throw corpusError(`corpus folder "${path}" has more than ${CORPUS_FILES_MAX} files`);
          }
        }
      }
    };
    walk(path.replace(/\/+$/, "") || "/", 0);
  } else throw corpusError(`corpus "${path}" is neither a file nor a folder`);
  const sizes = files.map((f) => Deno.statSync(f).size);
  const bytes = sizes.reduce((a, b) => a + b, 0);
  if (files.length === 0 || bytes === 0) {
    throw corpusError(
      `corpus "${path}" is empty (data.file: give a text file with one sentence per line)`,
    );
  }
  return { path, files, sizes, bytes };
}

const NL = 10;

/**
 * Calls `onLine(text, file, lineNo)` for every line of `file` from byte `start` (which must be
 * a line start) up to the first line starting at or after `end`. Lines are decoded strictly:
 * invalid UTF-8 or a NUL byte is a `RangeError` naming the file and line (a binary file).
 */
function forEachLineSync(
  file: string,
  start: number,
  end: number,
  firstLineNo: number,
  onLine: (text: string, lineNo: number) => void,
): void {
  const f = Deno.openSync(file, { read: true });
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const chunk = new Uint8Array(1 << 20);
  let carry = new Uint8Array(0);
  let pos = start; // byte offset of the next line start
  let lineNo = firstLineNo;
  const emit = (bytes: Uint8Array) => {
    if (bytes.indexOf(0) >= 0) {
      throw corpusError(
        `corpus file "${file}" line ${lineNo} has a NUL byte: a binary file, not text ` +
          `(data.file must be UTF-8 text, one sentence per line)`,
      );
    }
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw corpusError(
        `corpus file "${file}" line ${lineNo} is not UTF-8 text: a binary file? ` +
          `(data.file must be UTF-8 text, one sentence per line)`,
      );
    }
    onLine(text, lineNo);
    lineNo++;
  };
  try {
    if (start > 0) f.seekSync(start, Deno.SeekMode.Start);
    let done = false;
    while (!done && pos < end) {
      const n = f.readSync(chunk);
      if (n === null || n === 0) break;
      const buf = chunk.subarray(0, n);
      let from = 0;
      for (;;) {
        const nl = buf.indexOf(NL, from);
        if (nl < 0) break;
        let line: Uint8Array;
        if (carry.length > 0) {
          line = new Uint8Array(carry.length + nl - from);
          line.set(carry);
          line.set(buf.subarray(from, nl), carry.length);
          carry = new Uint8Array(0);
        } else line = buf.subarray(from, nl);
        const len = line.length;
        emit(len > 0 && line[len - 1] === 13 ? line.subarray(0, len - 1) : line);
        pos += len + 1;
        from = nl + 1;
        if (pos >= end) {
          done = true;
          break;
        }
      }
      if (done) break;
      const rest = buf.subarray(from);
      if (carry.length + rest.length > LINE_BYTES_MAX) {
        throw corpusError(
          `corpus file "${file}" line ${lineNo} is longer than ${LINE_BYTES_MAX} bytes ` +
            `(a sentence is a line: is this a text file?)`,
        );
      }
      const c = new Uint8Array(carry.length + rest.length);
      c.set(carry);
      c.set(rest, carry.length);
      carry = c;
    }
    if (!done && carry.length > 0) {
      const len = carry.length;
      emit(carry[len - 1] === 13 ? carry.subarray(0, len - 1) : carry);
    }
  } finally {
    f.close();
  }
}

/** The vocabulary: words in key order with their counts. */
export interface Vocab {
  /** Word of each key. */
  words: string[];
  /** Corpus count of each key's word. */
  counts: Float64Array;
  /** Key of each word. */
  index: Map<string, number>;
  /** Sum of `counts`: words of the corpus that are trained on (before subsampling). */
  trainWords: number;
  /** All words of the corpus (also those below min_count or beyond max_vocab). */
  corpusWords: number;
  /** Distinct words before min_count. */
  distinct: number;
  /** A 32-bit hash of the words and counts in order: equal on every node that counted alike. */
  fingerprint: number;
}

/** What the vocabulary depends on. */
export interface VocabOptions {
  minCount: number;
  /** Keep at most this many words (the most frequent); 0 = no limit. */
  maxVocab: number;
}

const vocabMemo = new Map<string, Vocab>();

/** FNV-1a over a string, continuing from `h`. */
function fnv(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

/**
 * Counts the vocabulary of a corpus (one pass over all its files). Memoised per thread by the
 * files' paths, sizes and modification times and the options, so that a thread counts a corpus
 * once. Throws a `RangeError` if no word is left after `min_count`.
 */
export function countVocab(corpus: CorpusFiles, opts: VocabOptions): Vocab {
  const memoKey = JSON.stringify([
    corpus.files,
    corpus.sizes,
    corpus.files.map((f) => Deno.statSync(f).mtime?.getTime() ?? 0),
    opts.minCount,
    opts.maxVocab,
  ]);
  const hit = vocabMemo.get(memoKey);
  if (hit) return hit;
  const counts = new Map<string, number>();
  let corpusWords = 0;
  for (const file of corpus.files) {
    forEachLineSync(file, 0, Infinity, 1, (line) => {
      const ws = tokenize(line);
      corpusWords += ws.length;
      for (const w of ws) {
        const c = counts.get(w);
        if (c === undefined) {
          if (counts.size >= DISTINCT_WORDS_MAX) {
            throw corpusError(
              `corpus "${corpus.path}" has more than ${DISTINCT_WORDS_MAX} distinct words`,
            );
          }
          counts.set(w, 1);
        } else counts.set(w, c + 1);
      }
    });
  }
  if (corpusWords === 0) {
    throw corpusError(
      `corpus "${corpus.path}" has no words (data.file must be text, one sentence per line)`,
    );
  }
  const kept: [string, number][] = [];
  for (const e of counts) if (e[1] >= opts.minCount) kept.push(e);
  kept.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  if (opts.maxVocab > 0 && kept.length > opts.maxVocab) kept.length = opts.maxVocab;
  if (kept.length === 0) {
    throw corpusError(
      `the vocabulary of corpus "${corpus.path}" is empty: none of its ${counts.size} distinct ` +
        `words occurs model.min_count=${opts.minCount} times (lower model.min_count)`,
    );
  }
  const words = kept.map((e) => e[0]);
  const c = new Float64Array(kept.length);
  let trainWords = 0;
  let h = 2166136261;
  for (let i = 0; i < kept.length; i++) {
    c[i] = kept[i][1];
    trainWords += c[i];
    h = fnv(h, words[i]);
    h = fnv(h, `\u0000${c[i]}\u0000`);
  }
  const vocab: Vocab = {
    words,
    counts: c,
    index: new Map(words.map((w, i) => [w, i])),
    trainWords,
    corpusWords,
    distinct: counts.size,
    fingerprint: h,
  };
  vocabMemo.set(memoKey, vocab);
  return vocab;
}

/** A worker's sentences: word keys (words not in the vocabulary dropped) and sentence starts. */
export interface Sentences {
  /** Word keys of all sentences, back to back. */
  words: Int32Array;
  /** Sentence `s` is `words[starts[s] .. starts[s+1])`; `starts.length` = sentences + 1. */
  starts: Uint32Array;
  /** Number of sentences (non-empty ones only). */
  count: number;
}

/** Growable Int32Array (doubling; allocation only when it grows). */
class IntBuilder {
  a: Int32Array;
  n = 0;
  constructor(cap: number) {
    this.a = new Int32Array(cap);
  }
  push(v: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
}

/** A copy of `a` over a SharedArrayBuffer (fast in hot loops, see data/shared_arrays.ts). */
function copyShared(a: Int32Array): Int32Array {
  const b = sharedI32(a.length);
  b.set(a);
  return b;
}

/** First byte of worker `w`'s range of a `bytes`-byte stream cut into `workers` ranges. */
export function sliceStart(w: number, bytes: number, workers: number): number {
  return Math.ceil((w * bytes) / workers);
}

/**
 * Reads worker `worker`'s slice of the corpus (see the module doc): its lines, as sentences of
 * vocabulary keys (words not in `vocab` are dropped; lines are cut after `maxSentence` kept
 * words; empty sentences are skipped).
 */
export function readSlice(
  corpus: CorpusFiles,
  vocab: Vocab,
  worker: number,
  workers: number,
  maxSentence: number,
): Sentences {
  const lo = sliceStart(worker, corpus.bytes, workers);
  const hi = sliceStart(worker + 1, corpus.bytes, workers);
  const words = new IntBuilder(1 << 16);
  const starts = new IntBuilder(1 << 12);
  starts.push(0);
  let base = 0;
  for (let f = 0; f < corpus.files.length; f++) {
    const file = corpus.files[f], size = corpus.sizes[f];
    const fileLo = Math.max(lo, base) - base, fileHi = Math.min(hi, base + size) - base;
    base += size;
    if (fileLo >= fileHi) continue;
    // The first line starting at or after fileLo: fileLo itself if a line starts there.
    let start = fileLo;
    let lineNo = 1;
    if (fileLo > 0) {
      start = nextLineStart(file, fileLo);
      lineNo = 0; // unknown: line numbers in errors are only exact from the file start
      if (start >= fileHi) continue;
    }
    forEachLineSync(file, start, fileHi, lineNo, (line) => {
      let inSentence = 0;
      for (const w of tokenize(line)) {
        const k = vocab.index.get(w);
        if (k === undefined) continue;
        words.push(k);
        if (++inSentence === maxSentence) {
          starts.push(words.n);
          inSentence = 0;
        }
      }
      if (inSentence > 0) starts.push(words.n);
    });
  }
  return {
    words: copyShared(words.a.subarray(0, words.n)),
    starts: Uint32Array.from(starts.a.subarray(0, starts.n)),
    count: starts.n - 1,
  };
}

/** The first line start at or after `at` in `file` (`at` > 0): after the first `\n` at >= at-1. */
function nextLineStart(file: string, at: number): number {
  const f = Deno.openSync(file, { read: true });
  try {
    f.seekSync(at - 1, Deno.SeekMode.Start);
    const buf = new Uint8Array(64 * 1024);
    let pos = at - 1;
    for (;;) {
      const n = f.readSync(buf);
      if (n === null || n === 0) return Infinity;
      const nl = buf.subarray(0, n).indexOf(NL);
      if (nl >= 0) return pos + nl + 1;
      pos += n;
      if (pos - at > LINE_BYTES_MAX) {
        throw corpusError(`corpus file "${file}" has a line longer than ${LINE_BYTES_MAX} bytes`);
      }
    }
  } finally {
    f.close();
  }
}

/**
 * word2vec's subsampling of frequent words: the probability to keep an occurrence of each word,
 * `min(1, (sqrt(c / (sample * T)) + 1) * (sample * T) / c)` for a word of count `c` among `T`
 * training words; all 1 when `sample` is 0.
 */
export function keepProbabilities(vocab: Vocab, sample: number): Float32Array {
  const p = sharedF32(vocab.words.length);
  const st = sample * vocab.trainWords;
  for (let i = 0; i < p.length; i++) {
    const c = vocab.counts[i];
    p[i] = sample > 0 ? Math.min(1, (Math.sqrt(c / st) + 1) * st / c) : 1;
  }
  return p;
}

/**
 * word2vec's table of negatives: `size` entries in which word `i` fills a share proportional to
 * `count_i^0.75` (filled exactly as the original C code does). Draw a uniform entry.
 */
export function unigramTable(vocab: Vocab, size: number, power = 0.75): Int32Array {
  const table = sharedI32(size);
  const n = vocab.words.length;
  let total = 0;
  for (let i = 0; i < n; i++) total += Math.pow(vocab.counts[i], power);
  let i = 0;
  let d1 = Math.pow(vocab.counts[0], power) / total;
  for (let a = 0; a < size; a++) {
    table[a] = i;
    if (a / size > d1) {
      i++;
      d1 += Math.pow(vocab.counts[Math.min(i, n - 1)], power) / total;
    }
    if (i >= n) i = n - 1;
  }
  return table;
}

/** Table size for a vocabulary: 100 entries per word, between 2^20 and 10^8 (word2vec: 10^8). */
export function unigramTableSize(vocabSize: number): number {
  return Math.min(100_000_000, Math.max(1 << 20, vocabSize * 100));
}
