/**
 * Lines of a byte stream (a child process's stdout, our stdin), for the processes that talk in
 * text lines: the embedded local cluster's nodes and the manual benchmark's workers.
 *
 * @module
 */

/**
 * Calls `onLine` for every line of `stream` (without the newline; a last line without one
 * too) until the stream ends. A stream that errors (the other side is gone) ends quietly.
 *
 * @example
 * ```ts
 * import { readLines } from "./lines.ts";
 * const lines: string[] = [];
 * await readLines(new Blob(["a\nb"]).stream(), (l) => lines.push(l));
 * console.assert(lines.join(",") === "a,b");
 * ```
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let rest = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += value;
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        onLine(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
    }
  } catch { /* the other side is gone */ }
  if (rest.length > 0) onLine(rest);
}
