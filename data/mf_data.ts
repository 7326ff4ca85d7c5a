/**
 * Data for matrix factorization: a deterministic synthetic low-rank generator, streaming readers
 * for MatrixMarket and CSV/TSV rating files, and the partitioning helpers of DSGD.
 *
 * Ratings are always kept as parallel typed arrays (`rows`, `cols`: `Uint32Array`, so that a
 * subarray can be passed to the PS as keys; `vals`: `Float32Array`), never as arrays of objects.
 *
 * Partitioning: worker `w` of `N` owns row block `w` (a contiguous range of rows, see
 * {@linkcode blockStart}); the generator and the readers only ever materialise that block.
 *
 * @module
 */

import { hash32, mix32, Rng, TWO_POW_32 } from "../core/rng.ts";
import { excerpt } from "../core/errors.ts";

// ---------------------------------------------------------------------------------------------
// Ratings containers
// ---------------------------------------------------------------------------------------------

/** A set of ratings as parallel typed arrays of equal length. */
export interface Ratings {
  rows: Uint32Array;
  cols: Uint32Array;
  vals: Float32Array;
  length: number;
}

/** A worker's ratings, split into training and test ratings. */
export interface RatingsSplit {
  train: Ratings;
  test: Ratings;
  /** With ids that are names: the name of every row / column key (key = position). */
  rowNames?: string[];
  colNames?: string[];
}

/** Ratings sorted by block: block `b` is the index range `offsets[b] .. offsets[b + 1]`. */
export interface BlockedRatings extends Ratings {
  offsets: Int32Array;
}

/** An empty set of ratings. */
export function emptyRatings(): Ratings {
  return {
    rows: new Uint32Array(0),
    cols: new Uint32Array(0),
    vals: new Float32Array(0),
    length: 0,
  };
}

/** Appends ratings to growable typed arrays (doubling); {@linkcode finish} trims them. */
export class RatingsBuilder {
  private rows: Uint32Array;
  private cols: Uint32Array;
  private vals: Float32Array;
  length = 0;

  constructor(capacity = 1024) {
    const c = Math.max(16, capacity | 0);
    this.rows = new Uint32Array(c);
    this.cols = new Uint32Array(c);
    this.vals = new Float32Array(c);
  }

  push(row: number, col: number, val: number): void {
    if (this.length === this.rows.length) this.grow();
    const n = this.length++;
    this.rows[n] = row;
    this.cols[n] = col;
    this.vals[n] = val;
  }

  private grow(): void {
    const c = this.rows.length * 2;
    const rows = new Uint32Array(c);
    rows.set(this.rows);
    const cols = new Uint32Array(c);
    cols.set(this.cols);
    const vals = new Float32Array(c);
    vals.set(this.vals);
    this.rows = rows;
    this.cols = cols;
    this.vals = vals;
  }

  /** The ratings pushed so far, in exactly sized arrays. */
  finish(): Ratings {
    const n = this.length;
    return {
      rows: this.rows.slice(0, n),
      cols: this.cols.slice(0, n),
      vals: this.vals.slice(0, n),
      length: n,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Partitioning
// ---------------------------------------------------------------------------------------------

/** First index of block `b` when `n` indices are cut into `blocks` contiguous blocks. */
export function blockStart(b: number, n: number, blocks: number): number {
  return Math.floor((b * n) / blocks);
}

/** The block (0 .. blocks-1) of `index` when `n` indices are cut into `blocks` contiguous blocks. */
export function blockOf(index: number, n: number, blocks: number): number {
  return Math.floor(((index + 1) * blocks - 1) / n);
}

/** Keys `blockStart(b) .. blockStart(b + 1) - 1` of block `b` as a `Uint32Array`. */
export function blockKeys(b: number, n: number, blocks: number): Uint32Array {
  const start = blockStart(b, n, blocks);
  const end = blockStart(b + 1, n, blocks);
  const keys = new Uint32Array(end - start);
  for (let i = 0; i < keys.length; i++) keys[i] = start + i;
  return keys;
}

/**
 * Groups ratings by the column block of each rating (counting sort, stable): the result holds
 * the same ratings, block `b` at `offsets[b] .. offsets[b + 1]`, so that a DSGD subepoch
 * iterates one block contiguously.
 */
export function groupByColBlock(r: Ratings, cols: number, blocks: number): BlockedRatings {
  const n = r.length;
  const block = new Int32Array(n);
  const offsets = new Int32Array(blocks + 1);
  for (let i = 0; i < n; i++) {
    const b = blockOf(r.cols[i], cols, blocks);
    block[i] = b;
    offsets[b + 1]++;
  }
  for (let b = 0; b < blocks; b++) offsets[b + 1] += offsets[b];
  const fill = offsets.slice(0, blocks);
  const rows = new Uint32Array(n);
  const cs = new Uint32Array(n);
  const vals = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const p = fill[block[i]]++;
    rows[p] = r.rows[i];
    cs[p] = r.cols[i];
    vals[p] = r.vals[i];
  }
  return { rows, cols: cs, vals, length: n, offsets };
}

/** Fisher-Yates shuffle of the ratings `start .. end-1` in place (all three arrays together). */
export function shuffleRange(r: Ratings, start: number, end: number, rng: Rng): void {
  const rows = r.rows, cols = r.cols, vals = r.vals;
  for (let i = end - 1; i > start; i--) {
    const j = start + rng.nextInt(i - start + 1);
    const tr = rows[i], tc = cols[i], tv = vals[i];
    rows[i] = rows[j];
    cols[i] = cols[j];
    vals[i] = vals[j];
    rows[j] = tr;
    cols[j] = tc;
    vals[j] = tv;
  }
}

/** Sorted distinct values of `a[start .. end-1]` (e.g. the column keys of one block). */
export function distinctSorted(a: Uint32Array, start = 0, end = a.length): Uint32Array {
  const s = a.slice(start, end).sort();
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    if (i === 0 || s[i] !== s[n - 1]) s[n++] = s[i];
  }
  return s.slice(0, n);
}

/** Sorts ratings by column (stable counting sort over `cols` columns); returns a new set. */
export function sortByCol(r: Ratings, cols: number): Ratings {
  const n = r.length;
  const count = new Int32Array(cols + 1);
  for (let i = 0; i < n; i++) count[r.cols[i] + 1]++;
  for (let c = 0; c < cols; c++) count[c + 1] += count[c];
  const rows = new Uint32Array(n);
  const cs = new Uint32Array(n);
  const vals = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const p = count[r.cols[i]]++;
    rows[p] = r.rows[i];
    cs[p] = r.cols[i];
    vals[p] = r.vals[i];
  }
  return { rows, cols: cs, vals, length: n };
}

// ---------------------------------------------------------------------------------------------
// Synthetic low-rank generator
// ---------------------------------------------------------------------------------------------

/** Config of the synthetic generator (`data.generate` of an mf job). */
export interface GenerateConfig {
  rows: number;
  cols: number;
  /** Total ratings (train + test), distinct (row, col) cells. */
  nnz: number;
  /** Rank of the true factors. */
  rank: number;
  /** Standard deviation of the Gaussian noise added to each rating. */
  noise: number;
  seed: number;
  /** Fraction of ratings in the test set (by a hash of the rating). Default 0.1. */
  test_fraction?: number;
}

const COL_SALT = 0x43a1f5c7;
const SPLIT_SALT = 0x7e57da7a;

/** Number of ratings of `row`: `nnz` spread as evenly as possible over the rows. */
export function generatedRowCount(cfg: GenerateConfig, row: number): number {
  const q = Math.floor(cfg.nnz / cfg.rows);
  const rem = cfg.nnz - q * cfg.rows;
  return q + Math.floor(((row + 1) * rem) / cfg.rows) - Math.floor((row * rem) / cfg.rows);
}

/** Std of each entry of a true factor: variance 1/sqrt(rank), so a noise-free rating has variance 1. */
function factorStd(rank: number): number {
  return Math.pow(rank, -0.25);
}

/** Writes the true factor of `row` (`rank` floats) into `out` at `offset`. */
export function trueRowFactor(
  cfg: GenerateConfig,
  row: number,
  out: Float32Array | Float64Array,
  offset = 0,
): void {
  const rng = new Rng(hash32(cfg.seed, row));
  const s = factorStd(cfg.rank);
  for (let f = 0; f < cfg.rank; f++) out[offset + f] = s * rng.nextGaussian();
}

/** Writes the true factor of `col` (`rank` floats) into `out` at `offset`. */
export function trueColFactor(
  cfg: GenerateConfig,
  col: number,
  out: Float32Array | Float64Array,
  offset = 0,
): void {
  const rng = new Rng(hash32(cfg.seed ^ COL_SALT, col));
  const s = factorStd(cfg.rank);
  for (let f = 0; f < cfg.rank; f++) out[offset + f] = s * rng.nextGaussian();
}

/** True if rating (row, col) belongs to the test set (a hash of the rating: deterministic). */
export function isTestRating(
  splitSeed: number,
  row: number,
  col: number,
  fraction: number,
): boolean {
  return hash32(splitSeed ^ SPLIT_SALT, row, col) < fraction * TWO_POW_32;
}

/** Checks a generator config; throws a `RangeError` naming the bad field. */
export function checkGenerateConfig(cfg: GenerateConfig): void {
  const int = (name: keyof GenerateConfig, min: number) => {
    const v = cfg[name] as number;
    if (!Number.isInteger(v) || v < min) {
      throw new RangeError(`data.generate.${name} must be an integer >= ${min}, got ${v}`);
    }
  };
  int("rows", 1);
  int("cols", 1);
  int("nnz", 1);
  int("rank", 1);
  if (!Number.isInteger(cfg.seed)) throw new RangeError(`data.generate.seed must be an integer`);
  if (!(cfg.noise >= 0)) throw new RangeError(`data.generate.noise must be >= 0, got ${cfg.noise}`);
  if (cfg.nnz > cfg.rows * cfg.cols) {
    throw new RangeError(
      `data.generate.nnz (${cfg.nnz}) exceeds rows x cols (${cfg.rows} x ${cfg.cols})`,
    );
  }
  if (cfg.rows >= 2 ** 31 || cfg.cols >= 2 ** 31) {
    throw new RangeError(`data.generate.rows and cols must be < 2^31`);
  }
  const tf = cfg.test_fraction ?? 0.1;
  if (!(tf >= 0 && tf < 1)) {
    throw new RangeError(`data.generate.test_fraction must be in [0, 1), got ${tf}`);
  }
}

/**
 * Generates the ratings of row block `block` (of `blocks`) of the synthetic low-rank matrix:
 * rating(i, j) = <u_i, v_j> + noise * N(0, 1), where every entry of the true factors u_i, v_j is
 * N(0, 1/sqrt(rank)) drawn from a PRNG seeded by a hash of (seed, i) resp. (seed, j), so that any
 * worker can compute any true factor and a noise-free rating has variance 1.
 *
 * Row i has {@linkcode generatedRowCount} ratings in distinct columns drawn uniformly (Floyd's
 * sampling from a PRNG seeded by (seed, i)); the noise comes from the same per-row PRNG. The data
 * set is thus a function of the config only: the union over the blocks is the same whatever the
 * number of blocks (workers), and a row's ratings come out in the same order. The test split is
 * by a hash of (seed, row, col).
 */
export function generateRatings(cfg: GenerateConfig, block = 0, blocks = 1): RatingsSplit {
  checkGenerateConfig(cfg);
  const { rows, cols, rank, noise, seed } = cfg;
  const testFraction = cfg.test_fraction ?? 0.1;
  const r0 = blockStart(block, rows, blocks);
  const r1 = blockStart(block + 1, rows, blocks);

  // True column factors of all columns (cols x rank): needed by every row.
  const v = new Float64Array(cols * rank);
  for (let j = 0; j < cols; j++) trueColFactor(cfg, j, v, j * rank);

  let expected = 0;
  for (let i = r0; i < r1; i++) expected += generatedRowCount(cfg, i);
  const expectedTest = Math.ceil(expected * testFraction * 1.1) + 16;
  const train = new RatingsBuilder(expected - Math.floor(expected * testFraction * 0.9));
  const test = new RatingsBuilder(expectedTest);

  // Floyd's sampling needs a set of chosen columns: open addressing over a reused Int32Array.
  const maxK = generatedRowCount(cfg, 0) + 1;
  let cap = 16;
  while (cap < maxK * 2) cap *= 2;
  const table = new Int32Array(cap).fill(-1);
  const used = new Int32Array(maxK);
  const mask = cap - 1;
  const chosen = new Int32Array(maxK);

  const u = new Float64Array(rank);
  const s = factorStd(rank);
  const rng = new Rng(0);
  for (let i = r0; i < r1; i++) {
    const k = generatedRowCount(cfg, i);
    rng.reseed(hash32(seed, i));
    for (let f = 0; f < rank; f++) u[f] = s * rng.nextGaussian();
    // Floyd: for t = cols-k .. cols-1, pick x in [0, t]; take x unless taken, else take t.
    let nUsed = 0;
    for (let t = cols - k; t < cols; t++) {
      const x = rng.nextInt(t + 1);
      let c = x;
      let p = mix32(x) & mask;
      let found = false;
      while (table[p] !== -1) {
        if (table[p] === x) {
          found = true;
          break;
        }
        p = (p + 1) & mask;
      }
      if (found) {
        c = t; // t was never a candidate before, so it is not in the set
        p = mix32(t) & mask;
        while (table[p] !== -1) p = (p + 1) & mask;
      }
      table[p] = c;
      used[nUsed] = p;
      chosen[nUsed++] = c;
    }
    for (let q = 0; q < nUsed; q++) table[used[q]] = -1;
    for (let q = 0; q < k; q++) {
      const j = chosen[q];
      const vo = j * rank;
      let dot = 0;
      for (let f = 0; f < rank; f++) dot += u[f] * v[vo + f];
      const val = dot + noise * rng.nextGaussian();
      if (isTestRating(seed, i, j, testFraction)) test.push(i, j, val);
      else train.push(i, j, val);
    }
  }
  return { train: train.finish(), test: test.finish() };
}

// ---------------------------------------------------------------------------------------------
// File readers
// ---------------------------------------------------------------------------------------------

/** Format of a rating file. */
export type RatingsFormat = "mm" | "csv" | "tsv";

/** Options of {@linkcode readRatingsFile}. */
export interface ReadOptions {
  /** File format; default from the extension (.mtx/.mm: mm, .tsv: tsv, else csv) or content. */
  format?: RatingsFormat;
  /** CSV/TSV field delimiter: "auto" (default: tab, comma, semicolon or whitespace) or a string. */
  delimiter?: string;
  /** CSV/TSV: whether indices start at 0 or 1 (default 0). MatrixMarket is always 1-based. */
  indexBase?: 0 | 1;
  /** Number of rows and columns of the matrix (indices must be below them, after the base). */
  rows: number;
  cols: number;
  /** Fraction of ratings in the test set, by a hash of (splitSeed, row, col). Default 0.1. */
  testFraction?: number;
  /** Seed of the test split hash (default 0: the split is a property of the file). */
  splitSeed?: number;
  /** Keep only row block `block` of `blocks` (default: everything). */
  block?: number;
  blocks?: number;
  /**
   * Ids that are names (CSV/TSV): keys in order of first appearance in the file (the same on
   * every worker, since each reads the whole file). `add: false` (a test file): an unknown name
   * skips its rating (counted in `skipped`).
   */
  names?: { rows: Map<string, number>; cols: Map<string, number>; add: boolean };
}

/** What {@linkcode readRatingsFile} returns. */
export interface ReadResult extends RatingsSplit {
  /** Ratings in the whole file (all blocks). */
  total: number;
  /** The MatrixMarket header's size line (mm only). */
  header?: { rows: number; cols: number; nnz: number };
  /** Ratings skipped for an unknown name (only with `names.add: false`). */
  skipped: number;
}

/** Infers a file's format from its name. */
export function formatFromName(path: string): RatingsFormat {
  const p = path.toLowerCase();
  if (p.endsWith(".mtx") || p.endsWith(".mm")) return "mm";
  if (p.endsWith(".tsv") || p.endsWith(".tab")) return "tsv";
  return "csv";
}

/**
 * Calls `onLine(line, lineNo)` for every line of a file (1-based line numbers, without the line
 * break and a trailing `\r`), reading it in chunks so that large files never sit in memory.
 */
export async function forEachLine(
  path: string,
  onLine: (line: string, lineNo: number) => void,
  chunkBytes = 1 << 20,
): Promise<number> {
  const file = await Deno.open(path, { read: true });
  const decoder = new TextDecoder("utf-8");
  const buf = new Uint8Array(chunkBytes);
  let carry = "";
  let lineNo = 0;
  try {
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      const text = carry + decoder.decode(buf.subarray(0, n), { stream: true });
      let start = 0;
      for (;;) {
        const nl = text.indexOf("\n", start);
        if (nl < 0) break;
        let end = nl;
        if (end > start && text.charCodeAt(end - 1) === 13) end--;
        onLine(text.slice(start, end), ++lineNo);
        start = nl + 1;
      }
      carry = text.slice(start);
    }
    carry += decoder.decode();
    if (carry.length > 0) {
      if (carry.charCodeAt(carry.length - 1) === 13) carry = carry.slice(0, -1);
      onLine(carry, ++lineNo);
    }
  } finally {
    file.close();
  }
  return lineNo;
}

const WS = /\s+/;

function detectDelimiter(line: string): string {
  if (line.includes("\t")) return "\t";
  if (line.includes(",")) return ",";
  if (line.includes(";")) return ";";
  return " ";
}

function splitFields(line: string, delim: string): string[] {
  return delim === " " ? line.trim().split(WS) : line.split(delim);
}

/** Parses a field as a number; NaN when it is not one (empty and non-numeric text included). */
function num(s: string): number {
  const t = s.trim();
  return t.length === 0 ? NaN : Number(t);
}

/**
 * Reads a rating file line by line and keeps the ratings whose row is in row block `block` of
 * `blocks`, split into train and test by a hash of the rating.
 *
 * - MatrixMarket: `%%MatrixMarket matrix coordinate real|integer general`, `%` comments, a size
 *   line `rows cols nnz`, then `row col value` lines, 1-based. The size must fit `rows`/`cols`
 *   and the number of entries must match the size line.
 * - CSV/TSV: `row<delim>col<delim>value[<delim>anything...]` per line; `#` comments and empty
 *   lines are skipped; a first line whose first field is not a number is a header and skipped.
 *
 * Throws an `Error` naming the file and line for a malformed line or an index out of range.
 */
export async function readRatingsFile(path: string, opts: ReadOptions): Promise<ReadResult> {
  const { rows, cols } = opts;
  const blocks = opts.blocks ?? 1;
  const block = opts.block ?? 0;
  const testFraction = opts.testFraction ?? 0.1;
  const splitSeed = opts.splitSeed ?? 0;
  const r0 = blockStart(block, rows, blocks);
  const r1 = blockStart(block + 1, rows, blocks);
  let format = opts.format;
  const train = new RatingsBuilder(1 << 12);
  const test = new RatingsBuilder(1 << 10);
  let total = 0;
  let header: ReadResult["header"];
  let sawBanner = false;
  let sawData = false;
  let delim = opts.delimiter && opts.delimiter !== "auto" ? opts.delimiter : "";
  let base = opts.indexBase ?? 0;
  const names = opts.names;
  let skipped = 0;
  const nameKey = (map: Map<string, number>, name: string, n: number, what: string): number => {
    let key = map.get(name);
    if (key === undefined) {
      if (!names!.add) return -1;
      key = map.size;
      if (key >= n) {
        throw new RangeError(
          `${path}: more than ${n} distinct ${what} ids (data.${what}s is ${n}; leave it out to count them)`,
        );
      }
      map.set(name, key);
    }
    return key;
  };

  const fail = (lineNo: number, msg: string, line: string): never => {
    throw new Error(`${path}:${lineNo}: ${msg} (line: ${excerpt(line)})`);
  };

  const add = (fields: string[], lineNo: number, line: string) => {
    if (fields.length < 3) {
      fail(lineNo, `expected 3 fields 'row col value', got ${fields.length}`, line);
    }
    if (names !== undefined) {
      const v = num(fields[2]);
      if (!Number.isFinite(v)) fail(lineNo, `value is not a finite number`, line);
      const r = nameKey(names.rows, fields[0].trim(), rows, "row");
      const c = nameKey(names.cols, fields[1].trim(), cols, "col");
      if (r < 0 || c < 0) {
        skipped++;
        return;
      }
      total++;
      if (r < r0 || r >= r1) return;
      if (isTestRating(splitSeed, r, c, testFraction)) test.push(r, c, v);
      else train.push(r, c, v);
      return;
    }
    const ri = num(fields[0]), ci = num(fields[1]), v = num(fields[2]);
    if (!Number.isInteger(ri) || !Number.isInteger(ci)) {
      fail(
        lineNo,
        `row and column must be integers (ids that are names need data.ids: names)`,
        line,
      );
    }
    if (!Number.isFinite(v)) fail(lineNo, `value is not a finite number`, line);
    const r = ri - base, c = ci - base;
    if (r < 0 || r >= rows) {
      fail(lineNo, `row ${ri} out of range ${base}..${rows - 1 + base} (index base ${base})`, line);
    }
    if (c < 0 || c >= cols) {
      fail(
        lineNo,
        `column ${ci} out of range ${base}..${cols - 1 + base} (index base ${base})`,
        line,
      );
    }
    total++;
    if (r < r0 || r >= r1) return;
    if (isTestRating(splitSeed, r, c, testFraction)) test.push(r, c, v);
    else train.push(r, c, v);
  };

  await forEachLine(path, (line, lineNo) => {
    if (lineNo === 1 && format === undefined) {
      format = line.startsWith("%%MatrixMarket") ? "mm" : formatFromName(path);
    }
    if (format === "mm") {
      if (lineNo === 1) {
        const h = line.trim().toLowerCase().split(WS);
        if (h[0] !== "%%matrixmarket") {
          fail(
            lineNo,
            `not a MatrixMarket file: the first line must start with %%MatrixMarket`,
            line,
          );
        }
        if (h[1] !== "matrix" || h[2] !== "coordinate") {
          fail(lineNo, `only 'matrix coordinate' MatrixMarket files are supported`, line);
        }
        if (h[3] !== "real" && h[3] !== "integer") {
          fail(lineNo, `only 'real' or 'integer' MatrixMarket values are supported`, line);
        }
        if (h[4] !== "general") {
          fail(lineNo, `only 'general' MatrixMarket files are supported`, line);
        }
        sawBanner = true;
        base = 1;
        return;
      }
      if (line.startsWith("%")) return;
      const t = line.trim();
      if (t.length === 0) return;
      const f = t.split(WS);
      if (header === undefined) {
        const hr = num(f[0]), hc = num(f[1]), hn = num(f[2]);
        if (f.length !== 3 || ![hr, hc, hn].every((x) => Number.isInteger(x) && x >= 0)) {
          fail(lineNo, `expected the size line 'rows cols entries'`, line);
        }
        if (hr > rows || hc > cols) {
          fail(
            lineNo,
            `matrix is ${hr} x ${hc}, larger than the configured ${rows} x ${cols}`,
            line,
          );
        }
        header = { rows: hr, cols: hc, nnz: hn };
        return;
      }
      add(f, lineNo, line);
      return;
    }
    // CSV / TSV
    const t = line.trim();
    if (t.length === 0 || t.startsWith("#")) return;
    if (delim === "") delim = format === "tsv" ? "\t" : detectDelimiter(t);
    const f = splitFields(t, delim);
    if (!sawData) {
      sawData = true;
      // A header line: its id (or, with names, its value) is not a number.
      if (Number.isNaN(num(f[names !== undefined ? 2 : 0]))) return;
    }
    add(f, lineNo, line);
  });

  if (format === "mm") {
    if (!sawBanner) throw new Error(`${path}: empty file, expected a MatrixMarket header`);
    if (header === undefined) throw new Error(`${path}: MatrixMarket file has no size line`);
    if (total !== header.nnz) {
      throw new Error(`${path}: the size line declares ${header.nnz} entries, found ${total}`);
    }
  }
  const out: ReadResult = { train: train.finish(), test: test.finish(), total, header, skipped };
  if (names?.add) {
    out.rowNames = [...names.rows.keys()];
    out.colNames = [...names.cols.keys()];
  }
  return out;
}

/** What {@linkcode scanRatingsFile} finds. */
export interface RatingsScan {
  /** Rows and columns: the MatrixMarket size line, the largest id + 1 - base, or the names. */
  rows: number;
  cols: number;
  /** Whether the ids are numbers or names (CSV/TSV; MatrixMarket ids are numbers). */
  ids: "numbers" | "names";
  ratings: number;
}

/**
 * Reads a rating file once to find its size when the config does not give it: a MatrixMarket
 * file's size line, else the largest row and column id (`ids: numbers`) or the number of
 * distinct names (`ids: names`). `ids: "auto"`: names if the first data line's ids are not
 * both integers.
 */
export async function scanRatingsFile(
  path: string,
  opts: {
    format?: RatingsFormat;
    delimiter?: string;
    indexBase?: 0 | 1;
    ids?: "auto" | "numbers" | "names";
  } = {},
): Promise<RatingsScan> {
  let format = opts.format;
  let delim = opts.delimiter && opts.delimiter !== "auto" ? opts.delimiter : "";
  let ids = opts.ids ?? "auto";
  const base = opts.indexBase ?? 0;
  let maxRow = -1, maxCol = -1, ratings = 0, sawData = false;
  let mm: RatingsScan | null = null;
  const rowNames = new Set<string>(), colNames = new Set<string>();
  const STOP = {};
  try {
    await forEachLine(path, (line, lineNo) => {
      if (lineNo === 1 && format === undefined) {
        format = line.startsWith("%%MatrixMarket") ? "mm" : formatFromName(path);
      }
      if (format === "mm") {
        const t = line.trim();
        if (t.length === 0 || t.startsWith("%")) return;
        const f = t.split(WS).map(num);
        if (f.length !== 3 || !f.every((x) => Number.isInteger(x) && x >= 0)) {
          throw new Error(`${path}:${lineNo}: expected the size line 'rows cols entries'`);
        }
        mm = { rows: f[0], cols: f[1], ids: "numbers", ratings: f[2] };
        throw STOP;
      }
      const t = line.trim();
      if (t.length === 0 || t.startsWith("#")) return;
      if (delim === "") delim = format === "tsv" ? "\t" : detectDelimiter(t);
      const f = splitFields(t, delim);
      if (f.length < 3) {
        throw new Error(`${path}:${lineNo}: expected 3 fields 'row col value', got ${f.length}`);
      }
      if (!sawData) {
        sawData = true;
        if (Number.isNaN(num(f[2]))) return; // a header line
      }
      if (ids === "auto") {
        ids = Number.isInteger(num(f[0])) && Number.isInteger(num(f[1])) ? "numbers" : "names";
      }
      ratings++;
      if (ids === "names") {
        rowNames.add(f[0].trim());
        colNames.add(f[1].trim());
        return;
      }
      const r = num(f[0]), c = num(f[1]);
      if (!Number.isInteger(r) || !Number.isInteger(c) || r < base || c < base) {
        throw new Error(
          `${path}:${lineNo}: ids must be integers >= ${base} (index base ${base}; ids that ` +
            `are names need data.ids: names) (line: ${excerpt(line)})`,
        );
      }
      if (r > maxRow) maxRow = r;
      if (c > maxCol) maxCol = c;
    });
  } catch (e) {
    if (e !== STOP) throw e;
  }
  if (mm !== null) return mm;
  if (ids === "names") {
    return { rows: rowNames.size, cols: colNames.size, ids: "names", ratings };
  }
  return {
    rows: maxRow + 1 - base,
    cols: maxCol + 1 - base,
    ids: "numbers",
    ratings,
  };
}
