/**
 * `lapse init NAME [FILE]`: writes a shipped config (`tasks/NAME.yaml`) to a file to edit, so an
 * installed `lapse` needs no checkout at hand to start from.
 *
 * @module
 */
import { UsageError } from "../core/errors.ts";
import { builtinConfigPath, builtinConfigs } from "../tasks/registry.ts";
import { HELP, parseCommandArgs } from "./args.ts";

const SPEC = {
  name: "init",
  summary: "write a shipped task config to a file to edit",
  usage: "lapse init NAME [FILE] [--force]",
  options: {
    force: { type: "boolean", short: "f", doc: "overwrite FILE if it exists" },
  },
  positionals: { min: 1, max: 2 },
  details: `NAME is a shipped config (tasks/NAME.yaml): ${
    builtinConfigs().join(", ")
  }. FILE defaults to NAME.yaml here; relative data paths become absolute paths into this
checkout.
Examples:
  lapse init mf              # writes mf.yaml; then: lapse train --config mf.yaml
  lapse init mf_ratings my_job.yaml   # a template for your own ratings file`,
} as const;

/**
 * A relative data path in a shipped config (`dir: ../data/wn_body`) is relative to tasks/; the
 * copy lives elsewhere, so such paths become absolute paths into this checkout.
 *
 * @example
 * ```ts
 * absoluteDataPaths("  dir: ../data/x # note\n", "/repo/tasks/kge.yaml"); // '  dir: "/repo/data/x" # note\n'
 * ```
 */
export function absoluteDataPaths(text: string, source: string): string {
  return text.replace(
    /^(\s*(?:dir|file|test_file):\s*)(\.\.?\/[^\s#]*)/gm,
    (_m, key: string, rel: string) =>
      `${key}${JSON.stringify(decodeURIComponent(new URL(rel, `file://${source}`).pathname))}`,
  );
}

/** Runs `lapse init`. */
export async function init(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return 0;
  const [name, file = `${parsed.positionals[0]}.yaml`] = parsed.positionals;
  const source = builtinConfigPath(name);
  if (source === undefined) {
    throw new UsageError(
      `unknown config "${name}": expected one of ${builtinConfigs().join(", ")}`,
    );
  }
  const text = absoluteDataPaths(await Deno.readTextFile(source), source);
  try {
    await Deno.writeTextFile(file, text, { createNew: !parsed.values.force });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(`${file} exists: pass --force to overwrite it, or name another FILE`);
    }
    throw new UsageError(`cannot write ${file}: ${(e as Error).message}`);
  }
  console.log(`wrote ${file} (the shipped ${name} config); run: lapse train --config ${file}`);
  return 0;
}
