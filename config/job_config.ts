/**
 * Job configs: the YAML a user writes for `lapse train`, validated before anything starts.
 * The generic sections (task, seed, cluster, ps, localize) are defined here; a task declares
 * its `data` and `model` sections in its {@linkcode TaskSchema}.
 *
 * @module
 */
import type { FieldSchema, JobConfig, TaskSchema } from "../core/types.ts";
import { ConfigError } from "../core/errors.ts";
import { type ConfigSource, isPlainObject, joinPath } from "./paths.ts";
import { parseYamlWithLines } from "./yaml.ts";
import { applySetsTracked } from "./set_flags.ts";
import { Checker, describe } from "./schema.ts";
import { normalizePath } from "./data_dirs.ts";

// --- validation -------------------------------------------------------------------------------

/** The generic sections of every job config (besides the task's `data` and `model`). */
export const GENERIC_FIELDS: Readonly<Record<string, FieldSchema>> = {
  task: { type: "string", required: true, doc: "the task to run (e.g. mf, kge, w2v, pscheck)" },
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
        enum: ["lapse", "classic", "classic_remote", "stale"],
        default: "lapse",
        doc: "lapse (dynamic allocation), classic (static, fast local access), " +
          "classic_remote (static, all accesses through the server thread) or stale " +
          "(static, bounded staleness: per-worker caches flushed at ps.clock())",
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
      peer_timeout_ms: {
        type: "integer",
        default: 30_000,
        min: 200,
        max: 3_600_000,
        doc: "a node that sends nothing (not even a heartbeat) for this long fails the job",
      },
      staleness: {
        type: "integer",
        default: 1,
        min: 0,
        max: 1_000_000,
        doc: "stale mode: how many clocks old a cached value may be (0 = every earlier clock's " +
          "updates are always seen)",
      },
    },
  },
  localize: {
    type: "array",
    doc: 'localize directives ({table, when, keys?, schedule?, steps?}), or "none"',
  },
  checkpoint: {
    type: "object",
    doc: "checkpoints of the model and the workers' state (lapse train --checkpoint DIR)",
    fields: {
      dir: {
        type: "string",
        required: true,
        path: true,
        doc: "folder of the checkpoints (on every node's own disk)",
      },
      every_epochs: {
        type: "integer",
        default: 1,
        min: 1,
        doc: "write a checkpoint after every N-th epoch",
      },
    },
  },
  resume: {
    type: "object",
    doc: "resume from the last complete checkpoint (lapse train --resume DIR)",
    fields: {
      dir: {
        type: "string",
        required: true,
        path: true,
        doc: "folder of the checkpoints to resume from",
      },
    },
  },
};

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
 * import { validateJobConfig } from "./job_config.ts";
 * import { task } from "../tasks/mf.ts";
 * const cfg = validateJobConfig({ task: "mf", model: { lr: 0.1 } }, task.schema);
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
    checkpoint: GENERIC_FIELDS.checkpoint,
    resume: GENERIC_FIELDS.resume,
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
  const checkpoint = get("checkpoint", sections.checkpoint) as JobConfig["checkpoint"];
  const resume = get("resume", sections.resume) as JobConfig["resume"];
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
      peer_timeout_ms: ps.peer_timeout_ms,
      staleness: ps.staleness,
    },
    localize,
    ...(checkpoint ? { checkpoint } : {}),
    ...(resume ? { resume } : {}),
  };
}

/** Options of {@linkcode loadJobConfig}. */
export interface LoadOptions {
  /**
   * Values for `section.key` paths that neither the file nor `--set` give (validated like
   * given values), e.g. `{ "cluster.workers_per_node": 2 }` from a cluster file.
   */
  fallbacks?: Record<string, unknown>;
  /**
   * The hint of a "config file not found" error, e.g. the CLI's list of shipped config names
   * (default: where the shipped configs are).
   */
  notFoundHint?: string;
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
  options: LoadOptions = {},
): Promise<JobConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`config file "${path}" not found`, {
        hint: options.notFoundHint ??
          "check the path; the shipped configs are in tasks/, e.g. tasks/mf.yaml",
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
  for (const [path, value] of Object.entries(options.fallbacks ?? {})) {
    const [section, key] = path.split(".");
    const sec = (raw as Record<string, unknown>)[section];
    if (sec === undefined || sec === null) {
      (raw as Record<string, unknown>)[section] = { [key]: value };
    } else if (isPlainObject(sec) && sec[key] === undefined) sec[key] = value;
  }
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
  const config = validateJobConfig(raw, schema, where);
  resolvePaths(config, schema, path, tracked.origins);
  return config;
}

/**
 * Makes the `path: true` fields of `data:` and `model:` absolute: relative to the config file's
 * folder (as users expect from a file next to their config), or to the working directory for a
 * value given by `--set`. Every node then reads the same absolute path.
 */
function resolvePaths(
  config: JobConfig,
  schema: TaskSchema,
  configPath: string,
  sets: Map<string, string>,
): void {
  const cwd = Deno.cwd();
  const configDir = dirname(isAbsolute(configPath) ? configPath : `${cwd}/${configPath}`);
  const walk = (value: unknown, field: FieldSchema, at: string) => {
    if (!isPlainObject(value) || field.fields === undefined) return;
    for (const [key, sub] of Object.entries(field.fields)) {
      const v = value[key];
      const p = joinPath(at, key);
      if (sub.path && typeof v === "string" && v !== "" && !isAbsolute(v)) {
        value[key] = normalizePath(`${sets.has(p) ? cwd : configDir}/${v}`);
      } else walk(v, sub, p);
    }
  };
  walk(config.data, schema.data, "data");
  walk(config.model, schema.model, "model");
  walk(config.checkpoint, GENERIC_FIELDS.checkpoint, "checkpoint");
  walk(config.resume, GENERIC_FIELDS.resume, "resume");
}

function isAbsolute(p: string): boolean {
  return p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p);
}

function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}
