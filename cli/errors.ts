/**
 * How the CLI reports failures.
 *
 * - A **user error** (bad flag, bad config, missing file) prints one short red line
 *   `error: ...` (plus any further lines of the message, uncoloured) and exits with status 2.
 *   User errors are the kinds of core/errors.ts: `UsageError`, `ConfigError` and any error
 *   made by `userError`.
 * - Anything else is a bug: the stack is printed and the exit status is 1.
 *
 * @module
 */
import { isUserError } from "../core/errors.ts";

/** Where {@linkcode reportError} writes; `color` decides on ANSI colour. */
export interface ErrorSink {
  /** Writes text as is. */
  write(text: string): void;
  /** Wrap the `error:` line in ANSI red. */
  color: boolean;
}

function stderrSink(): ErrorSink {
  const enc = new TextEncoder();
  return {
    write: (text) => {
      const bytes = enc.encode(text);
      let off = 0;
      while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
    },
    color: Deno.stderr.isTerminal() && !Deno.noColor,
  };
}

/**
 * Prints an error the way the CLI does and returns the exit status: 2 for user errors (one
 * red `error:` line, no stack), 1 for anything else (a bug: the stack is printed).
 *
 * @example
 * ```ts
 * import { reportError } from "./errors.ts";
 * import { UsageError } from "../core/errors.ts";
 * const status = reportError(new UsageError("unknown option --nodez"));
 * // stderr: "error: unknown option --nodez"; status === 2
 * ```
 */
export function reportError(e: unknown, sink: ErrorSink = stderrSink()): number {
  const red = (s: string) => (sink.color ? `\x1b[31m${s}\x1b[0m` : s);
  if (isUserError(e)) {
    const [first, ...rest] = e.message.split("\n");
    sink.write(red(`error: ${first}`) + "\n" + rest.map((l) => l + "\n").join(""));
    return 2;
  }
  const detail = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
  const cause = e instanceof Error && e.cause !== undefined
    ? `\ncaused by: ${e.cause instanceof Error ? (e.cause.stack ?? e.cause.message) : e.cause}`
    : "";
  sink.write(
    red("error: internal error (a bug in lapse; please report it with the lines below)") +
      "\n" + detail + cause + "\n",
  );
  return 1;
}

/**
 * Runs a command and exits the process: with the status the command returns (`void` = 0),
 * 2 after a user error, 1 after any other error (see {@linkcode reportError}).
 *
 * @example
 * ```ts
 * import { runMain } from "./errors.ts";
 * const main = (args: string[]) => Promise.resolve(args.length === 0 ? 0 : 2);
 * if (import.meta.main) runMain(() => main(Deno.args));
 * ```
 */
export async function runMain(fn: () => Promise<number | void>): Promise<never> {
  let status: number;
  try {
    const r = await fn();
    status = typeof r === "number" ? r : 0;
  } catch (e) {
    status = reportError(e);
  }
  Deno.exit(status);
}
