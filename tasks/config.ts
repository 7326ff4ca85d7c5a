/**
 * Job configs: the YAML a user writes for `lapse train`, validated before anything starts.
 *
 * (Types are the contract; the loader/validator is implemented below them.)
 *
 * @module
 */

import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parse as parseYaml,
  parseDocument,
} from "yaml";

/** The three ways the PS places and moves parameters (DESIGN.md section 7). */
export type PsMode = "lapse" | "classic" | "classic_remote";

/** One `localize:` entry of a task config. */
export interface LocalizeDirective {
  /** Table name, e.g. `W`. */
  table: string;
  /** `start`: once before training; `block`: at each block of a schedule; `ahead`: `steps` data points ahead. */
  when: "start" | "block" | "ahead";
  /** Which keys: this worker's `partition`, the current `block`, or the `next` data points' keys. */
  keys?: "partition" | "block" | "next";
  /** Name of a block schedule (`dsgd`) for `when: block`. */
  schedule?: string;
  /** How many data points ahead, for `when: ahead`. */
  steps?: number;
}

/** The validated, defaults-filled job config every node and worker sees. */
export interface JobConfig {
  /** The task's name, e.g. `mf`. */
  task: string;
  /** Seed of all randomness of the job (default 1). */
  seed: number;
  /** The task's `data:` section, validated by its schema. */
  data: Record<string, any>;
  /** The task's `model:` section, validated by its schema. */
  model: Record<string, any>;
  /** Cluster shape: nodes 1-64 (default 2), worker threads per node 1-64 (default 1). */
  cluster: { nodes: number; workers_per_node: number };
  /** Parameter server settings. */
  ps: {
    /** Default `lapse`. */
    mode: PsMode;
    /** Send requests for non-local keys to the last known owner instead of the home node. */
    location_caches: boolean;
    /** Home placement: contiguous key ranges, or a seeded random permutation (classic default). */
    placement: "range" | "random";
    /** Largest accepted frame on a connection between nodes. */
    max_frame_bytes: number;
    /** Most keys in one pull/push/localize call. */
    batch_keys_max: number;
  };
  /** The directives in force (the task's defaults if the config has no `localize:`). */
  localize: LocalizeDirective[];
}

/** One field of a task's config schema. */
export interface FieldSchema {
  /** The value's type; `integer` is a number without a fraction. */
  type: "number" | "integer" | "string" | "boolean" | "object" | "array";
  /** One line for docs and error hints, as a noun phrase (e.g. `learning rate`). */
  doc: string;
  /** Used when the field is absent (validated like a given value). */
  default?: unknown;
  /** A field without a default and with `required: true` must be given. */
  required?: boolean;
  /** Least value (numbers) or number of entries (arrays), inclusive. */
  min?: number;
  /** Greatest value (numbers) or number of entries (arrays), inclusive. */
  max?: number;
  /** For `string`: the allowed values. */
  enum?: readonly string[];
  /** For `object`: its fields (unknown keys are errors). Omit to allow any keys. */
  fields?: Record<string, FieldSchema>;
  /** For `array`: the schema of each element. */
  items?: FieldSchema;
}

/** What a task adds to the config schema. */
export interface TaskSchema {
  /** The `data:` section (normally an `object` with `fields`). */
  data: FieldSchema;
  /** The `model:` section (normally an `object` with `fields`). */
  model: FieldSchema;
  /** Which localize directives the task understands (anything else is a config error). */
  localize: {
    tables: readonly string[];
    when: readonly LocalizeDirective["when"][];
    keys: readonly NonNullable<LocalizeDirective["keys"]>[];
    schedules?: readonly string[];
  };
  /** The task's default localize directives (used when the config has no `localize:`). */
  defaultLocalize: LocalizeDirective[];
}

// ---------------------------------------------------------------------------------------------
// Loader and validator.
// ---------------------------------------------------------------------------------------------

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

/** A parsed YAML document plus the line of every key in it. */
export interface ParsedYaml {
  /** The plain JS value of the document (`null` for an empty file). */
  value: unknown;
  /** The file name used in error messages. */
  file: string;
  /**
   * 1-based line of every key and list item, by canonical path: `model.lr`, `localize[0]`,
   * `localize[0].when`.
   */
  lines: Map<string, number>;
}

/** Where the keys of a raw config came from, for error messages. */
export interface ConfigSource {
  /** The config file (for error messages). */
  file?: string;
  /** Lines of the keys in `file` (from {@linkcode parseYamlWithLines}). */
  lines?: Map<string, number>;
  /** Paths set by `--set` (canonical path -> the flag's text); these get no line number. */
  sets?: Map<string, string>;
}

/** Joins a path and a key: `a` + `b` = `a.b`, `a` + 0 = `a[0]`. */
function joinPath(parent: string, key: string | number): string {
  if (typeof key === "number") return `${parent}[${key}]`;
  return parent === "" ? key : `${parent}.${key}`;
}

function parentOf(path: string): string {
  const m = /^(.*?)(?:\.[^.[\]]*|\[\d+\])$/.exec(path);
  return m ? m[1] : "";
}

function lastOf(path: string): string {
  const m = /(?:^|\.)([^.[\]]*)$/.exec(path);
  return m ? m[1] : path;
}

/**
 * Parses YAML text and records the line of every key, so that later errors can point at it.
 * A YAML syntax error becomes a {@linkcode ConfigError} with the line.
 *
 * @example
 * ```ts
 * const { value, lines } = parseYamlWithLines("task: mf\nmodel:\n  lr: 0.05\n", "mf.yaml");
 * // value = { task: "mf", model: { lr: 0.05 } }; lines.get("model.lr") === 3
 * ```
 */
export function parseYamlWithLines(text: string, file: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line ?? lineCounter.linePos(e.pos[0]).line;
    const what = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    throw new ConfigError(`invalid YAML: ${what}`, { file, line });
  }
  const lines = new Map<string, number>();
  const lineOf = (range: readonly number[] | null | undefined) =>
    range ? lineCounter.linePos(range[0]).line : undefined;
  const walk = (node: unknown, path: string, depth: number): void => {
    if (depth > 64) return;
    if (isAlias(node)) {
      walk(node.resolve(doc as Document), path, depth + 1);
    } else if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const p = joinPath(path, key);
        const line = lineOf(isScalar(pair.key) ? pair.key.range : undefined);
        if (line !== undefined) lines.set(p, line);
        walk(pair.value, p, depth + 1);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const p = joinPath(path, i);
        const line = lineOf((item as { range?: number[] } | null)?.range);
        if (line !== undefined) lines.set(p, line);
        walk(item, p, depth + 1);
      });
    }
  };
  walk(doc.contents, "", 0);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw new ConfigError(`invalid YAML: ${(e as Error).message.split("\n")[0]}`, { file });
  }
  return { value: value ?? null, file, lines };
}

// --- --set ------------------------------------------------------------------------------------

type Segment = string | number;

function parseSetPath(path: string, flag: string): Segment[] {
  const segs: Segment[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]|(\.)/gy;
  let expectKey = true;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < path.length && (m = re.exec(path)) !== null) {
    pos = re.lastIndex;
    if (m[1] !== undefined) {
      if (!expectKey) break;
      segs.push(/^\d+$/.test(m[1]) && segs.length > 0 ? Number(m[1]) : m[1]);
      expectKey = false;
    } else if (m[2] !== undefined) {
      if (expectKey) break;
      segs.push(Number(m[2]));
    } else {
      if (expectKey) break;
      expectKey = true;
    }
  }
  if (pos !== path.length || expectKey || segs.length === 0) {
    throw new ConfigError(`--set ${flag}: "${path}" is not a valid key path`, {
      hint: "write --set section.key=value, e.g. --set model.lr=0.1",
    });
  }
  return segs;
}

function canonical(segs: Segment[]): string {
  return segs.reduce<string>((p, s) => joinPath(p, s), "");
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** One parsed `--set` flag. */
interface ParsedSet {
  path: string;
  segs: Segment[];
  /** `undefined` = remove the key. */
  value: unknown;
  flag: string;
}

function parseSet(flag: string): ParsedSet {
  const eq = flag.indexOf("=");
  if (eq < 0) {
    throw new ConfigError(`--set ${flag}: missing "="`, {
      hint: "write --set PATH=VALUE, e.g. --set model.lr=0.1",
    });
  }
  const rawPath = flag.slice(0, eq).trim();
  const text = flag.slice(eq + 1);
  const segs = parseSetPath(rawPath, flag);
  const path = canonical(segs);
  if (text.trim() === "") {
    throw new ConfigError(`--set ${flag}: no value after "="`, {
      hint: `write --set ${path}=VALUE; use ${path}=null to remove the key`,
    });
  }
  if (path === "localize" && text.trim() === "none") return { path, segs, value: [], flag };
  if (path === "localize" && text.trim() === "default") {
    return { path, segs, value: undefined, flag };
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (e) {
    throw new ConfigError(
      `--set ${flag}: cannot parse the value: ${(e as Error).message.split("\n")[0]}`,
      { hint: "quote strings, e.g. --set 'data.file=\"a b.tsv\"'" },
    );
  }
  return { path, segs, value: value === null ? undefined : value, flag };
}

function applyOne(root: Record<string, unknown>, s: ParsedSet): void {
  let node: unknown = root;
  for (let i = 0; i < s.segs.length; i++) {
    const seg = s.segs[i];
    const last = i === s.segs.length - 1;
    const here = canonical(s.segs.slice(0, i));
    let key: string | number;
    if (Array.isArray(node)) {
      if (typeof seg !== "number") {
        throw new ConfigError(`--set ${s.flag}: ${here} is a list, "${seg}" is not an index`, {
          hint: `use an index, e.g. ${here}[0]`,
        });
      }
      if (seg > node.length) {
        throw new ConfigError(
          `--set ${s.flag}: ${here} has ${node.length} entries, cannot set entry ${seg}`,
          { hint: `use an index from 0 to ${node.length}` },
        );
      }
      key = seg;
    } else if (isPlainObject(node)) {
      key = String(seg);
    } else {
      throw new ConfigError(`--set ${s.flag}: ${here} is not a section (it is ${describe(node)})`, {
        hint: `set ${here} itself, e.g. --set ${here}=VALUE`,
      });
    }
    const container = node as Record<string | number, unknown>;
    if (last) {
      if (s.value === undefined) {
        if (Array.isArray(container)) container.splice(key as number, 1);
        else delete container[key];
      } else {
        container[key] = s.value;
      }
      return;
    }
    const next = container[key];
    if (next === undefined || next === null) {
      container[key] = typeof s.segs[i + 1] === "number" ? [] : {};
    }
    node = container[key];
  }
}

/**
 * Applies `--set path=value` overrides to a raw (not yet validated) config and returns a new
 * object (the input is not changed). The value is parsed as YAML, so `0.1`, `true`, `[1, 2]`
 * and `{a: 1}` have their types; `x=null` removes a key (its default applies again). Paths are
 * dotted, list entries by index: `localize[0].steps=4` (or `localize.0.steps=4`). Special
 * cases: `localize=none` means no directives, `localize=default` the task's defaults.
 *
 * @example
 * ```ts
 * const raw = applySets({ task: "mf", model: { lr: 0.05 } }, ["model.lr=0.1", "ps.mode=classic"]);
 * // { task: "mf", model: { lr: 0.1 }, ps: { mode: "classic" } }
 * ```
 */
export function applySets(raw: Record<string, unknown>, sets: string[]): Record<string, unknown> {
  return applySetsTracked(raw, sets).raw;
}

function applySetsTracked(
  raw: Record<string, unknown>,
  sets: string[],
): { raw: Record<string, unknown>; origins: Map<string, string> } {
  const out = structuredClone(raw);
  const origins = new Map<string, string>();
  for (const flag of sets) {
    const s = parseSet(flag);
    applyOne(out, s);
    origins.set(s.path, flag);
  }
  return { raw: out, origins };
}

// --- validation -------------------------------------------------------------------------------

/** The generic sections of every job config (besides the task's `data` and `model`). */
export const GENERIC_FIELDS: Readonly<Record<string, FieldSchema>> = {
  task: { type: "string", required: true, doc: "the task to run: mf, kge or w2v" },
  seed: { type: "integer", default: 1, min: 0, doc: "seed of all randomness of the job" },
  cluster: {
    type: "object",
    doc: "the cluster shape",
    fields: {
      nodes: { type: "integer", default: 2, min: 1, max: 64, doc: "number of nodes (processes)" },
      workers_per_node: {
        type: "integer",
        default: 1,
        min: 1,
        max: 64,
        doc: "worker threads per node",
      },
    },
  },
  ps: {
    type: "object",
    doc: "the parameter server",
    fields: {
      mode: {
        type: "string",
        enum: ["lapse", "classic", "classic_remote"],
        default: "lapse",
        doc: "lapse (dynamic allocation), classic (static, fast local access) or " +
          "classic_remote (static, all accesses through the server thread)",
      },
      location_caches: {
        type: "boolean",
        default: true,
        doc: "send requests for non-local keys to the last known owner instead of the home node",
      },
      placement: {
        type: "string",
        enum: ["range", "random"],
        doc: "home placement of keys: range (default for lapse) or random (default for classic)",
      },
      max_frame_bytes: {
        type: "integer",
        default: 64 * 1024 * 1024,
        min: 1024,
        max: 2 ** 32 - 1,
        doc: "largest accepted frame between nodes, in bytes",
      },
      batch_keys_max: {
        type: "integer",
        default: 1_000_000,
        min: 1,
        doc: "most keys in one pull, push or localize call",
      },
    },
  },
  localize: {
    type: "array",
    doc: 'localize directives ({table, when, keys?, schedule?, steps?}), or "none"',
  },
};

const DIRECTIVE_FIELDS = ["table", "when", "keys", "schedule", "steps"] as const;

/** Optimal string alignment distance (Levenshtein plus transpositions), case-insensitive. */
function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The candidate nearest to `word` by edit distance, if it is near enough to be a typo. */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  // Short words are only matched case-insensitively (one edit turns "X" into "W").
  const limit = word.length <= 2 ? 0 : Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return bestD <= limit ? best : undefined;
}

/** A value, described for an error message: strings quoted, containers by kind. */
function describe(v: unknown): string {
  if (v === undefined || v === null) return "nothing";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 37) + "..." : v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

function expected(s: FieldSchema): string {
  const range = (noun: string) => {
    if (s.min !== undefined && s.max !== undefined) {
      return `${noun} from ${s.min} to ${s.max}`;
    }
    if (s.min !== undefined) return `${noun} >= ${s.min}`;
    if (s.max !== undefined) return `${noun} <= ${s.max}`;
    return noun;
  };
  switch (s.type) {
    case "number":
      return range("a number");
    case "integer":
      return range("an integer");
    case "string":
      return s.enum ? `one of ${s.enum.join(", ")}` : "a string";
    case "boolean":
      return "true or false";
    case "object":
      return "a mapping (key: value)";
    case "array":
      return "a list";
  }
}

function example(s: FieldSchema): string {
  if (s.type === "boolean" || s.enum) return "";
  const d = s.default;
  if (typeof d === "number" || (typeof d === "string" && d !== "")) return `, e.g. ${d}`;
  return "";
}

/** A field's doc as a noun phrase: `The learning rate.` -> `learning rate`. */
function docPhrase(doc: string): string {
  const d = doc.trim().replace(/\.$/, "").replace(/^the /i, "");
  return /^[A-Z][a-z]/.test(d) ? d[0].toLowerCase() + d.slice(1) : d;
}

class Checker {
  constructor(readonly where: ConfigSource) {}

  /** The error for `path`; `missing` locates it at its parent (the key itself has no line). */
  error(path: string, problem: string, hint?: string, missing = false): ConfigError {
    const sets = this.where.sets;
    if (sets) {
      for (const [p, flag] of sets) {
        if (path === p || path.startsWith(p + ".") || path.startsWith(p + "[")) {
          return new ConfigError(`--set ${flag}: ${problem}`, { path, hint });
        }
      }
    }
    const at = missing ? parentOf(path) : path;
    const line = at === "" ? undefined : this.where.lines?.get(at);
    return new ConfigError(problem, { path, file: this.where.file, line, hint });
  }

  typeError(path: string, s: FieldSchema, v: unknown, noun?: string): ConfigError {
    return this.error(
      path,
      `${path}: expected ${noun ?? expected(s)}, got ${describe(v)}`,
      (s.type === "number" || s.type === "integer") && typeof v === "string" &&
        /^[+-]?\d[\d_]*(\.\d+)?$/.test(v)
        ? `write it without underscores: ${v.replaceAll("_", "")}`
        : `set ${path} to ${expected(s)}${example(s)}`,
    );
  }

  unknownKey(path: string, known: string[], extra?: string): ConfigError {
    const parent = parentOf(path);
    const near = extra ?? closestMatch(lastOf(path), known);
    let hint: string;
    if (near !== undefined) hint = `did you mean ${extra ?? joinPath(parent, near)}?`;
    else if (known.length === 0) hint = `${parent} takes no keys`;
    else hint = `known keys${parent ? ` in ${parent}` : ""}: ${known.join(", ")}`;
    return this.error(path, `unknown key ${path}`, hint);
  }

  missing(path: string, s: FieldSchema): ConfigError {
    const parent = parentOf(path);
    const key = lastOf(path);
    const hint = parent === ""
      ? key === "task"
        ? "add task: NAME at the top, e.g. task: mf"
        : `add a ${key}: section; see README "Config reference"`
      : `add ${key}: under ${parent}; ${s.doc ? `${key} is the ${docPhrase(s.doc)}, ` : ""}${
        expected(s)
      }${example(s)}`;
    return this.error(path, `missing required key ${path}`, hint, true);
  }

  /** Validates a value that is present; returns it with defaults filled. */
  value(v: unknown, s: FieldSchema, path: string): unknown {
    switch (s.type) {
      case "number":
        if (typeof v !== "number" || !Number.isFinite(v)) throw this.typeError(path, s, v);
        this.bounds(v, s, path);
        return v;
      case "integer":
        if (typeof v !== "number" || !Number.isInteger(v)) throw this.typeError(path, s, v);
        this.bounds(v, s, path);
        return v;
      case "boolean":
        if (typeof v !== "boolean") throw this.typeError(path, s, v);
        return v;
      case "string":
        if (typeof v !== "string") throw this.typeError(path, s, v);
        if (s.enum && !s.enum.includes(v)) {
          const near = closestMatch(v, s.enum);
          throw this.error(
            path,
            `${path}: expected one of ${s.enum.join(", ")}, got ${describe(v)}`,
            near !== undefined
              ? `did you mean ${near}?`
              : `set ${path} to one of ${s.enum.join(", ")}`,
          );
        }
        return v;
      case "array": {
        if (!Array.isArray(v)) throw this.typeError(path, s, v);
        if (s.min !== undefined && v.length < s.min) {
          throw this.error(path, `${path}: has ${v.length} entries, at least ${s.min} needed`);
        }
        if (s.max !== undefined && v.length > s.max) {
          throw this.error(path, `${path}: has ${v.length} entries, at most ${s.max} allowed`);
        }
        if (!s.items) return structuredClone(v);
        return v.map((item, i) => {
          const p = joinPath(path, i);
          if (item === undefined || item === null) throw this.typeError(p, s.items!, item);
          return this.value(item, s.items!, p);
        });
      }
      case "object": {
        if (v === null) v = {};
        if (!isPlainObject(v)) throw this.typeError(path, s, v);
        if (!s.fields) return structuredClone(v);
        return this.fields(v, s.fields, path);
      }
    }
  }

  fields(
    v: Record<string, unknown>,
    fields: Record<string, FieldSchema>,
    path: string,
  ): Record<string, unknown> {
    const known = Object.keys(fields);
    for (const k of Object.keys(v)) {
      if (!(k in fields)) throw this.unknownKey(joinPath(path, k), known);
    }
    const out: Record<string, unknown> = {};
    for (const [k, fs] of Object.entries(fields)) {
      const p = joinPath(path, k);
      const x = k in v && v[k] !== undefined ? this.value(v[k], fs, p) : this.absent(fs, p);
      if (x !== undefined) out[k] = x;
    }
    return out;
  }

  /** A field that is not given: its default, an error if required, else nothing. */
  absent(s: FieldSchema, path: string): unknown {
    if (s.default !== undefined) return this.value(structuredClone(s.default), s, path);
    if (s.required) throw this.missing(path, s);
    if (s.type === "object" && s.fields) {
      const needsInput = Object.values(s.fields).some((f) => f.required && f.default === undefined);
      if (!needsInput) return this.fields({}, s.fields, path);
    }
    return undefined;
  }

  bounds(v: number, s: FieldSchema, path: string): void {
    if (s.min !== undefined && v < s.min) {
      throw this.error(
        path,
        `${path}: ${v} is below the minimum ${s.min}`,
        `set ${path} to ${expected(s)}`,
      );
    }
    if (s.max !== undefined && v > s.max) {
      throw this.error(
        path,
        `${path}: ${v} is above the maximum ${s.max}`,
        `set ${path} to ${expected(s)}`,
      );
    }
  }

  localize(v: unknown, schema: TaskSchema, task: string): LocalizeDirective[] {
    if (v === undefined) return structuredClone(schema.defaultLocalize);
    if (v === "none") return [];
    if (!Array.isArray(v)) {
      throw this.error(
        "localize",
        `localize: expected a list of directives or "none", got ${describe(v)}`,
        "write localize: none, or a list like - { table: W, when: start, keys: partition }",
      );
    }
    const L = schema.localize;
    return v.map((d, i) => {
      const path = joinPath("localize", i);
      if (!isPlainObject(d)) {
        throw this.error(
          path,
          `${path}: expected a directive { table, when, keys?, schedule?, steps? }, got ${
            describe(d)
          }`,
          "write e.g. - { table: W, when: start, keys: partition }",
        );
      }
      for (const k of Object.keys(d)) {
        if (!(DIRECTIVE_FIELDS as readonly string[]).includes(k)) {
          const p = joinPath(path, k);
          const near = closestMatch(k, DIRECTIVE_FIELDS);
          throw this.error(
            p,
            `unknown key ${p} in a localize directive`,
            near !== undefined
              ? `did you mean ${joinPath(path, near)}?`
              : `a directive has the keys ${DIRECTIVE_FIELDS.join(", ")}`,
          );
        }
      }
      const oneOf = (
        key: string,
        allowed: readonly string[],
        required: boolean,
      ): string | undefined => {
        const p = joinPath(path, key);
        const x = d[key];
        if (x === undefined || x === null) {
          if (!required) return undefined;
          throw this.error(
            p,
            `missing required key ${p}`,
            `add ${key}: under ${path}, one of ${allowed.join(", ") || "(none)"}`,
            true,
          );
        }
        if (typeof x !== "string") {
          throw this.error(
            p,
            `${p}: expected a string, got ${describe(x)}`,
            `use one of ${allowed.join(", ")}`,
          );
        }
        if (!allowed.includes(x)) {
          const near = closestMatch(x, allowed);
          const problem = allowed.length === 0
            ? `${p}: task ${task} has no ${key} values, got ${describe(x)}`
            : `${p}: task ${task} does not understand ${key}: ${x}`;
          const hint = allowed.length === 0
            ? `remove ${key} from the directive`
            : near !== undefined
            ? `did you mean ${near}? task ${task} allows ${allowed.join(", ")}`
            : `task ${task} allows ${allowed.join(", ")}`;
          throw this.error(p, problem, hint);
        }
        return x;
      };
      const out: LocalizeDirective = {
        table: oneOf("table", L.tables, true)!,
        when: oneOf("when", L.when, true) as LocalizeDirective["when"],
      };
      const keys = oneOf("keys", L.keys, false);
      if (keys !== undefined) out.keys = keys as LocalizeDirective["keys"];
      const schedule = oneOf("schedule", L.schedules ?? [], false);
      if (schedule !== undefined) out.schedule = schedule;
      const sp = joinPath(path, "steps");
      if (d.steps !== undefined && d.steps !== null) {
        const stepsSchema: FieldSchema = { type: "integer", min: 1, doc: "", default: 8 };
        out.steps = this.value(d.steps, stepsSchema, sp) as number;
        if (out.when !== "ahead") {
          throw this.error(
            sp,
            `${sp}: steps only applies to when: ahead`,
            `remove steps or set when: ahead`,
          );
        }
      } else if (out.when === "ahead") {
        throw this.error(
          sp,
          `missing required key ${sp} (when: ahead needs it)`,
          `add steps: N under ${path}, how many data points ahead, e.g. steps: 8`,
          true,
        );
      }
      return out;
    });
  }
}

/**
 * Validates any value against a {@linkcode FieldSchema} with the same rules and messages as
 * job configs (unknown keys with suggestions, types, ranges, enums, defaults). `path` is the
 * prefix of error paths (`""` for a whole file). Used for other YAML files, e.g. cluster files.
 *
 * @example
 * ```ts
 * const parsed = parseYamlWithLines("workers_per_node: 2\n", "cluster.yaml");
 * const v = validateValue(parsed.value, {
 *   type: "object",
 *   doc: "cluster file",
 *   fields: { workers_per_node: { type: "integer", min: 1, default: 1, doc: "workers" } },
 * }, parsed);
 * ```
 */
export function validateValue(
  value: unknown,
  schema: FieldSchema,
  where: ConfigSource = {},
  path = "",
): unknown {
  const c = new Checker(where);
  if (value === undefined) return c.absent(schema, path);
  if (path === "" && schema.type === "object" && !isPlainObject(value) && value !== null) {
    throw new ConfigError(`expected a mapping (key: value), got ${describe(value)}`, {
      file: where.file,
      line: 1,
    });
  }
  return c.value(value, schema, path);
}

/**
 * Validates a raw job config against the generic sections and a task's schema and fills in
 * defaults. Unknown keys (with a did-you-mean suggestion), wrong types, missing required keys,
 * out-of-range numbers, unknown enum values and localize directives the task does not
 * understand are {@linkcode ConfigError}s; pass `where` (from {@linkcode parseYamlWithLines})
 * to get file and line numbers in them.
 *
 * Rules: a default is validated like a given value; an absent object field that has no default
 * and no required fields is filled from its fields' defaults (so nested defaults appear); a
 * YAML `null` object (an empty `model:` section) counts as `{}`. `ps.placement` defaults to
 * `random` for the classic modes and `range` for lapse. No `localize:` means the task's
 * `defaultLocalize`; `localize: none` or `[]` means no directives.
 *
 * @example
 * ```ts
 * const cfg = validateJobConfig({ task: "mf", model: { lr: 0.1 } }, mfSchema);
 * cfg.cluster.nodes; // 2 (the default)
 * cfg.ps.placement; // "range"
 * ```
 */
export function validateJobConfig(
  raw: unknown,
  schema: TaskSchema,
  where: ConfigSource = {},
): JobConfig {
  const c = new Checker(where);
  if (!isPlainObject(raw)) {
    throw new ConfigError(
      `expected a mapping of sections (task:, data:, model:, ...), got ${describe(raw)}`,
      { file: where.file },
    );
  }
  const sections: Record<string, FieldSchema> = {
    task: GENERIC_FIELDS.task,
    seed: GENERIC_FIELDS.seed,
    data: schema.data,
    model: schema.model,
    cluster: GENERIC_FIELDS.cluster,
    ps: GENERIC_FIELDS.ps,
    localize: GENERIC_FIELDS.localize,
  };
  const known = Object.keys(sections);
  for (const k of Object.keys(raw)) {
    if (k in sections) continue;
    // A section-level key at the top (`lr: 0.1`, `mode: classic`): point to its section.
    let moved: string | undefined;
    for (const sec of ["model", "data", "ps", "cluster"]) {
      if (sections[sec].fields && k in sections[sec].fields!) {
        moved = `${sec}.${k}`;
        break;
      }
    }
    throw c.unknownKey(k, known, moved);
  }
  const get = (k: string, s: FieldSchema) =>
    raw[k] !== undefined ? c.value(raw[k], s, k) : c.absent(s, k);
  const task = get("task", sections.task) as string;
  const seed = get("seed", sections.seed) as number;
  const section = (k: "data" | "model") => {
    const s = sections[k];
    if (raw[k] !== undefined) return c.value(raw[k], s, k) as Record<string, any>;
    if (s.required && s.default === undefined) throw c.missing(k, s);
    return (s.default !== undefined
      ? c.value(structuredClone(s.default), s, k)
      : c.value({}, s, k)) as Record<string, any>;
  };
  const data = section("data");
  const model = section("model");
  const cluster = get("cluster", sections.cluster) as JobConfig["cluster"];
  const ps = get("ps", sections.ps) as JobConfig["ps"];
  ps.placement ??= ps.mode === "lapse" ? "range" : "random";
  const localize = c.localize(raw.localize, schema, task);
  return {
    task,
    seed,
    data,
    model,
    cluster,
    ps: {
      mode: ps.mode,
      location_caches: ps.location_caches,
      placement: ps.placement,
      max_frame_bytes: ps.max_frame_bytes,
      batch_keys_max: ps.batch_keys_max,
    },
    localize,
  };
}

/**
 * Reads a job config file, applies `--set` overrides, finds the task's schema and validates.
 * Errors name the file and line of the offending key (keys given by `--set` name the flag
 * instead). `resolveSchema` should throw a {@linkcode ConfigError} with `path: "task"` for an
 * unknown task; it is then located at the `task:` line.
 *
 * @example
 * ```ts
 * const cfg = await loadJobConfig("tasks/mf.yaml", ["ps.mode=classic"], async (name) => {
 *   const mod = await import(`./${name}.ts`);
 *   return mod.task.schema;
 * });
 * ```
 */
export async function loadJobConfig(
  path: string,
  sets: string[],
  resolveSchema: (task: string) => Promise<TaskSchema>,
): Promise<JobConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`config file "${path}" not found`, {
        hint: "check the path; the shipped configs are in tasks/, e.g. tasks/mf.yaml",
      });
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new ConfigError(`config file "${path}" is a directory`, {
        hint: "pass a YAML file, e.g. tasks/mf.yaml",
      });
    }
    throw new ConfigError(`cannot read config file "${path}": ${(e as Error).message}`);
  }
  const parsed = parseYamlWithLines(text, path);
  let raw = parsed.value;
  if (raw === null) {
    throw new ConfigError("the file is empty", {
      file: path,
      hint: "a job config has the sections task:, data:, model:, cluster:, ps:, localize:",
    });
  }
  if (!isPlainObject(raw)) {
    throw new ConfigError(
      `expected a mapping of sections (task:, data:, model:, ...), got ${describe(raw)}`,
      { file: path, line: 1 },
    );
  }
  const tracked = applySetsTracked(raw, sets);
  raw = tracked.raw;
  const where: ConfigSource = { file: path, lines: parsed.lines, sets: tracked.origins };
  const c = new Checker(where);
  const task = (raw as Record<string, unknown>).task;
  if (task === undefined || task === null) throw c.missing("task", GENERIC_FIELDS.task);
  if (typeof task !== "string" || task === "") {
    throw c.typeError("task", GENERIC_FIELDS.task, task, "a task name");
  }
  let schema: TaskSchema;
  try {
    schema = await resolveSchema(task);
  } catch (e) {
    if (e instanceof ConfigError && e.file === undefined) throw c.error("task", e.problem, e.hint);
    throw e;
  }
  return validateJobConfig(raw, schema, where);
}
