/**
 * Flag parsing for subcommands: a thin layer over `node:util` `parseArgs` (strict) that turns
 * every mistake into a {@linkcode UsageError} naming the command's usage line, and answers
 * `--help`/`-h` on every command with a generated help text.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { closestMatch } from "../config/schema.ts";
import { type HostPort, splitHostPort } from "../core/host_port.ts";
import { UsageError } from "../core/errors.ts";

/** One flag of a command. */
export interface OptionSpec {
  /** `string` flags take a value, `boolean` flags do not. */
  type: "string" | "boolean";
  /** One-letter alias, e.g. `c` for `-c`. */
  short?: string;
  /** May be given several times; the value is a list. */
  multiple?: boolean;
  /** Value when the flag is not given. */
  default?: string | boolean | string[] | boolean[];
  /** One line for the help text. */
  doc: string;
  /** Placeholder of the value in the help text, e.g. `FILE` (default `VALUE`). */
  arg?: string;
}

/** A subcommand's flags and help. */
export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  /** `train`, `serve`, ... */
  name: string;
  /** One line: what the command does. */
  summary: string;
  /** The usage line, e.g. `lapse train --config FILE [options]` (`lapse NAME` is added if absent). */
  usage: string;
  /** The flags, by long name (without `--`). */
  options: O;
  /** Positional arguments allowed (default: none). */
  positionals?: { min?: number; max?: number };
  /** More help text after the options, e.g. examples. */
  details?: string;
}

/** The parsed values: booleans default to `false`, multiple flags to `[]`. */
export type OptionValues<O extends Record<string, OptionSpec>> = {
  [K in keyof O]: O[K] extends { type: "boolean" } ? O[K] extends { multiple: true } ? boolean[]
    : boolean
    : O[K] extends { multiple: true } ? string[]
    : O[K] extends { default: string } ? string
    : string | undefined;
};

/** What {@linkcode parseCommandArgs} returns when the command should run. */
export interface ParsedCommand<O extends Record<string, OptionSpec>> {
  /** The flags, by long name; see {@linkcode OptionValues}. */
  values: OptionValues<O>;
  /** Arguments that are not flags. */
  positionals: string[];
}

/** Returned by {@linkcode parseCommandArgs} after printing help: the command exits with 0. */
export const HELP: unique symbol = Symbol("lapse.help");

function usageLine(spec: CommandSpec<any>): string {
  const u = spec.usage.trim();
  return /^(lapse|deno)\b/.test(u) ? u : `lapse ${spec.name} ${u}`.trimEnd();
}

function usageError(spec: CommandSpec<any>, problem: string): UsageError {
  return new UsageError(
    `${problem}\nusage: ${usageLine(spec)}\nrun "lapse ${spec.name} --help" for all options`,
  );
}

function withHelp(options: Record<string, OptionSpec>): Record<string, OptionSpec> {
  if ("help" in options) return options;
  const short = Object.values(options).some((o) => o.short === "h") ? undefined : "h";
  return { ...options, help: { type: "boolean", short, doc: "show this help" } };
}

/**
 * The help text of a command: summary, usage line, options with their docs and defaults.
 *
 * @example
 * ```ts
 * console.log(helpText({ name: "train", summary: "train a model", usage: "--config FILE",
 *   options: { config: { type: "string", short: "c", arg: "FILE", doc: "job config" } } }));
 * ```
 */
export function helpText(spec: CommandSpec<any>): string {
  const opts = withHelp(spec.options);
  const rows = Object.entries(opts).map(([name, o]) => {
    const flag = (o.short ? `-${o.short}, ` : "    ") + `--${name}` +
      (o.type === "string" ? ` ${o.arg ?? "VALUE"}` : "");
    let doc = o.doc;
    if (o.multiple) doc += " (repeatable)";
    const d = o.default;
    if (d !== undefined && d !== false && !(Array.isArray(d) && d.length === 0)) {
      doc += ` (default: ${Array.isArray(d) ? d.join(", ") : d})`;
    }
    return [flag, doc] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length));
  const lines = [
    `lapse ${spec.name}: ${spec.summary}`,
    "",
    `usage: ${usageLine(spec)}`,
    "",
    "options:",
    ...rows.map(([f, d]) => `  ${f.padEnd(width)}  ${d}`),
  ];
  if (spec.details) lines.push("", spec.details.trimEnd());
  return lines.join("\n");
}

/**
 * Parses a subcommand's arguments strictly. Unknown flags, missing values, values given to
 * boolean flags and unexpected positionals throw a {@linkcode UsageError} whose message names
 * the problem (with a did-you-mean), the usage line and `run "lapse NAME --help" for all
 * options`. With `--help`/`-h` it prints {@linkcode helpText} and returns {@linkcode HELP}.
 *
 * @example
 * ```ts
 * import { HELP, parseCommandArgs } from "./args.ts";
 * const args = parseCommandArgs({
 *   name: "train",
 *   summary: "train a model",
 *   usage: "lapse train --config FILE [options]",
 *   options: {
 *     config: { type: "string", short: "c", arg: "FILE", doc: "job config (YAML)" },
 *     set: { type: "string", multiple: true, arg: "PATH=VALUE", doc: "override a config key" },
 *   },
 * }, Deno.args.slice(1));
 * if (args !== HELP) {
 *   args.values.config; // string | undefined
 *   args.values.set; // string[]
 * }
 * ```
 */
export function parseCommandArgs<const O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  args: string[],
  print: (text: string) => void = console.log,
): ParsedCommand<O> | typeof HELP {
  const opts = withHelp(spec.options);
  const pos = spec.positionals;
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      options: opts as any,
      strict: true,
      allowPositionals: pos !== undefined && (pos.max ?? Infinity) > 0,
    }) as any;
  } catch (e) {
    const dd = args.indexOf("--");
    const before = dd < 0 ? args : args.slice(0, dd);
    if (before.includes("--help") || before.includes("-h")) {
      print(helpText(spec));
      return HELP;
    }
    throw usageError(spec, explain(e, opts));
  }
  if (parsed.values.help === true && !("help" in spec.options)) {
    print(helpText(spec));
    return HELP;
  }
  const n = parsed.positionals.length;
  if (pos && pos.min !== undefined && n < pos.min) {
    throw usageError(
      spec,
      `lapse ${spec.name} needs ${pos.min === pos.max ? "" : "at least "}${pos.min} argument${
        pos.min === 1 ? "" : "s"
      }, got ${n}`,
    );
  }
  if (pos && pos.max !== undefined && n > pos.max) {
    throw usageError(spec, `unexpected argument "${parsed.positionals[pos.max]}"`);
  }
  const values: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    let v = parsed.values[name];
    if (v === undefined) v = o.default;
    if (v === undefined && o.multiple) v = [];
    if (v === undefined && o.type === "boolean") v = false;
    values[name] = v;
  }
  return { values: values as OptionValues<O>, positionals: parsed.positionals };
}

/** A short message for a `parseArgs` error. */
function explain(e: unknown, opts: Record<string, OptionSpec>): string {
  const err = e as { code?: string; message?: string };
  const msg = err.message ?? String(e);
  const quoted = /'([^']*)'/.exec(msg)?.[1] ?? "";
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION": {
      const bare = quoted.replace(/^-+/, "").replace(/=.*$/, "");
      const near = quoted.startsWith("--")
        ? closestMatch(bare, Object.keys(opts))
        : Object.entries(opts).find(([, o]) => o.short?.toLowerCase() === bare.toLowerCase())
          ?.[0];
      return `unknown option ${quoted}${near !== undefined ? ` (did you mean --${near}?)` : ""}`;
    }
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const flag = /--([\w-]+)/.exec(quoted)?.[1] ?? quoted;
      const o = opts[flag];
      if (/does not take an argument/.test(msg)) return `option --${flag} does not take a value`;
      if (/ambiguous/.test(msg)) {
        return `option --${flag} needs a value (${
          o ? `--${flag} ${o.arg ?? "VALUE"}` : "a value"
        }; write --${flag}=-X for a value starting with "-")`;
      }
      return `option --${flag} needs a value${o ? ` (--${flag} ${o.arg ?? "VALUE"})` : ""}`;
    }
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument "${quoted}"`;
    default:
      return msg.split("\n")[0];
  }
}

/**
 * Parses `host:port` (`[::1]:7000` for IPv6) or throws a {@linkcode UsageError}.
 * `allowPortZero` accepts port 0 (e.g. `--listen 127.0.0.1:0` for a random port).
 *
 * @example
 * ```ts
 * parseHostPort("127.0.0.1:7000"); // { host: "127.0.0.1", port: 7000 }
 * ```
 */
export function parseHostPort(
  text: string,
  options: { flag?: string; allowPortZero?: boolean } = {},
): HostPort {
  const r = splitHostPort(text, options);
  if (typeof r === "string") {
    throw new UsageError(
      `${options.flag ? `${options.flag}: ` : ""}${r} (expected host:port, e.g. 127.0.0.1:7000)`,
    );
  }
  return r;
}

/**
 * Parses an integer flag value or throws a {@linkcode UsageError} naming the flag.
 *
 * @example
 * ```ts
 * parseIntArg("--nodes", "4", { min: 1, max: 64 }); // 4
 * ```
 */
export function parseIntArg(
  flag: string,
  text: string,
  range: { min?: number; max?: number } = {},
): number {
  const t = text.trim();
  const v = /^[+-]?\d+$/.test(t) ? Number(t) : NaN;
  const { min, max } = range;
  const want = min !== undefined && max !== undefined
    ? `an integer from ${min} to ${max}`
    : min !== undefined
    ? `an integer >= ${min}`
    : max !== undefined
    ? `an integer <= ${max}`
    : "an integer";
  if (
    !Number.isSafeInteger(v) || (min !== undefined && v < min) || (max !== undefined && v > max)
  ) {
    throw new UsageError(`${flag}: expected ${want}, got "${text}"`);
  }
  return v;
}

/**
 * Parses a comma-separated list of integers (`--nodes 1,2,4`) or throws a {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * parseIntListArg("--nodes", "1,2,4", { min: 1 }); // [1, 2, 4]
 * ```
 */
export function parseIntListArg(
  flag: string,
  text: string,
  range: { min?: number; max?: number } = {},
): number[] {
  const parts = text.split(",").map((s) => s.trim());
  if (parts.some((p) => p === "")) {
    throw new UsageError(`${flag}: expected a comma-separated list like 1,2,4, got "${text}"`);
  }
  return parts.map((p) => parseIntArg(flag, p, range));
}
