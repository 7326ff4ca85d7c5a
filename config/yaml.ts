/**
 * YAML with line numbers: every key's line is kept so that later errors can point at it.
 *
 * @module
 */
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { ConfigError } from "../core/errors.ts";
import { joinPath } from "./paths.ts";

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
