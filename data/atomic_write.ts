/**
 * Atomic file writes: the data goes to a temporary file next to the target, is synced, and is
 * renamed over the target. A crash or an error never leaves a half-written file in its place.
 *
 * @module
 */

/** Appends bytes to the file being written. */
export type WriteBytes = (bytes: Uint8Array) => Promise<void>;

/**
 * Writes `path` atomically: `fill` gets a function that appends bytes (call it as often as
 * needed, so large outputs are streamed); when it returns, the file is synced and renamed into
 * place. On an error the temporary file is removed and the target is left as it was.
 *
 * @example
 * ```ts ignore
 * await writeFileAtomic("out.txt", async (write) => {
 *   await write(new TextEncoder().encode("hello\n"));
 * });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  fill: (write: WriteBytes) => Promise<void>,
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${Math.floor(Math.random() * 1e9)}`;
  let created = false;
  try {
    const f = await Deno.open(tmp, { write: true, createNew: true });
    created = true;
    try {
      await fill(async (bytes) => {
        let off = 0;
        while (off < bytes.length) off += await f.write(bytes.subarray(off));
      });
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    if (created) {
      try {
        await Deno.remove(tmp);
      } catch { /* renamed or gone */ }
    }
    throw e;
  }
}
