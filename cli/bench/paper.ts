/**
 * `deno task bench:paper`: the paper's comparisons (Lapse vs classic PSs, vs bounded staleness,
 * and the ablation of fast local access and localize) for every task that `lapse bench` knows,
 * at sizes that finish within about 15 minutes on a 2-core machine. Each task runs as
 * `lapse bench TASK --json --report` in a child process; the folder (default `out/paper`,
 * not committed) gets `TASK.json` (the rows), `TASK.html` (the report), `TASK.log` and
 * `summary.md` (the tables with date and machine, as the README shows them).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BENCH_TASKS } from "./tasks.ts";

/** Per task: the sizes and epochs of the paper run (`--set` flags). */
export const PAPER_TASKS: Record<string, { sets: string[]; note: string }> = {
  mf: {
    sets: ["model.epochs=3", "data.generate.nnz=400000"],
    note: "4000 x 4000, 400k ratings, rank 10, 3 epochs",
  },
  kge: {
    sets: ["model.epochs=2", "model.eval_every=0", "model.eval_max_triples=200"],
    note: "the shipped WordNet body, ComplEx dim 100, 2 epochs",
  },
  w2v: {
    sets: ["model.epochs=1"],
    note: "the shipped Brown sample, dim 100, 1 epoch",
  },
};

const MODES = ["classic_remote", "classic", "stale", "lapse_nolocalize", "lapse"];
const NODES = "1,2,4";

function fmt(x: unknown, digits = 3): string {
  return typeof x === "number" && Number.isFinite(x) ? String(Number(x.toPrecision(digits))) : "-";
}

function rate(x: unknown): string {
  if (typeof x !== "number" || !Number.isFinite(x)) return "-";
  if (x >= 1e6) return `${fmt(x / 1e6)}M`;
  if (x >= 1e3) return `${fmt(x / 1e3)}k`;
  return fmt(x);
}

/** One line about this machine: date, CPU, cores, load, Deno. */
export function machineLine(): string {
  let cpu = "unknown CPU";
  try {
    const m = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.+)/);
    if (m) cpu = m[1].trim();
  } catch { /* not Linux */ }
  const load = Deno.loadavg().map((x) => x.toFixed(1)).join(" ");
  return `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; ${cpu}, ` +
    `${navigator.hardwareConcurrency} cores, load average ${load}; Deno ${Deno.version.deno}, ` +
    `${Deno.build.os}`;
}

/** The markdown table of one task's rows. */
export function markdownTable(rows: Record<string, any>[]): string {
  const head = [
    "mode",
    "nodes",
    "epoch s (min-max)",
    "points/s",
    "vs 1 node",
    "vs lapse",
    "local",
    "msgs/epoch",
    "MB/epoch",
    "quality",
  ];
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  for (const r of rows) {
    const range = r.repeats > 1 ? ` (${fmt(r.epoch_s_min)}-${fmt(r.epoch_s_max)})` : "";
    lines.push(
      `| ${
        [
          r.mode,
          r.in_process ? "1 process" : r.nodes,
          r.status === "ok" ? `${fmt(r.epoch_s)}${range}` : String(r.status).split(" ")[0],
          rate(r.points_per_s),
          r.speedup_1node ? `${fmt(r.speedup_1node)}x` : "",
          r.vs_lapse ? `${fmt(r.vs_lapse)}x` : "",
          typeof r.local_fraction === "number" ? `${(r.local_fraction * 100).toFixed(1)}%` : "-",
          rate(r.messages),
          fmt((r.bytes ?? NaN) / 1e6),
          `${fmt(r.quality, 4)} ${r.quality_metric}`,
        ].join(" | ")
      } |`,
    );
  }
  return lines.join("\n");
}

/**
 * One compact table over all tasks: per task and mode the epoch time on each node count, and
 * on the most nodes the ratio to lapse, the local fraction and the quality.
 */
export function compactTable(byTask: Record<string, Record<string, any>[]>): string {
  const nodeCounts = [
    ...new Set(
      Object.values(byTask).flat().filter((r) => !r.in_process).map((r) => r.nodes as number),
    ),
  ].sort((a, b) => a - b);
  const most = nodeCounts[nodeCounts.length - 1];
  const head = [
    "task",
    "mode",
    ...nodeCounts.map((n) => `epoch s, ${n} node${n > 1 ? "s" : ""}`),
    `vs lapse (${most})`,
    `local (${most})`,
    `quality (${most})`,
  ];
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  for (const [task, rows] of Object.entries(byTask)) {
    for (const mode of [...new Set(rows.map((r) => r.mode as string))]) {
      const rs = rows.filter((r) => r.mode === mode);
      const at = (n: number) => rs.find((r) => !r.in_process && r.nodes === n);
      const top = at(most) ?? rs[0];
      const epoch = (r: Record<string, any> | undefined) =>
        r === undefined ? "" : r.status === "ok" ? fmt(r.epoch_s) : String(r.status).split(" ")[0];
      lines.push(
        `| ${
          [
            task,
            rs[0].in_process ? `${mode} (1 process)` : mode,
            ...nodeCounts.map((n) => epoch(rs[0].in_process && n === 1 ? rs[0] : at(n))),
            top?.vs_lapse ? `${fmt(top.vs_lapse)}x` : "",
            typeof top?.local_fraction === "number" && !top.in_process
              ? `${(top.local_fraction * 100).toFixed(1)}%`
              : "",
            top ? `${fmt(top.quality, 3)} ${top.quality_metric}` : "",
          ].join(" | ")
        } |`,
      );
    }
  }
  return lines.join("\n");
}

/** "lapse is Nx faster than MODE on K nodes" for the largest node count. */
export function headline(rows: Record<string, any>[]): string {
  const ok = rows.filter((r) => !r.in_process && r.status === "ok");
  const nodes = Math.max(...ok.map((r) => r.nodes));
  const at = (mode: string) => ok.find((r) => r.mode === mode && r.nodes === nodes);
  const lapse = at("lapse");
  if (!lapse) return "";
  const parts = ["classic_remote", "classic", "stale", "lapse_nolocalize"].flatMap((m) => {
    const r = at(m);
    return r ? [`${fmt(r.epoch_s / lapse.epoch_s)}x vs ${m}`] : [];
  });
  return `On ${nodes} nodes lapse is ${parts.join(", ")} (epoch time ratio).`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string", default: "out/paper" },
      tasks: { type: "string" },
      repeat: { type: "string", default: "1" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(
      `deno task bench:paper [--out DIR] [--tasks mf,kge,w2v] [--repeat R]\n\n` +
        `Runs lapse bench TASK --modes ${MODES.join(",")} (+plain, manual where the task has ` +
        `them) --nodes ${NODES} for each task, writes DIR/TASK.json, TASK.html, TASK.log and ` +
        `DIR/summary.md (default DIR: out/paper).`,
    );
    return 0;
  }
  const wanted = values.tasks?.split(",") ?? Object.keys(PAPER_TASKS);
  const tasks = wanted.filter((t) => t in BENCH_TASKS && t in PAPER_TASKS);
  const skipped = wanted.filter((t) => !tasks.includes(t));
  const out = values.out!;
  await Deno.mkdir(out, { recursive: true });
  const main = new URL("../main.ts", import.meta.url).pathname;
  const machine = machineLine();
  const sections: string[] = [];
  const byTask: Record<string, Record<string, any>[]> = {};
  const t0 = performance.now();
  let failed = 0;
  for (const task of tasks) {
    const entry = BENCH_TASKS[task];
    const modes = [
      ...(entry.plain ? ["plain"] : []),
      ...(entry.manual ? ["manual"] : []),
      ...MODES,
    ];
    const args = [
      "run",
      "--allow-all",
      "--quiet",
      main,
      "bench",
      task,
      "--modes",
      modes.join(","),
      "--nodes",
      NODES,
      "--repeat",
      values.repeat!,
      "--timeout-s",
      "300",
      ...PAPER_TASKS[task].sets.flatMap((s) => ["--set", s]),
      "--json",
      "--report",
      `${out}/${task}.html`,
    ];
    console.log(`== ${task}: lapse ${args.slice(4).join(" ")}`);
    const child = new Deno.Command(Deno.execPath(), {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    // Progress lines go to the console and the log as they come.
    const log = await Deno.open(`${out}/${task}.log`, {
      write: true,
      create: true,
      truncate: true,
    });
    const [stdout] = await Promise.all([
      new Response(child.stdout).text(),
      child.stderr.pipeTo(
        new WritableStream({
          async write(chunk) {
            await Deno.stdout.write(chunk);
            await log.write(chunk);
          },
        }),
      ),
    ]);
    log.close();
    const status = await child.status;
    let rows: Record<string, any>[] = [];
    try {
      rows = JSON.parse(stdout);
    } catch {
      console.error(`${task}: no JSON rows (exit ${status.code}); see ${out}/${task}.log`);
    }
    if (!status.success) failed++;
    await Deno.writeTextFile(`${out}/${task}.json`, JSON.stringify(rows, null, 2) + "\n");
    byTask[task] = rows;
    sections.push(
      `### ${task}: ${PAPER_TASKS[task].note}\n\n${markdownTable(rows)}\n\n${headline(rows)}\n`,
    );
  }
  const minutes = ((performance.now() - t0) / 60000).toFixed(1);
  const summary = `## Paper comparisons (deno task bench:paper)\n\n` +
    `Measured ${machine}; ${minutes} min in all. Modes run one at a time on the same data and ` +
    `seed.${
      skipped.length > 0 ? ` Not run (no lapse bench entry): ${skipped.join(", ")}.` : ""
    }\n\n` +
    `${compactTable(byTask)}\n\n` + sections.join("\n");
  await Deno.writeTextFile(`${out}/summary.md`, summary);
  console.log(
    `\n${summary}\nwritten: ${out}/summary.md, ${tasks.map((t) => `${out}/${t}.html`).join(", ")}`,
  );
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
