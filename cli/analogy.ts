/**
 * `lapse analogy A B C`: "A is to B as C is to ?", answered as word2vec's `word-analogy`: the
 * words nearest (cosine) to unit(B) - unit(A) + unit(C), without A, B and C.
 *
 * @module
 */
import { analogy as answer } from "../data/word_vectors.ts";
import { HELP, parseCommandArgs, parseIntArg } from "./args.ts";
import { UsageError } from "../core/errors.ts";
import { formatTable } from "./progress.ts";
import { loadVectorsArg } from "./similar.ts";

const SPEC = {
  name: "analogy",
  summary: 'Answers "A is to B as C is to ?" with the words nearest to B - A + C (cosine).',
  usage: "lapse analogy A B C [--vectors FILE] [-k N]",
  positionals: { min: 3, max: 3 },
  options: {
    vectors: {
      type: "string",
      arg: "FILE",
      default: "vectors.txt",
      doc: "word2vec text or binary file",
    },
    k: { type: "string", short: "k", arg: "N", default: "10", doc: "answers" },
  },
  details: `Example:
  lapse analogy man king woman --vectors vectors.txt     # queen, on a large enough corpus`,
} as const;

/** Runs `lapse analogy`. */
export async function analogy(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return 0;
  const k = parseIntArg("-k", parsed.values.k, { min: 1, max: 10_000 });
  const [a, b, c] = parsed.positionals;
  const { v, unit, index } = await loadVectorsArg(parsed.values.vectors);
  let ns;
  try {
    ns = answer(v, unit, a, b, c, k, index);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  console.log(`${a} : ${b} = ${c} : ?`);
  console.log(
    formatTable(ns.map((n) => ({ word: n.word, cosine: n.cosine.toFixed(3) })), ["word", "cosine"]),
  );
  return 0;
}
