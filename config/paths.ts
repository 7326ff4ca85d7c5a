/**
 * Paths into a raw config (`model.lr`, `localize[0].when`) and where its keys came from, shared
 * by the YAML reader, `--set` and the schema checker.
 *
 * @module
 */

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
export function joinPath(parent: string, key: string | number): string {
  if (typeof key === "number") return `${parent}[${key}]`;
  return parent === "" ? key : `${parent}.${key}`;
}

export function parentOf(path: string): string {
  const m = /^(.*?)(?:\.[^.[\]]*|\[\d+\])$/.exec(path);
  return m ? m[1] : "";
}

export function lastOf(path: string): string {
  const m = /(?:^|\.)([^.[\]]*)$/.exec(path);
  return m ? m[1] : path;
}

/** True for a plain mapping (not null, not an array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
