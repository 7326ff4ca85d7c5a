/**
 * `lapse predict --model DIR`: answers from a model written by `lapse train --out DIR`. mf:
 * predicted ratings for (row, col) pairs read from a file or stdin, or the top-k columns of a row.
 * kge: scores of triples read from a file or stdin, or the top-k tails of (head, relation) or
 * heads of (relation, tail).
 *
 * @module
 */
import { UsageError } from "../core/errors.ts";
import { MfModel } from "../tasks/mf_model.ts";
import { KgeSavedModel } from "../tasks/kge_saved.ts";
import { HELP, parseCommandArgs, parseIntArg } from "./args.ts";

const SPEC = {
  name: "predict",
  summary: "answer from a model written by lapse train --out DIR (mf ratings, kge links)",
  usage: "lapse predict --model DIR [--pairs FILE|-] [--row ID --top K]        (mf)\n" +
    "       lapse predict --model DIR [--triples FILE|-] [--relation R (--head H|--tail T) --top K]  (kge)",
  options: {
    model: { type: "string", short: "m", arg: "DIR", doc: "model folder (lapse train --out DIR)" },
    pairs: {
      type: "string",
      arg: "FILE",
      doc: 'lines "row,col" (tab, comma or space; ids as in the data file); - for stdin ' +
        "(the default without --row)",
    },
    row: { type: "string", arg: "ID", doc: "print the top --top columns of this row" },
    top: {
      type: "string",
      short: "k",
      arg: "K",
      default: "10",
      doc: "how many columns (mf) or entities (kge)",
    },
    triples: {
      type: "string",
      arg: "FILE",
      doc: 'kge: lines "head<TAB>relation<TAB>tail" to score; - for stdin (the default)',
    },
    relation: { type: "string", arg: "R", doc: "kge: with --head or --tail, the relation" },
    head: { type: "string", arg: "H", doc: "kge: print the top --top tails of (H, R)" },
    tail: { type: "string", arg: "T", doc: "kge: print the top --top heads of (R, T)" },
  },
  details: `mf output: "row,col,prediction" per pair (in input order), or "col,prediction" per
column, best first. Ids are those of the data file (numbers with its index base, or names).
kge output: "head<TAB>relation<TAB>tail<TAB>score" per triple (in input order; higher is more
plausible), or "entity<TAB>score" per entity, best first (known triples are not filtered out).
Examples:
  lapse train --config job.yaml --out model/
  printf '1,5\\n2,7\\n' | lapse predict --model model/
  lapse predict --model model/ --row 1 --top 5
  lapse train --config tasks/kge.yaml --out kge/
  lapse predict --model kge/ --head body.n.05223633 --relation _has_part --top 5`,
} as const;

/**
 * Why a `--model` folder is not a model: what each kind's folder holds (tasks/mf_model.ts,
 * tasks/kge_out.ts) and the command that writes one.
 */
const NOT_A_MODEL = "not a model folder (an mf model holds model.json, W.npy, H.npy; " +
  "a kge model holds meta.json, entities.npy, relations.npy); write one with " +
  "lapse train --config FILE --out DIR";

/** Splits a pair line: tab, comma, semicolon or whitespace. */
function splitPair(line: string): string[] {
  const t = line.trim();
  for (const d of ["\t", ",", ";"]) if (t.includes(d)) return t.split(d);
  return t.split(/\s+/);
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl).replace(/\r$/, "");
      rest = rest.slice(nl + 1);
    }
  }
  if (rest.length > 0) yield rest;
}

/** Runs `lapse predict`. */
export async function predict(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  if (v.model === undefined) throw new UsageError("missing --model DIR (lapse train --out DIR)");
  if (await KgeSavedModel.isKgeModel(v.model)) return await predictKge(v.model, v);
  let model: MfModel;
  try {
    model = await MfModel.load(v.model);
  } catch (e) {
    throw new UsageError(
      `--model ${v.model}: ${
        e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory
          ? NOT_A_MODEL
          : (e as Error).message
      }`,
    );
  }
  // After the load: a missing folder is "not a model folder", not "holds mf".
  for (const o of ["triples", "relation", "head", "tail"] as const) {
    if (v[o] !== undefined) throw new UsageError(`--${o} is for kge models; ${v.model} holds mf`);
  }
  if (v.row !== undefined) {
    if (v.pairs !== undefined) throw new UsageError("give --row or --pairs, not both");
    const k = parseIntArg("--top", v.top, { min: 1, max: 1_000_000 });
    let i: number;
    try {
      i = model.rowKey(v.row);
    } catch (e) {
      throw new UsageError(`--row: ${(e as Error).message}`);
    }
    const out = model.topColumns(i, k).map(([j, p]) => `${model.colId(j)},${p.toPrecision(6)}`);
    write(out.join("\n") + "\n");
    return 0;
  }
  const file = v.pairs === undefined || v.pairs === "-" ? null : v.pairs;
  const stream = await openInput(file, "--pairs");
  let lineNo = 0;
  let out = "";
  for await (const line of lines(stream)) {
    lineNo++;
    if (line.trim() === "" || line.trim().startsWith("#")) continue;
    const [r, c] = splitPair(line);
    let p: number;
    try {
      if (c === undefined) throw new RangeError(`expected "row,col"`);
      p = model.predict(model.rowKey(r), model.colKey(c));
    } catch (e) {
      // A header line ("user,item") is skipped; any later bad line is an error.
      if (lineNo === 1) continue;
      throw new UsageError(`${file ?? "stdin"}:${lineNo}: ${(e as Error).message}`);
    }
    out += `${r.trim()},${c.trim()},${p.toPrecision(6)}\n`;
    if (out.length > 1 << 16) {
      write(out);
      out = "";
    }
  }
  write(out);
  return 0;
}

async function openInput(file: string | null, flag: string): Promise<ReadableStream<Uint8Array>> {
  try {
    return file === null ? Deno.stdin.readable : (await Deno.open(file)).readable;
  } catch (e) {
    throw new UsageError(`${flag} ${file}: ${(e as Error).message}`);
  }
}

const write = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s));

/** `lapse predict` on a kge model folder. */
async function predictKge(
  dir: string,
  v: { [k: string]: string | boolean | undefined },
): Promise<number> {
  for (const o of ["pairs", "row"] as const) {
    if (v[o] !== undefined) throw new UsageError(`--${o} is for mf models; ${dir} holds kge`);
  }
  let model: KgeSavedModel;
  try {
    model = await KgeSavedModel.load(dir);
  } catch (e) {
    throw new UsageError(`--model ${dir}: ${(e as Error).message}`);
  }
  const str = (o: string) => typeof v[o] === "string" ? v[o] as string : undefined;
  const head = str("head"), tail = str("tail"), relation = str("relation");
  if (head !== undefined || tail !== undefined || relation !== undefined) {
    if (str("triples") !== undefined) {
      throw new UsageError("give --triples or --relation, not both");
    }
    if (relation === undefined) throw new UsageError("--head and --tail need --relation R");
    if ((head === undefined) === (tail === undefined)) {
      throw new UsageError("give exactly one of --head H (top tails) and --tail T (top heads)");
    }
    const k = parseIntArg("--top", str("top") ?? "10", { min: 1, max: 1_000_000 });
    let e: number, r: number;
    try {
      r = model.relationKey(relation);
      e = model.entityKey((head ?? tail)!);
    } catch (err) {
      throw new UsageError(`${dir}: ${(err as Error).message}`);
    }
    const best = model.top(e, r, k, head !== undefined ? "tail" : "head");
    write(best.map(([x, s]) => `${model.entityNames[x]}\t${s.toPrecision(6)}`).join("\n") + "\n");
    return 0;
  }
  const file = str("triples") === undefined || str("triples") === "-" ? null : str("triples")!;
  const stream = await openInput(file, "--triples");
  let lineNo = 0, out = "";
  for await (const line of lines(stream)) {
    lineNo++;
    if (line.trim() === "" || line.trim().startsWith("#")) continue;
    const f = line.split("\t");
    let s: number;
    try {
      if (f.length !== 3) throw new RangeError(`expected "head<TAB>relation<TAB>tail"`);
      s = model.score(model.entityKey(f[0]), model.relationKey(f[1]), model.entityKey(f[2]));
    } catch (e) {
      throw new UsageError(`${file ?? "stdin"}:${lineNo}: ${(e as Error).message}`);
    }
    out += `${f[0].trim()}\t${f[1].trim()}\t${f[2].trim()}\t${s.toPrecision(6)}\n`;
    if (out.length > 1 << 16) {
      write(out);
      out = "";
    }
  }
  write(out);
  return 0;
}
