/**
 * Data for knowledge-graph embeddings: triple file readers (names or integer ids), a synthetic
 * Zipf graph generator, the relation-to-worker assignment of data clustering, and the index of
 * known triples used by filtered evaluation.
 *
 * Triples are parallel `Uint32Array`s (`heads`, `rels`, `tails`), never arrays of objects.
 *
 * File layouts (see data/README.md), in one directory:
 *
 * - names: `train.txt`, `valid.txt`, `test.txt` (or `.tsv`), one `head<TAB>relation<TAB>tail`
 *   per line. Entity and relation ids are the positions of the names in sorted order over
 *   train (so every node builds the same dictionaries); a valid/test line naming an entity or
 *   relation that is not in train is an error naming the file and line.
 * - ids (LibKGE `.del`): `train.del`, `valid.del`, `test.del`, one `s<TAB>p<TAB>o` of integer
 *   ids per line; optional `entity_ids.del` / `relation_ids.del` (`id<TAB>name`) give the counts
 *   and names (else counts are 1 + the largest id in train).
 *
 * @module
 */
import { hash32, Rng } from "../core/rng.ts";
import { userError } from "../core/errors.ts";

/** Triples as parallel arrays. */
export interface Triples {
  heads: Uint32Array;
  rels: Uint32Array;
  tails: Uint32Array;
}

/** A loaded graph: sizes, optional names, and the three splits. */
export interface KgData {
  entities: number;
  relations: number;
  /** Entity names by id (files with names, or `entity_ids.del`). */
  entityNames?: string[];
  relationNames?: string[];
  train: Triples;
  valid: Triples;
  test: Triples;
}

/** Triple files of one directory, as found by {@linkcode findKgFiles}. */
export interface KgFiles {
  format: "names" | "ids";
  train: string;
  valid?: string;
  test?: string;
  entityIds?: string;
  relationIds?: string;
}

/** Largest triple file read (fail loudly instead of running out of memory). */
export const TRIPLE_FILE_BYTES_MAX = 1 << 30;

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Finds the split files of `dir` in the given or detected format. */
export function findKgFiles(dir: string, format?: "names" | "ids"): KgFiles {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(dir);
  } catch {
    throw userError(
      `kge: data directory "${dir}" not found (set data.dir; make one with lapse data wordnet --out DIR)`,
    );
  }
  if (!st.isDirectory) throw userError(`kge: data.dir "${dir}" is not a directory`);
  const pick = (base: string, exts: string[]) => exts.map((e) => `${dir}/${base}${e}`).find(exists);
  const fmt = format ?? (pick("train", [".del"]) ? "ids" : "names");
  const exts = fmt === "ids" ? [".del"] : [".txt", ".tsv"];
  const train = pick("train", exts);
  if (train === undefined) {
    throw userError(
      `kge: no train${exts.join(" or train")} in "${dir}" (data.format ${fmt}; see data/README.md)`,
    );
  }
  return {
    format: fmt,
    train,
    valid: pick("valid", exts),
    test: pick("test", exts),
    entityIds: fmt === "ids" ? pick("entity_ids", [".del"]) : undefined,
    relationIds: fmt === "ids" ? pick("relation_ids", [".del"]) : undefined,
  };
}

function readText(path: string): string {
  const size = Deno.statSync(path).size;
  if (size > TRIPLE_FILE_BYTES_MAX) {
    throw userError(`kge: ${path} has ${size} bytes, more than the limit ${TRIPLE_FILE_BYTES_MAX}`);
  }
  return Deno.readTextFileSync(path);
}

/** Calls `fn(fields, lineNo, line)` for each non-empty line, split at tabs. */
function eachLine(text: string, fn: (f: string[], lineNo: number, line: string) => void): void {
  let start = 0, lineNo = 0;
  while (start <= text.length) {
    let nl = text.indexOf("\n", start);
    if (nl < 0) nl = text.length;
    lineNo++;
    let line = text.slice(start, nl);
    if (line.endsWith("\r")) line = line.slice(0, -1);
    start = nl + 1;
    if (line.trim().length === 0) continue;
    fn(line.split("\t"), lineNo, line);
  }
}

function lineError(path: string, lineNo: number, problem: string, line: string): Error {
  const shown = line.length > 80 ? line.slice(0, 77) + "..." : line;
  return userError(`${path}:${lineNo}: ${problem} (line: ${JSON.stringify(shown)})`);
}

function threeFields(path: string, f: string[], lineNo: number, line: string, what: string) {
  if (f.length !== 3) {
    throw lineError(
      path,
      lineNo,
      `expected 3 tab-separated fields ${what}, got ${f.length}`,
      line,
    );
  }
}

/** Growable triple builder. */
class TripleBuilder {
  private h = new Uint32Array(1024);
  private r = new Uint32Array(1024);
  private t = new Uint32Array(1024);
  n = 0;
  push(h: number, r: number, t: number): void {
    if (this.n === this.h.length) {
      const grow = (a: Uint32Array) => {
        const b = new Uint32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.h = grow(this.h);
      this.r = grow(this.r);
      this.t = grow(this.t);
    }
    this.h[this.n] = h;
    this.r[this.n] = r;
    this.t[this.n++] = t;
  }
  finish(): Triples {
    return {
      heads: this.h.slice(0, this.n),
      rels: this.r.slice(0, this.n),
      tails: this.t.slice(0, this.n),
    };
  }
}

function emptyTriples(): Triples {
  return { heads: new Uint32Array(0), rels: new Uint32Array(0), tails: new Uint32Array(0) };
}

function sortedNames(set: Set<string>): string[] {
  return [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Reads a names directory: dictionaries from train (sorted), then the three splits. */
function readNames(files: KgFiles): KgData {
  const trainText = readText(files.train);
  const ents = new Set<string>(), rels = new Set<string>();
  eachLine(trainText, (f, lineNo, line) => {
    threeFields(files.train, f, lineNo, line, "head<TAB>relation<TAB>tail");
    for (const x of f) {
      if (x.length === 0) throw lineError(files.train, lineNo, "an empty field", line);
    }
    ents.add(f[0]);
    rels.add(f[1]);
    ents.add(f[2]);
  });
  const entityNames = sortedNames(ents), relationNames = sortedNames(rels);
  const eId = new Map(entityNames.map((n, i) => [n, i]));
  const rId = new Map(relationNames.map((n, i) => [n, i]));
  const parse = (path: string | undefined, text?: string): Triples => {
    if (path === undefined) return emptyTriples();
    const b = new TripleBuilder();
    eachLine(text ?? readText(path), (f, lineNo, line) => {
      threeFields(path, f, lineNo, line, "head<TAB>relation<TAB>tail");
      const h = eId.get(f[0]), r = rId.get(f[1]), t = eId.get(f[2]);
      if (h === undefined || t === undefined) {
        throw lineError(
          path,
          lineNo,
          `unknown entity "${
            h === undefined ? f[0] : f[2]
          }": valid and test entities must occur in train`,
          line,
        );
      }
      if (r === undefined) {
        throw lineError(
          path,
          lineNo,
          `unknown relation "${f[1]}": valid and test relations must occur in train`,
          line,
        );
      }
      b.push(h, r, t);
    });
    return b.finish();
  };
  return {
    entities: entityNames.length,
    relations: relationNames.length,
    entityNames,
    relationNames,
    train: parse(files.train, trainText),
    valid: parse(files.valid),
    test: parse(files.test),
  };
}

function readDict(path: string): string[] {
  const names: string[] = [];
  eachLine(readText(path), (f, lineNo, line) => {
    const id = Number(f[0]);
    if (f.length < 2 || !Number.isInteger(id) || id < 0) {
      throw lineError(path, lineNo, `expected id<TAB>name`, line);
    }
    if (id !== names.length) {
      throw lineError(path, lineNo, `expected id ${names.length} (ids in order from 0)`, line);
    }
    names.push(f.slice(1).join("\t"));
  });
  return names;
}

/** Reads a `.del` directory (integer ids). */
function readIds(files: KgFiles): KgData {
  const entityNames = files.entityIds ? readDict(files.entityIds) : undefined;
  const relationNames = files.relationIds ? readDict(files.relationIds) : undefined;
  const parse = (path: string | undefined, maxE: number, maxR: number): Triples => {
    if (path === undefined) return emptyTriples();
    const b = new TripleBuilder();
    eachLine(readText(path), (f, lineNo, line) => {
      threeFields(path, f, lineNo, line, "s<TAB>p<TAB>o of integer ids");
      const h = Number(f[0]), r = Number(f[1]), t = Number(f[2]);
      for (const x of [h, r, t]) {
        if (!Number.isInteger(x) || x < 0 || x >= 2 ** 32 || f.some((s) => s.trim() === "")) {
          throw lineError(path, lineNo, `ids must be integers >= 0`, line);
        }
      }
      if (h >= maxE || t >= maxE) {
        throw lineError(
          path,
          lineNo,
          `unknown entity ${h >= maxE ? h : t} (${maxE} entities${
            files.entityIds ? ` in ${files.entityIds}` : " in train"
          })`,
          line,
        );
      }
      if (r >= maxR) {
        throw lineError(
          path,
          lineNo,
          `unknown relation ${r} (${maxR} relations${
            files.relationIds ? ` in ${files.relationIds}` : " in train"
          })`,
          line,
        );
      }
      b.push(h, r, t);
    });
    return b.finish();
  };
  const train = parse(
    files.train,
    entityNames?.length ?? 2 ** 32,
    relationNames?.length ?? 2 ** 32,
  );
  let maxE = 0, maxR = 0;
  for (let i = 0; i < train.heads.length; i++) {
    maxE = Math.max(maxE, train.heads[i] + 1, train.tails[i] + 1);
    maxR = Math.max(maxR, train.rels[i] + 1);
  }
  const entities = entityNames?.length ?? maxE, relations = relationNames?.length ?? maxR;
  return {
    entities,
    relations,
    entityNames,
    relationNames,
    train,
    valid: parse(files.valid, entities, relations),
    test: parse(files.test, entities, relations),
  };
}

/** Reads the graph in `dir` (format detected unless given). Throws user errors with file:line. */
export function readKgDir(dir: string, format?: "names" | "ids"): KgData {
  const files = findKgFiles(dir, format);
  const data = files.format === "names" ? readNames(files) : readIds(files);
  if (data.train.heads.length === 0) throw userError(`kge: ${files.train} has no triples`);
  return data;
}

/**
 * The numbers of entities and relations of the graph in `dir`, as {@linkcode readKgDir} gives
 * them, without building the dictionaries and triples (what a node's server thread needs to size
 * its tables; WordNet: ~150 instead of ~380 ms, during which the thread answers nobody). Names:
 * one scan of the train file into sets, then the valid/test names looked up. Anything unusual (a
 * line without exactly three non-empty fields, an unknown name, no triple, the ids format) goes
 * to {@linkcode readKgDir}, which throws the usual error naming file and line (or returns the sizes).
 */
export function kgDirSize(dir: string, format?: "names" | "ids"): {
  entities: number;
  relations: number;
} {
  const full = () => {
    const d = readKgDir(dir, format);
    return { entities: d.entities, relations: d.relations };
  };
  const files = findKgFiles(dir, format);
  if (files.format !== "names") return full();
  const ents = new Set<string>(), rels = new Set<string>();
  let ok = scanTriples(readText(files.train), (h, r, t) => {
    ents.add(h);
    rels.add(r);
    ents.add(t);
    return true;
  });
  const known = (h: string, r: string, t: string) => ents.has(h) && rels.has(r) && ents.has(t);
  for (const path of [files.valid, files.test]) {
    if (ok && path !== undefined) ok = scanTriples(readText(path), known);
  }
  if (!ok || rels.size === 0) return full();
  return { entities: ents.size, relations: rels.size };
}

/**
 * Calls `fn(head, relation, tail)` for each line of `head<TAB>relation<TAB>tail` (blank lines
 * skipped, as {@linkcode readKgDir} does); false at the first other line or when `fn` is false.
 */
function scanTriples(text: string, fn: (h: string, r: string, t: string) => boolean): boolean {
  for (let start = 0; start < text.length;) {
    let nl = text.indexOf("\n", start);
    if (nl < 0) nl = text.length;
    let end = nl;
    if (end > start && text.charCodeAt(end - 1) === 13) end--;
    const line = start;
    start = nl + 1;
    const c0 = text.charCodeAt(line);
    if ((line === end || c0 <= 32 || c0 >= 127) && text.slice(line, end).trim().length === 0) {
      continue;
    }
    const a = text.indexOf("\t", line);
    const b = a < 0 || a >= end ? -1 : text.indexOf("\t", a + 1);
    if (b < 0 || b >= end) return false; // fewer than three fields
    const c = text.indexOf("\t", b + 1);
    if (c >= 0 && c < end) return false; // more than three
    if (a === line || b === a + 1 || b + 1 === end) return false; // an empty field
    if (!fn(text.slice(line, a), text.slice(a + 1, b), text.slice(b + 1, end))) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Synthetic graphs
// ---------------------------------------------------------------------------------------------

/** `data.generate`: a synthetic graph with Zipf-distributed entity and relation frequencies. */
export interface KgGenerateConfig {
  entities: number;
  relations: number;
  /** Training triples (all workers together). */
  triples: number;
  /** Zipf exponent of entity frequencies (0 = uniform). */
  zipf_entities: number;
  /** Zipf exponent of relation frequencies. */
  zipf_relations: number;
  /** Held-out triples (generated apart, same distribution). */
  valid: number;
  test: number;
  seed: number;
}

/** Checks a generator config; throws a `RangeError` naming the key. */
export function checkKgGenerate(g: KgGenerateConfig): void {
  const int = (k: keyof KgGenerateConfig, min: number, max: number) => {
    const v = g[k];
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new RangeError(
        `kge: data.generate.${k} must be an integer from ${min} to ${max}, got ${v}`,
      );
    }
  };
  int("entities", 2, 1 << 26);
  int("relations", 1, 1 << 20);
  int("triples", 1, 2 ** 31);
  int("valid", 0, 1 << 24);
  int("test", 0, 1 << 24);
  for (const k of ["zipf_entities", "zipf_relations"] as const) {
    if (!(g[k] >= 0 && g[k] <= 4)) {
      throw new RangeError(`kge: data.generate.${k} must be from 0 to 4, got ${g[k]}`);
    }
  }
}

/** Cumulative Zipf distribution over n ranks (`cdf[n-1] = 1`). */
function zipfCdf(n: number, s: number): Float64Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, s);
  for (let k = 0; k < n; k++) cdf[k] /= sum;
  cdf[n - 1] = 1;
  return cdf;
}

function sampleCdf(cdf: Float64Array, u: number): number {
  let lo = 0, hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Triples per relation: `total` split by Zipf(s) over relations, largest remainders first,
 * deterministic. Relation ids are ranks scrambled (so rank 0 is not relation 0).
 */
export function relationCounts(relations: number, total: number, s: number): Float64Array {
  const cdf = zipfCdf(relations, s);
  const counts = new Float64Array(relations);
  const rem: [number, number][] = [];
  let given = 0;
  for (let k = 0; k < relations; k++) {
    const p = cdf[k] - (k > 0 ? cdf[k - 1] : 0);
    const c = Math.floor(p * total);
    counts[k] = c;
    given += c;
    rem.push([p * total - c, k]);
  }
  rem.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let i = 0; given < total; i++, given++) counts[rem[i % relations][1]]++;
  return counts;
}

/** The deterministic triple generator of a {@linkcode KgGenerateConfig}. */
export class KgGenerator {
  readonly counts: Float64Array;
  private readonly cdf: Float64Array;
  private readonly mult: number;
  private readonly rng = new Rng(0);

  constructor(readonly cfg: KgGenerateConfig) {
    checkKgGenerate(cfg);
    this.counts = relationCounts(cfg.relations, cfg.triples, cfg.zipf_relations);
    this.cdf = zipfCdf(cfg.entities, cfg.zipf_entities);
    // Entity id = rank * mult mod entities (a bijection): frequent entities are spread over the
    // id range, so that no node's home range holds all hot keys.
    let m = Math.floor(cfg.entities * 0.6180339887) | 1;
    while (gcd(m, cfg.entities) !== 1) m += 2;
    this.mult = m;
  }

  private entity(u: number): number {
    const rank = sampleCdf(this.cdf, u);
    // rank * mult < 2^26 * 2^26: exact in a double.
    return (rank * this.mult) % this.cfg.entities;
  }

  /**
   * Triple `j` of relation `r` of stream `stream` (0 train, 1 valid, 2 test) into `out` at `i`.
   * Pure: the same triple on every worker.
   */
  triple(stream: number, r: number, j: number, out: Triples, i: number): void {
    this.rng.reseed(hash32(this.cfg.seed + stream * 0x3c6ef372, r, j));
    out.heads[i] = this.entity(this.rng.nextFloat());
    out.rels[i] = r;
    out.tails[i] = this.entity(this.rng.nextFloat());
  }

  /** The training triples of the relations for which `want(r)` is true (all by default). */
  train(want: (r: number) => boolean = () => true, part?: { w: number; n: number }): Triples {
    let n = 0;
    for (let r = 0; r < this.cfg.relations; r++) {
      if (!want(r)) continue;
      n += part ? Math.max(0, Math.ceil((this.counts[r] - part.w) / part.n)) : this.counts[r];
    }
    const out: Triples = {
      heads: new Uint32Array(n),
      rels: new Uint32Array(n),
      tails: new Uint32Array(n),
    };
    let i = 0;
    for (let r = 0; r < this.cfg.relations; r++) {
      if (!want(r)) continue;
      const c = this.counts[r];
      for (let j = part ? part.w : 0; j < c; j += part ? part.n : 1) this.triple(0, r, j, out, i++);
    }
    return out;
  }

  /** Held-out triples (stream 1 valid, 2 test): relation by the same Zipf law. */
  heldOut(stream: 1 | 2): Triples {
    const n = stream === 1 ? this.cfg.valid : this.cfg.test;
    const counts = relationCounts(this.cfg.relations, n, this.cfg.zipf_relations);
    const out: Triples = {
      heads: new Uint32Array(n),
      rels: new Uint32Array(n),
      tails: new Uint32Array(n),
    };
    let i = 0;
    for (let r = 0; r < this.cfg.relations; r++) {
      for (let j = 0; j < counts[r]; j++) this.triple(stream, r, j, out, i++);
    }
    return out;
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

// ---------------------------------------------------------------------------------------------
// Data clustering and filtering
// ---------------------------------------------------------------------------------------------

/**
 * Data clustering: assigns relations to workers greedily by triple count (largest first, each
 * to the least loaded worker; ties by lower id), so that workers get similar numbers of
 * triples. Returns the worker of each relation.
 */
export function assignRelations(counts: ArrayLike<number>, workers: number): Int32Array {
  const order = Array.from({ length: counts.length }, (_, r) => r);
  order.sort((a, b) => counts[b] - counts[a] || a - b);
  const load = new Float64Array(workers);
  const owner = new Int32Array(counts.length);
  for (const r of order) {
    let best = 0;
    for (let w = 1; w < workers; w++) if (load[w] < load[best]) best = w;
    owner[r] = best;
    load[best] += counts[r];
  }
  return owner;
}

/**
 * Shared hot entities: the `hot` entities that occur most often in the training triples `all`
 * (heads and tails; ties by lower id) and, for each, the worker whose triples use it most (ties:
 * the lower worker). `workerOf(i)` is the worker that trains triple `i`. Returns, per entity,
 * that worker, or -1 for the entities that are not hot.
 */
export function hotEntityOwners(
  all: Triples,
  entities: number,
  workers: number,
  hot: number,
  workerOf: (i: number) => number,
): Int32Array {
  const owner = new Int32Array(entities).fill(-1);
  const h = Math.min(hot, entities);
  if (h <= 0) return owner;
  const count = new Uint32Array(entities);
  const n = all.heads.length;
  for (let i = 0; i < n; i++) {
    count[all.heads[i]]++;
    count[all.tails[i]]++;
  }
  // The h largest counts (a counting pass over the count values, then ids in order).
  let max = 0;
  for (let e = 0; e < entities; e++) if (count[e] > max) max = count[e];
  const atLeast = new Float64Array(max + 2);
  for (let e = 0; e < entities; e++) atLeast[count[e]]++;
  for (let c = max - 1; c >= 0; c--) atLeast[c] += atLeast[c + 1];
  let cut = max;
  while (cut > 0 && atLeast[cut] < h) cut--;
  // Entities above `cut` are all hot; of those at `cut`, the lowest ids up to h in all.
  let room = h - (cut < max ? atLeast[cut + 1] : 0);
  const idx = new Int32Array(entities).fill(-1);
  let k = 0;
  for (let e = 0; e < entities; e++) {
    if (count[e] > cut || (count[e] === cut && cut > 0 && room-- > 0)) idx[e] = k++;
  }
  const perWorker = new Uint32Array(k * workers);
  for (let i = 0; i < n; i++) {
    const w = workerOf(i);
    const a = idx[all.heads[i]], b = idx[all.tails[i]];
    if (a >= 0) perWorker[a * workers + w]++;
    if (b >= 0) perWorker[b * workers + w]++;
  }
  for (let e = 0; e < entities; e++) {
    const a = idx[e];
    if (a < 0) continue;
    let best = 0;
    for (let w = 1; w < workers; w++) {
      if (perWorker[a * workers + w] > perWorker[a * workers + best]) best = w;
    }
    owner[e] = best;
  }
  return owner;
}

/** Triple counts per relation. */
export function countRelations(t: Triples, relations: number): Float64Array {
  const c = new Float64Array(relations);
  for (let i = 0; i < t.rels.length; i++) c[t.rels[i]]++;
  return c;
}

/** The triples `i` of `t` for which `keep(i)` is true. */
export function selectTriples(t: Triples, keep: (i: number) => boolean): Triples {
  const b = new TripleBuilder();
  for (let i = 0; i < t.heads.length; i++) if (keep(i)) b.push(t.heads[i], t.rels[i], t.tails[i]);
  return b.finish();
}

/** Shuffles triples `[0, n)` in place (Fisher-Yates with `rng`). */
export function shuffleTriples(t: Triples, rng: Rng): void {
  const h = t.heads, r = t.rels, o = t.tails;
  for (let i = h.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    let x = h[i];
    h[i] = h[j];
    h[j] = x;
    x = r[i];
    r[i] = r[j];
    r[j] = x;
    x = o[i];
    o[i] = o[j];
    o[j] = x;
  }
}

/**
 * The evaluation sample: all of `t` if it has at most `max` triples (`max` 0 = no cap), else
 * the evenly spaced triples `floor(i * n / max)` for i < max (deterministic, spread over the
 * file).
 */
export function evalSample(t: Triples, max: number): Triples {
  const n = t.heads.length;
  if (max <= 0 || n <= max) return t;
  const picked = new Set<number>();
  for (let i = 0; i < max; i++) picked.add(Math.floor((i * n) / max));
  return selectTriples(t, (i) => picked.has(i));
}

/**
 * The known answers of a set of queries, for filtered ranking: for tail queries `(s, r, ?)` the
 * entities `o` with `(s, r, o)` known, for head queries `(?, r, o)` the `s` with `(s, r, o)`
 * known. Built by one scan over all known triples; lists sorted by entity id.
 */
export class FilterIndex {
  /** CSR over query groups: answers of group g are `answers[start[g] .. start[g+1])`. */
  readonly start: Int32Array;
  readonly answers: Uint32Array;
  /** The group of each tail query (index q) and head query. */
  readonly tailGroup: Int32Array;
  readonly headGroup: Int32Array;

  constructor(queries: Triples, relations: number, known: Triples[]) {
    const groups = new Map<number, number>();
    const nq = queries.heads.length;
    this.tailGroup = new Int32Array(nq);
    this.headGroup = new Int32Array(nq);
    const group = (key: number) => {
      let g = groups.get(key);
      if (g === undefined) groups.set(key, g = groups.size);
      return g;
    };
    // Keys: tail queries (s*R + r)*2, head queries (o*R + r)*2 + 1 (below 2^53).
    for (let q = 0; q < nq; q++) {
      this.tailGroup[q] = group((queries.heads[q] * relations + queries.rels[q]) * 2);
      this.headGroup[q] = group((queries.tails[q] * relations + queries.rels[q]) * 2 + 1);
    }
    const G = groups.size;
    const count = new Int32Array(G + 1);
    const scan = (fn: (g: number, e: number) => void) => {
      for (const t of known) {
        for (let i = 0; i < t.heads.length; i++) {
          const s = t.heads[i], r = t.rels[i], o = t.tails[i];
          const gt = groups.get((s * relations + r) * 2);
          if (gt !== undefined) fn(gt, o);
          const gh = groups.get((o * relations + r) * 2 + 1);
          if (gh !== undefined) fn(gh, s);
        }
      }
    };
    scan((g) => count[g + 1]++);
    for (let g = 0; g < G; g++) count[g + 1] += count[g];
    const all = new Uint32Array(count[G]);
    const fill = count.slice(0, G);
    scan((g, e) => (all[fill[g]++] = e));
    // Sorted, duplicates (a triple listed twice) removed: each answer is filtered once.
    this.start = new Int32Array(G + 1);
    let n = 0;
    for (let g = 0; g < G; g++) {
      const list = all.subarray(count[g], count[g + 1]).sort();
      for (let i = 0; i < list.length; i++) {
        if (i === 0 || list[i] !== list[i - 1]) all[n++] = list[i];
      }
      this.start[g + 1] = n;
    }
    this.answers = all.slice(0, n);
  }
}
