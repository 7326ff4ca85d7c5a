/**
 * `lapse similar WORD...`: the nearest neighbours of words by cosine similarity in a word2vec
 * vectors file (text or binary, e.g. written by `lapse train --config tasks/w2v.yaml --out`).
 *
 * @module
 */
import { nearest, normalized, readWordVectors, wordIndex } from "../data/word_vectors.ts";
import { HELP, parseCommandArgs, parseIntArg } from "./args.ts";
import { UsageError } from "../core/errors.ts";
import { formatTable } from "./progress.ts";

const SPEC = {
  name: "similar",
  summary: "Nearest neighbours of words by cosine similarity in a word2vec vectors file.",
  usage: "lapse similar WORD... [--vectors FILE] [-k N]",
  positionals: { min: 1, max: 100 },
  options: {
    vectors: {
      type: "string",
      arg: "FILE",
      default: "vectors.txt",
      doc: "word2vec text or binary file",
    },
    k: { type: "string", short: "k", arg: "N", default: "10", doc: "neighbours per word" },
  },
  details: `Examples:
  lapse train --config tasks/w2v.yaml --set data.file=brown.txt --out vectors.txt
  lapse similar money city war --vectors vectors.txt -k 5`,
} as const;

/** Loads a vectors file; a missing or malformed file is a user error. */
export async function loadVectorsArg(path: string) {
  try {
    const v = await readWordVectors(path);
    return { v, unit: normalized(v), index: wordIndex(v) };
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

/** Runs `lapse similar`. */
export async function similar(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return 0;
  const k = parseIntArg("-k", parsed.values.k, { min: 1, max: 10_000 });
  const { v, unit, index } = await loadVectorsArg(parsed.values.vectors);
  for (const word of parsed.positionals) {
    let ns;
    try {
      ns = nearest(v, unit, word, k, index);
    } catch (e) {
      if (e instanceof RangeError) throw new UsageError(e.message);
      throw e;
    }
    console.log(`${word}:`);
    console.log(
      formatTable(ns.map((n) => ({ word: n.word, cosine: n.cosine.toFixed(3) })), [
        "word",
        "cosine",
      ]),
    );
  }
  return 0;
}
