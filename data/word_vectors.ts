/**
 * Word vectors in the formats of the original word2vec, which gensim's
 * `KeyedVectors.load_word2vec_format(path, binary=...)` reads:
 *
 * - **text**: a first line `COUNT DIM`, then one line per word: the word, a space, and `DIM`
 *   numbers separated by spaces (6 decimals, as word2vec's `%lf`).
 * - **binary**: the same first line, then per word: the word, a space, `DIM` little-endian
 *   float32 values, and a `\n`.
 *
 * Words never contain whitespace (see `data/text_corpus.ts`). Files are written atomically.
 * {@linkcode readWordVectors} tells the formats apart by content. {@linkcode nearest} and
 * {@linkcode analogy} answer by cosine similarity, as word2vec's `distance` and `word-analogy`.
 *
 * @module
 */
import { writeFileAtomic } from "./atomic_write.ts";

/** The two formats. */
export type VectorsFormat = "text" | "binary";

/** Most words and largest dimension a file may declare (a corrupt header fails loudly). */
export const VECTORS_WORDS_MAX = 50_000_000;
export const VECTORS_DIM_MAX = 10_000;

/** The format a file name asks for: `.bin` is binary, anything else text. */
export function formatForPath(path: string): VectorsFormat {
  return path.toLowerCase().endsWith(".bin") ? "binary" : "text";
}

/** Word vectors in memory: word `i` has `vectors[i*dim .. (i+1)*dim)`. */
export interface WordVectors {
  words: string[];
  dim: number;
  vectors: Float32Array;
}

/**
 * Writes vectors atomically. `rows(start, count, out)` fills `out` with the vectors of words
 * `start .. start+count-1` (so a caller can stream them from a parameter server in chunks).
 */
export async function writeWordVectors(
  path: string,
  words: readonly string[],
  dim: number,
  rows: (start: number, count: number, out: Float32Array) => Promise<void> | void,
  format: VectorsFormat = formatForPath(path),
  chunk = 4096,
): Promise<void> {
  const enc = new TextEncoder();
  const buf = new Float32Array(chunk * dim);
  await writeFileAtomic(path, async (write) => {
    await write(enc.encode(`${words.length} ${dim}\n`));
    for (let start = 0; start < words.length; start += chunk) {
      const n = Math.min(chunk, words.length - start);
      await rows(start, n, buf.subarray(0, n * dim));
      if (format === "text") {
        const lines: string[] = [];
        for (let i = 0; i < n; i++) {
          let line = words[start + i];
          for (let f = 0; f < dim; f++) line += " " + buf[i * dim + f].toFixed(6);
          lines.push(line);
        }
        await write(enc.encode(lines.join("\n") + "\n"));
      } else {
        const parts: Uint8Array[] = [];
        let bytes = 0;
        for (let i = 0; i < n; i++) {
          const w = enc.encode(words[start + i] + " ");
          parts.push(w);
          bytes += w.length + dim * 4 + 1;
        }
        const out = new Uint8Array(bytes);
        const view = new DataView(out.buffer);
        let at = 0;
        for (let i = 0; i < n; i++) {
          out.set(parts[i], at);
          at += parts[i].length;
          for (let f = 0; f < dim; f++, at += 4) view.setFloat32(at, buf[i * dim + f], true);
          out[at++] = 10;
        }
        await write(out);
      }
    }
  });
}

function vectorsError(path: string, msg: string): RangeError {
  return new RangeError(`vectors file "${path}": ${msg}`);
}

/** Reads a text or binary word2vec file (the format is detected from the content). */
export async function readWordVectors(path: string): Promise<WordVectors> {
  let data: Uint8Array;
  try {
    data = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw vectorsError(path, `not found (write one with lapse train --out FILE)`);
    }
    throw vectorsError(path, (e as Error).message);
  }
  const nl = data.indexOf(10);
  const header = new TextDecoder().decode(
    data.subarray(0, nl < 0 ? Math.min(100, data.length) : nl),
  )
    .trim();
  const m = /^(\d+)\s+(\d+)$/.exec(header);
  if (nl < 0 || m === null) {
    throw vectorsError(path, `the first line must be "COUNT DIM", got ${JSON.stringify(header)}`);
  }
  const count = Number(m[1]), dim = Number(m[2]);
  if (count > VECTORS_WORDS_MAX || dim < 1 || dim > VECTORS_DIM_MAX) {
    throw vectorsError(path, `unlikely size ${count} x ${dim}`);
  }
  const body = data.subarray(nl + 1);
  return isTextBody(body, dim)
    ? parseText(path, body, count, dim)
    : parseBinary(path, body, count, dim);
}

/** True if the first record looks like `word n1 ... nDIM` text. */
function isTextBody(body: Uint8Array, dim: number): boolean {
  const end = body.indexOf(10);
  const first = body.subarray(0, end < 0 ? body.length : end);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(first);
  } catch {
    return false;
  }
  const fields = text.trim().split(/\s+/);
  return fields.length === dim + 1 && fields.slice(1).every((f) => Number.isFinite(Number(f)));
}

function parseText(path: string, body: Uint8Array, count: number, dim: number): WordVectors {
  const lines = new TextDecoder().decode(body).split("\n");
  const words: string[] = [];
  const vectors = new Float32Array(count * dim);
  for (let li = 0; li < lines.length && words.length < count; li++) {
    const t = lines[li].trim();
    if (t.length === 0) continue;
    const f = t.split(/\s+/);
    if (f.length !== dim + 1) {
      throw vectorsError(path, `line ${li + 2}: expected a word and ${dim} numbers`);
    }
    const o = words.length * dim;
    for (let d = 0; d < dim; d++) {
      const v = Number(f[d + 1]);
      if (!Number.isFinite(v)) throw vectorsError(path, `line ${li + 2}: "${f[d + 1]}"`);
      vectors[o + d] = v;
    }
    words.push(f[0]);
  }
  if (words.length !== count) {
    throw vectorsError(path, `the header says ${count} words, the file has ${words.length}`);
  }
  return { words, dim, vectors };
}

function parseBinary(path: string, body: Uint8Array, count: number, dim: number): WordVectors {
  const dec = new TextDecoder();
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const words: string[] = [];
  const vectors = new Float32Array(count * dim);
  let at = 0;
  for (let i = 0; i < count; i++) {
    while (at < body.length && (body[at] === 10 || body[at] === 13)) at++;
    const sp = body.indexOf(32, at);
    if (sp < 0 || sp - at > 1000) throw vectorsError(path, `word ${i + 1} is not terminated`);
    words.push(dec.decode(body.subarray(at, sp)));
    at = sp + 1;
    if (at + dim * 4 > body.length) {
      throw vectorsError(path, `truncated at word ${i + 1} of ${count}`);
    }
    for (let d = 0; d < dim; d++, at += 4) vectors[i * dim + d] = view.getFloat32(at, true);
  }
  return { words, dim, vectors };
}

/** Unit-length copies of the vectors (zero vectors stay zero). */
export function normalized(v: WordVectors): Float32Array {
  const { dim } = v;
  const out = new Float32Array(v.vectors.length);
  for (let i = 0; i < v.words.length; i++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += v.vectors[i * dim + d] ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let d = 0; d < dim; d++) out[i * dim + d] = v.vectors[i * dim + d] * inv;
  }
  return out;
}

/** One answer: a word and its cosine similarity. */
export interface Neighbour {
  word: string;
  cosine: number;
}

/** The `k` words most similar (cosine) to `query` (a vector), skipping word ids in `exclude`. */
export function nearestToVector(
  v: WordVectors,
  unit: Float32Array,
  query: Float32Array,
  k: number,
  exclude: ReadonlySet<number> = new Set(),
): Neighbour[] {
  const dim = v.dim;
  let qs = 0;
  for (let d = 0; d < dim; d++) qs += query[d] * query[d];
  const qi = qs > 0 ? 1 / Math.sqrt(qs) : 0;
  const best: { i: number; c: number }[] = [];
  for (let i = 0; i < v.words.length; i++) {
    if (exclude.has(i)) continue;
    let c = 0;
    for (let d = 0; d < dim; d++) c += unit[i * dim + d] * query[d];
    c *= qi;
    if (best.length < k || c > best[best.length - 1].c) {
      best.push({ i, c });
      best.sort((a, b) => b.c - a.c);
      if (best.length > k) best.pop();
    }
  }
  return best.map((b) => ({ word: v.words[b.i], cosine: b.c }));
}

function wordId(v: WordVectors, word: string, index: Map<string, number>): number {
  const i = index.get(word) ?? index.get(word.toLowerCase());
  if (i === undefined) {
    throw new RangeError(`"${word}" is not in the vocabulary (${v.words.length} words)`);
  }
  return i;
}

/** A word -> id map of a set of vectors. */
export function wordIndex(v: WordVectors): Map<string, number> {
  return new Map(v.words.map((w, i) => [w, i]));
}

/** Nearest neighbours of `word` (itself excluded). */
export function nearest(
  v: WordVectors,
  unit: Float32Array,
  word: string,
  k: number,
  index = wordIndex(v),
): Neighbour[] {
  const i = wordId(v, word, index);
  return nearestToVector(v, unit, unit.subarray(i * v.dim, (i + 1) * v.dim), k, new Set([i]));
}

/** "a is to b as c is to ?": nearest to unit(b) - unit(a) + unit(c), a, b and c excluded. */
export function analogy(
  v: WordVectors,
  unit: Float32Array,
  a: string,
  b: string,
  c: string,
  k: number,
  index = wordIndex(v),
): Neighbour[] {
  const ia = wordId(v, a, index), ib = wordId(v, b, index), ic = wordId(v, c, index);
  const dim = v.dim;
  const q = new Float32Array(dim);
  for (let d = 0; d < dim; d++) {
    q[d] = unit[ib * dim + d] - unit[ia * dim + d] + unit[ic * dim + d];
  }
  return nearestToVector(v, unit, q, k, new Set([ia, ib, ic]));
}
