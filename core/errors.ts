/**
 * The project's error kinds, shared by every layer.
 *
 * - **User errors** (bad flag, bad config, missing file, wrong token): the CLI prints one red
 *   line and exits with status 2. They are {@linkcode UsageError}, {@linkcode ConfigError}, or
 *   any error made by {@linkcode userError} (marked with the {@linkcode USER_ERROR} symbol).
 * - **Invariant failures** ({@linkcode AssertionError}, thrown by {@linkcode assert}): a bug in
 *   lapse. Never caught to carry on; the CLI prints the stack.
 * - Bad input to a function: `TypeError` / `RangeError` / `SyntaxError`.
 *
 * @module
 */

/**
 * Marks errors that are the user's fault (bad config, bad flag): the CLI prints one line and
 * exits with status 2 instead of printing a stack. Shared by `Symbol.for`, so any module can
 * mark an error without importing the CLI (see `cli/errors.ts`).
 */
export const USER_ERROR: unique symbol = Symbol.for("lapse.userError") as any;

/** Where a {@linkcode ConfigError} points and how to fix it. */
export interface ConfigErrorOptions {
  /** Dotted path of the offending key, e.g. `model.lr` or `localize[1].when`. */
  path?: string;
  /** The file the key came from. */
  file?: string;
  /** 1-based line of the key in `file`. */
  line?: number;
  /** How to fix it; printed in parentheses after the problem. */
  hint?: string;
}

/**
 * A mistake in a config file, a cluster file or a `--set` flag.
 *
 * The message reads `file:line: problem (hint)`, e.g.
 * `tasks/mf.yaml:7: model.lr: expected a number, got "fast" (set model.lr to a number >= 0, e.g. 0.05)`.
 *
 * @example
 * ```ts
 * throw new ConfigError('model.lr: expected a number, got "fast"', {
 *   path: "model.lr",
 *   file: "tasks/mf.yaml",
 *   line: 7,
 *   hint: "set model.lr to a positive number, e.g. 0.05",
 * });
 * ```
 */
export class ConfigError extends Error {
  /** Dotted path of the offending key (`""` when the error is about the whole file). */
  readonly path: string;
  /** The file the key came from, if known. */
  readonly file?: string;
  /** 1-based line of the key in `file`, if known. */
  readonly line?: number;
  /** How to fix it. */
  readonly hint?: string;
  /** The message without location and hint. */
  readonly problem: string;
  /** Marks a user error for the CLI (exit status 2, no stack). */
  readonly [USER_ERROR] = true;

  /** `problem` is the message without location; `options` locate it and say how to fix it. */
  constructor(problem: string, options: ConfigErrorOptions = {}) {
    super(formatConfigMessage(problem, options));
    this.name = "ConfigError";
    this.problem = problem;
    this.path = options.path ?? "";
    this.file = options.file;
    this.line = options.line;
    this.hint = options.hint;
  }

  /** The same error located in `file` (and at `line`), unless it already names a file. */
  at(file: string | undefined, line?: number): ConfigError {
    if (this.file !== undefined || file === undefined) return this;
    return new ConfigError(this.problem, { path: this.path, file, line, hint: this.hint });
  }
}

function formatConfigMessage(problem: string, o: ConfigErrorOptions): string {
  const where = o.file === undefined
    ? ""
    : `${o.file}${o.line === undefined ? "" : `:${o.line}`}: `;
  return `${where}${problem}${o.hint ? ` (${o.hint})` : ""}`;
}

/**
 * A mistake on the command line (unknown flag, missing value, bad argument): exit status 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./errors.ts";
 * const e = new UsageError('--nodes: expected a positive integer, got "two"');
 * console.assert(e.name === "UsageError");
 * ```
 */
export class UsageError extends Error {
  /** Marks a user error (exit status 2, no stack). */
  readonly [USER_ERROR] = true;
  /** The message may have several lines; the first is the `error:` line. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * An error that is the user's fault, reported as one line without a stack (exit status 2).
 *
 * @example
 * ```ts
 * import { isUserError, userError } from "./errors.ts";
 * const e = userError(`data file "ratings.csv" not found (set data.file)`);
 * console.assert(isUserError(e));
 * ```
 */
export function userError(message: string, options?: ErrorOptions): Error {
  const e = new Error(message, options);
  (e as Error & { [USER_ERROR]: boolean })[USER_ERROR] = true;
  return e;
}

/** True for errors that are the user's fault (see {@linkcode userError}). */
export function isUserError(e: unknown): e is Error {
  return e instanceof Error && (e as Error & { [USER_ERROR]?: boolean })[USER_ERROR] === true;
}

/** An invariant of lapse itself broke: a bug, never the user's fault. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

/**
 * Checks an invariant that must never break; throws an {@linkcode AssertionError} otherwise.
 * Pass the message lazily when building it costs something on a hot path.
 *
 * @example
 * ```ts
 * import { assert } from "./errors.ts";
 * const slot = 3;
 * assert(slot >= 0, "the key has a slot");
 * ```
 */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new AssertionError(typeof message === "string" ? message : message());
  }
}

/** Longest excerpt of a data line that an error message quotes. */
export const EXCERPT_CHARS_MAX = 40;

/**
 * A short, printable excerpt of untrusted text (a data line) for an error message: at most
 * {@linkcode EXCERPT_CHARS_MAX} characters, anything but printable ASCII shown as `?`, quoted.
 * Error messages travel to the driver, so a file's contents must not ride along in bulk.
 *
 * @example
 * ```ts
 * import { excerpt } from "./errors.ts";
 * excerpt("1,2,\u00003"); // '"1,2,?3"'
 * ```
 */
export function excerpt(text: string, max = EXCERPT_CHARS_MAX): string {
  const cut = text.length > max ? text.slice(0, max - 3) : text;
  const clean = cut.replace(/[^\x20-\x7e]/g, "?");
  return JSON.stringify(text.length > max ? clean + "..." : clean);
}
