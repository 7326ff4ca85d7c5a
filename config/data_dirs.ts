/**
 * Which files a job may read on a node: only files under the node's data directories
 * (`lapse serve --data-dir DIR`, repeatable; default the node's working directory), after
 * resolving symlinks and `..`. The files a job reads are the values of the `path: true` fields
 * of its task's schema (data files), so a task must declare every file field that way.
 *
 * @module
 */
import type { FieldSchema, JobConfig, TaskSchema } from "../core/types.ts";
import { userError } from "../core/errors.ts";

/** A file field of a job config: `data.file` and its value. */
export interface PathField {
  key: string;
  value: string;
}

/** The `dir` of the `checkpoint:` and `resume:` sections (nodes write and read there). */
const DIR_SECTION: FieldSchema = {
  type: "object",
  doc: "checkpoint folder",
  fields: { dir: { type: "string", path: true, doc: "folder" } },
};

/**
 * The values of the `path: true` fields of `data:` and `model:` (non-empty strings), and the
 * checkpoint folders (`checkpoint.dir`, `resume.dir`).
 */
export function pathFields(config: JobConfig, schema: TaskSchema): PathField[] {
  const out: PathField[] = [];
  const walk = (value: unknown, field: FieldSchema | undefined, at: string) => {
    if (field?.fields === undefined || typeof value !== "object" || value === null) return;
    for (const [key, sub] of Object.entries(field.fields)) {
      const v = (value as Record<string, unknown>)[key];
      const p = `${at}.${key}`;
      if (sub.path && typeof v === "string" && v !== "") out.push({ key: p, value: v });
      else walk(v, sub, p);
    }
  };
  walk(config.data, schema.data, "data");
  walk(config.model, schema.model, "model");
  walk(config.checkpoint, DIR_SECTION, "checkpoint");
  walk(config.resume, DIR_SECTION, "resume");
  return out;
}

/**
 * Resolves data directories (symlinks, `..`) once, at node start.
 *
 * @throws a user error naming a directory that does not exist or is not a directory.
 */
export function resolveDataDirs(dirs: readonly string[]): string[] {
  return dirs.map((d) => {
    let real: string;
    try {
      real = Deno.realPathSync(d);
    } catch (e) {
      throw userError(
        `--data-dir "${d}": ${
          e instanceof Deno.errors.NotFound ? "no such directory" : (e as Error).message
        }`,
      );
    }
    if (!Deno.statSync(real).isDirectory) throw userError(`--data-dir "${d}" is not a directory`);
    return real;
  });
}

/**
 * Where `path` really points: symlinks and `..` resolved. A path that does not exist (yet) is
 * resolved through its nearest existing ancestor, so that the check cannot be dodged with a
 * missing file, and the task can still say "not found" for an allowed one.
 */
export function realPathOf(path: string): string {
  const abs = normalizePath(path.startsWith("/") ? path : `${Deno.cwd()}/${path}`);
  const parts = abs.split("/").filter((p) => p !== "");
  for (let n = parts.length; n >= 0; n--) {
    const head = "/" + parts.slice(0, n).join("/");
    try {
      const real = Deno.realPathSync(head);
      const rest = parts.slice(n).join("/");
      return rest === "" ? real : `${real === "/" ? "" : real}/${rest}`;
    } catch {
      // Not there: try the parent.
    }
  }
  return abs;
}

/** True if `real` (a resolved path) is one of `dirs` or under one of them. */
export function isUnder(real: string, dirs: readonly string[]): boolean {
  return dirs.some((d) => d === "/" || real === d || real.startsWith(d + "/"));
}

/**
 * Refuses a job whose file fields point outside `dirs` (resolved data directories of node
 * `node`). The error names the field, the file and the allowed directories.
 */
export function checkDataPaths(
  config: JobConfig,
  schema: TaskSchema,
  dirs: readonly string[],
  node: number,
): void {
  for (const { key, value } of pathFields(config, schema)) {
    if (isUnder(realPathOf(value), dirs)) continue;
    throw userError(
      `${key} "${value}" is outside the data directories of node ${node} (${dirs.join(", ")}): ` +
        `move the file under one of them, or start the node with --data-dir DIR`,
    );
  }
}

/** Removes `.` and `..` segments of an absolute POSIX path (no file system access). */
export function normalizePath(p: string): string {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}
