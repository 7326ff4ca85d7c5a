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

import { writeNpy, writeTextAtomic } from "../data/npy.ts";

/** Reads `keys.length` rows of `width` floats (value + accumulator) into `out`. */
export type RowReader = (keys: Uint32Array, out: Float32Array) => Promise<void> | undefined;

/**
 * Writes `rows` keys into an `.npy` of `[rows, floats]` (data/npy.ts: atomic, chunked), reading
 * `chunk` keys at a time of `width` floats each (value + accumulator) and keeping the first
 * `floats` of each.
 */
async function writeRows(
  path: string,
  rows: number,
  floats: number,
  width: number,
  read: RowReader,
  chunk: number,
): Promise<void> {
  const keys = new Uint32Array(chunk);
  const buf = new Float32Array(chunk * width);
  await writeNpy(path, rows, floats, async (first, n, out) => {
    for (let i = 0; i < n; i++) keys[i] = first + i;
    const p = read(keys.subarray(0, n), buf.subarray(0, n * width));
    if (p) await p;
    for (let i = 0; i < n; i++) out.set(buf.subarray(i * width, i * width + floats), i * floats);
  }, chunk);
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
  await writeRows(`${dir}/entities.npy`, o.entities, o.dim, 2 * o.dim, o.readEntities, chunk);
  await writeRows(
    `${dir}/relations.npy`,
    o.relations,
    o.relFloats,
    2 * o.relFloats,
    o.readRelations,
    Math.max(1, Math.min(chunk, Math.floor((1 << 24) / o.relFloats))),
  );
  const names = (list: string[] | undefined, n: number, p: string) =>
    Array.from({ length: n }, (_, i) => list?.[i] ?? `${p}${i}`).join("\n") + "\n";
  await writeTextAtomic(`${dir}/entity_names.txt`, names(o.entityNames, o.entities, "e"));
  await writeTextAtomic(`${dir}/relation_names.txt`, names(o.relationNames, o.relations, "r"));
  await writeTextAtomic(
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
