/**
 * The schema checker: validates raw config values against {@linkcode FieldSchema}s, fills in
 * defaults, and words every error with the file, line, key and a did-you-mean.
 *
 * @module
 */
import type { FieldSchema, LocalizeDirective, TaskSchema } from "../core/types.ts";
import { ConfigError } from "../core/errors.ts";
import { type ConfigSource, isPlainObject, joinPath, lastOf, parentOf } from "./paths.ts";

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
export function describe(v: unknown): string {
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

export class Checker {
  constructor(readonly where: ConfigSource) {}

  /** The error for `path`; `missing` locates it at its parent (the key itself has no line). */
  error(path: string, problem: string, hint?: string, missing = false): ConfigError {
    const sets = this.where.sets;
    if (sets) {
      for (const [p, flag] of sets) {
        // The flag set this key, or created it (`--set modle.lr=1` makes the key `modle`, which
        // the file does not have): blame the flag, not the file.
        const created = (p.startsWith(path + ".") || p.startsWith(path + "[")) &&
          this.where.lines?.has(path) !== true;
        if (path === p || path.startsWith(p + ".") || path.startsWith(p + "[") || created) {
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
    // "default" in a file means what --set localize=default means: the task's own directives.
    if (v === undefined || v === "default") return structuredClone(schema.defaultLocalize);
    if (v === "none") return [];
    if (!Array.isArray(v)) {
      throw this.error(
        "localize",
        `localize: expected a list of directives, "none" or "default", got ${describe(v)}`,
        "write localize: none, default, or a list like - { table: W, when: start, keys: partition }",
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
 * import { validateValue } from "./schema.ts";
 * import { parseYamlWithLines } from "./yaml.ts";
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
