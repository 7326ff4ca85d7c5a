/**
 * `--set PATH=VALUE`: overrides of a raw config from the command line, remembered by path so
 * that errors blame the flag, not the file.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { ConfigError } from "../core/errors.ts";
import { isPlainObject, joinPath } from "./paths.ts";
import { describe } from "./schema.ts";

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

export function applySetsTracked(
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
