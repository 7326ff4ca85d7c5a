/**
 * Writes trained kge embeddings for numpy and pandas (see README "kge"):
 *
 * - `entities.npy`: float32 `[entities, dim]`, row i = entity i (the AdaGrad accumulators are
 *   not written);
 * - `relations.npy`: float32 `[relations, dim]` (RESCAL: `[relations, dim * dim]`, each row a
 *   row-major dim x dim matrix);
 * - `entity_names.txt`, `relation_names.txt`: line i = the name of id i (`e<i>` / `r<i>` when
 *   the data has no names);
 * - `meta.json`: algorithm, dim, counts.
 *
 * Every file is written to a temporary name in the directory and renamed over the final one,
 * so a reader never sees a half-written file.
 *
 * @module
 */

/** Reads `keys.length` rows of `width` floats (value + accumulator) into `out`. */
export type RowReader = (keys: Uint32Array, out: Float32Array) => Promise<void> | undefined;

/** The header of a little-endian float32 C-order `.npy` file of `shape`. */
export function npyHeader(shape: number[]): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${
    shape.length === 1 ? "," : ""
  }), }`;
  // magic (6) + version (2) + length (2) + dict + padding + "\n": a multiple of 64.
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const bytes = new Uint8Array(total);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(bytes.buffer).setUint16(8, total - 10, true);
  const text = dict.padEnd(total - 11, " ") + "\n";
  for (let i = 0; i < text.length; i++) bytes[10 + i] = text.charCodeAt(i);
  return bytes;
}

async function writeAll(f: Deno.FsFile, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await f.write(b.subarray(off));
}

/**
 * Streams `rows` rows into an `.npy` of `[rows, floats]`, reading `chunk` keys at a time of
 * `width` floats each and keeping the first `floats` of each.
 */
async function writeNpy(
  path: string,
  rows: number,
  floats: number,
  width: number,
  read: RowReader,
  chunk: number,
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(f, npyHeader([rows, floats]));
    const keys = new Uint32Array(chunk);
    const buf = new Float32Array(chunk * width);
    const out = new Float32Array(chunk * floats);
    for (let a = 0; a < rows; a += chunk) {
      const n = Math.min(chunk, rows - a);
      for (let i = 0; i < n; i++) keys[i] = a + i;
      const p = read(keys.subarray(0, n), buf.subarray(0, n * width));
      if (p) await p;
      for (let i = 0; i < n; i++) {
        out.set(buf.subarray(i * width, i * width + floats), i * floats);
      }
      // Little-endian bytes (every platform Deno runs on).
      await writeAll(f, new Uint8Array(out.buffer, 0, n * floats * 4));
    }
  } finally {
    f.close();
  }
  await Deno.rename(tmp, path);
}

async function writeText(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** What {@linkcode writeKgeEmbeddings} writes. */
export interface KgeOutput {
  algorithm: string;
  dim: number;
  entities: number;
  relations: number;
  /** Floats of a relation embedding (dim, or dim * dim for RESCAL). */
  relFloats: number;
  entityNames?: string[];
  relationNames?: string[];
  readEntities: RowReader;
  readRelations: RowReader;
  /** Keys per read (default 4096). */
  chunk?: number;
}

/** Writes the embeddings and names into `dir` (created if needed). */
export async function writeKgeEmbeddings(dir: string, o: KgeOutput): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const chunk = o.chunk ?? 4096;
  await writeNpy(`${dir}/entities.npy`, o.entities, o.dim, 2 * o.dim, o.readEntities, chunk);
  await writeNpy(
    `${dir}/relations.npy`,
    o.relations,
    o.relFloats,
    2 * o.relFloats,
    o.readRelations,
    Math.max(1, Math.min(chunk, Math.floor((1 << 24) / o.relFloats))),
  );
  const names = (list: string[] | undefined, n: number, p: string) =>
    Array.from({ length: n }, (_, i) => list?.[i] ?? `${p}${i}`).join("\n") + "\n";
  await writeText(`${dir}/entity_names.txt`, names(o.entityNames, o.entities, "e"));
  await writeText(`${dir}/relation_names.txt`, names(o.relationNames, o.relations, "r"));
  await writeText(
    `${dir}/meta.json`,
    JSON.stringify(
      {
        algorithm: o.algorithm,
        dim: o.dim,
        entities: o.entities,
        relations: o.relations,
        relation_shape: o.algorithm === "rescal" ? [o.dim, o.dim] : [o.dim],
      },
      null,
      2,
    ) + "\n",
  );
}
