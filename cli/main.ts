/**
 * The `lapse` command: wires the subcommands, nothing else.
 *
 * @module
 */
import { runMain } from "./errors.ts";
import { UsageError } from "../core/errors.ts";

const COMMANDS: Record<
  string,
  { summary: string; run: () => Promise<(args: string[]) => Promise<number>> }
> = {
  serve: {
    summary: "run one node of a cluster",
    run: async () => (await import("./serve.ts")).serve,
  },
  train: {
    summary: "train a model on a cluster or an embedded local cluster",
    run: async () => (await import("./train.ts")).train,
  },
  predict: {
    summary: "answer from a model written by lapse train --out (mf ratings, kge links)",
    run: async () => (await import("./predict.ts")).predict,
  },
  init: {
    summary: "write a shipped task config (tasks/NAME.yaml: mf, mf_ratings, ...) to a file",
    run: async () => (await import("./init.ts")).init,
  },
  data: {
    summary: "build a dataset from installed packages (wordnet, brown)",
    run: async () => (await import("./data.ts")).data,
  },
  similar: {
    summary: "nearest neighbours of a word in a vectors file",
    run: async () => (await import("./similar.ts")).similar,
  },
  analogy: {
    summary: "A is to B as C is to ? in a vectors file",
    run: async () => (await import("./analogy.ts")).analogy,
  },
  bench: {
    summary: "benchmark modes side by side (lapse, classic, plain)",
    run: async () => (await import("./bench/main.ts")).bench,
  },
  report: {
    summary: "write an HTML report with charts from metrics files",
    run: async () => (await import("./report.ts")).report,
  },
  token: {
    summary: "print a fresh random cluster token",
    run: async () => (await import("./token.ts")).token,
  },
};

const VERSION = "0.1.0";

function usage(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length));
  return [
    `lapse ${VERSION}: a parameter server with dynamic parameter allocation`,
    "",
    "Usage: lapse COMMAND [options]     (lapse COMMAND --help for its options)",
    "",
    "Commands:",
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n].summary}`),
    "",
    "Start here: lapse train --config mf     (the shipped tasks/mf.yaml; lapse init mf copies it)",
  ].join("\n");
}

async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    console.log(`lapse ${VERSION}`);
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    throw new UsageError(
      `unknown command "${name}": expected one of ${
        Object.keys(COMMANDS).join(", ")
      } (lapse --help)`,
    );
  }
  return await (await command.run())(rest);
}

if (import.meta.main) runMain(() => main(Deno.args));
