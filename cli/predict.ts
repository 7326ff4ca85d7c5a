/**
 * `lapse predict --model DIR`: answers from a model written by `lapse train --out DIR` (mf):
 * predicted ratings for (row, col) pairs read from a file or stdin, or the top-k columns of a row.
 *
 * @module
 */
import { UsageError } from "../core/errors.ts";
import { MfModel } from "../tasks/mf_model.ts";
import { HELP, parseCommandArgs, parseIntArg } from "./args.ts";

const SPEC = {
  name: "predict",
  summary: "predict ratings with a model written by lapse train --out DIR (mf)",
  usage: "lapse predict --model DIR [--pairs FILE|-] [--row ID --top K]",
  options: {
    model: { type: "string", short: "m", arg: "DIR", doc: "model folder (lapse train --out DIR)" },
    pairs: {
      type: "string",
      arg: "FILE",
      doc: 'lines "row,col" (tab, comma or space; ids as in the data file); - for stdin ' +
        "(the default without --row)",
    },
    row: { type: "string", arg: "ID", doc: "print the top --top columns of this row" },
    top: { type: "string", short: "k", arg: "K", default: "10", doc: "how many columns" },
  },
  details: `Output: "row,col,prediction" per pair (in input order), or "col,prediction" per
column, best first. Ids are those of the data file (numbers with its index base, or names).
Examples:
  lapse train --config job.yaml --out model/
  printf '1,5\\n2,7\\n' | lapse predict --model model/
  lapse predict --model model/ --row 1 --top 5`,
} as const;

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
  let model: MfModel;
  try {
    model = await MfModel.load(v.model);
  } catch (e) {
    throw new UsageError(
      `--model ${v.model}: ${
        e instanceof Deno.errors.NotFound
          ? "no model.json there (write one with lapse train --out DIR)"
          : (e as Error).message
      }`,
    );
  }
  const write = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s));
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
  let stream: ReadableStream<Uint8Array>;
  try {
    stream = file === null ? Deno.stdin.readable : (await Deno.open(file)).readable;
  } catch (e) {
    throw new UsageError(`--pairs ${file}: ${(e as Error).message}`);
  }
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
