/**
 * YAML with line numbers: every key's line is kept so that later errors can point at it.
 *
 * @module
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { ConfigError } from "../core/errors.ts";
import { joinPath } from "./paths.ts";

/** Largest YAML text accepted, in bytes (a job config is a few KiB). */
export const YAML_BYTES_MAX = 1024 * 1024;
/** Deepest nesting of mappings and lists accepted (a job config has 4 levels). */
export const YAML_DEPTH_MAX = 64;
/** Most aliases (`*name`) accepted, and the alias expansion limit of the `yaml` package. */
export const YAML_ALIASES_MAX = 100;

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

/**
 * Parses YAML text and records the line of every key, so that later errors can point at it.
 * A YAML syntax error becomes a {@linkcode ConfigError} with the line. So do the limits that
 * keep a hostile file cheap: at most {@linkcode YAML_BYTES_MAX} bytes, nesting at most
 * {@linkcode YAML_DEPTH_MAX} deep, at most {@linkcode YAML_ALIASES_MAX} aliases (an "alias
 * bomb" of a few hundred bytes would otherwise expand to gigabytes).
 *
 * @example
 * ```ts
 * const { value, lines } = parseYamlWithLines("task: mf\nmodel:\n  lr: 0.05\n", "mf.yaml");
 * // value = { task: "mf", model: { lr: 0.05 } }; lines.get("model.lr") === 3
 * ```
 */
export function parseYamlWithLines(text: string, file: string): ParsedYaml {
  if (text.length > YAML_BYTES_MAX) {
    throw new ConfigError(
      `the file is ${text.length} characters long, more than the ${YAML_BYTES_MAX} a config may have`,
      { file, hint: "a job or cluster config is a few KiB; data goes into data files" },
    );
  }
  const lineCounter = new LineCounter();
  let doc;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false });
  } catch (e) {
    // The parser recurses per nesting level: thousands of levels overflow the stack.
    if (e instanceof RangeError) throw tooDeep(file);
    throw e;
  }
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line ?? lineCounter.linePos(e.pos[0]).line;
    const what = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    throw new ConfigError(`invalid YAML: ${what}`, { file, line });
  }
  const lines = new Map<string, number>();
  const lineOf = (range: readonly number[] | null | undefined) =>
    range ? lineCounter.linePos(range[0]).line : undefined;
  let aliases = 0;
  // Aliases are not followed: their target's lines are recorded where it is defined, and
  // following them is what makes an alias bomb exponential.
  const walk = (node: unknown, path: string, depth: number): void => {
    if (depth > YAML_DEPTH_MAX) throw tooDeep(file, lineOf((node as { range?: number[] })?.range));
    if (isAlias(node)) {
      if (++aliases > YAML_ALIASES_MAX) {
        throw new ConfigError(
          `more than ${YAML_ALIASES_MAX} aliases (*${node.source})`,
          {
            file,
            line: lineOf(node.range),
            hint: "write the values out; a config needs few aliases",
          },
        );
      }
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
  try {
    walk(doc.contents, "", 0);
  } catch (e) {
    if (e instanceof RangeError) throw tooDeep(file);
    throw e;
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: YAML_ALIASES_MAX });
  } catch (e) {
    if (e instanceof RangeError) throw tooDeep(file);
    const message = (e as Error).message.split("\n")[0];
    if (/alias/i.test(message)) {
      throw new ConfigError(
        `invalid YAML: its aliases expand to too many values (more than ${YAML_ALIASES_MAX} ` +
          `expansions; an "alias bomb")`,
        { file, hint: "write the values out; a config needs few aliases" },
      );
    }
    throw new ConfigError(`invalid YAML: ${message}`, { file });
  }
  return { value: value ?? null, file, lines };
}

function tooDeep(file: string, line?: number): ConfigError {
  return new ConfigError(`invalid YAML: nested more than ${YAML_DEPTH_MAX} levels deep`, {
    file,
    line,
    hint: "a config has a few levels of sections; check the brackets and the indentation",
  });
}
