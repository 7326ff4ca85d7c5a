/**
 * `lapse report metrics.jsonl... -o report.html`: one self-contained HTML page of charts from
 * training metrics files (`lapse train --metrics FILE`): epoch time per mode against node
 * count, speedup over 1 node, quality against training time, throughput per epoch.
 *
 * @module
 */
import { userError } from "../core/errors.ts";
import { parseMetrics, rowsFromRuns, writeBenchReport } from "../driver/report.ts";
import { HELP, parseCommandArgs } from "./args.ts";

const SPEC = {
  name: "report",
  summary: "write an HTML report with charts from training metrics files",
  usage: "lapse report METRICS.jsonl... -o REPORT.html [--title TEXT]",
  positionals: { min: 1, max: 1000 },
  options: {
    output: {
      type: "string",
      short: "o",
      arg: "FILE.html",
      default: "report.html",
      doc: "the report to write",
    },
    title: { type: "string", arg: "TEXT", default: "Lapse training report", doc: "page title" },
  },
  details: `Each file holds one or more runs of lapse train --metrics (a header line starts a
run; without one a file is one run). Runs of the same task, ps.mode and node count are one
series point: the median of their mean epoch times, min and max as a range. The page has no
script and loads nothing: it opens offline, and can be mailed or archived as it is.

Example:
  for m in classic stale lapse; do for n in 1 2 4; do
    lapse train --config mf --nodes $n --set ps.mode=$m --metrics runs/$m-$n.jsonl; done; done
  lapse report runs/*.jsonl -o report.html`,
} as const;

/** Runs `lapse report`. */
export async function report(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return 0;
  const { values, positionals } = parsed;
  const runs = [];
  for (const file of positionals) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      throw userError(`cannot read metrics file "${file}": ${(e as Error).message}`, { cause: e });
    }
    try {
      runs.push(...parseMetrics(file, text));
    } catch (e) {
      throw userError((e as Error).message, { cause: e });
    }
  }
  if (runs.length === 0) {
    throw userError(
      `no epoch records in ${positionals.join(", ")}: write them with lapse train --metrics FILE`,
    );
  }
  const rows = rowsFromRuns(runs);
  try {
    await writeBenchReport(values.output, {
      title: values.title,
      header: [
        `${runs.length} run(s) from ${positionals.length} file(s): ${positionals.join(", ")}`,
        `generated ${new Date().toISOString()}`,
      ],
      rows,
    });
  } catch (e) {
    throw userError(`cannot write "${values.output}": ${(e as Error).message}`, { cause: e });
  }
  console.log(
    `report: ${values.output} (${rows.length} series point(s) from ${runs.length} run(s))`,
  );
  return 0;
}
