/**
 * mf's trained model on disk (`lapse train --out DIR`) and back (`lapse predict --model DIR`).
 * Files in DIR, each written to a temporary name and renamed (a crash never leaves a
 * half-written file under a final name):
 *
 * - `W.npy`: float32 `[rows, rank]`, row i = the factors of row i (0-based dense key);
 * - `H.npy`: float32 `[cols, rank]`, the factors of column j;
 * - `row_bias.npy`, `col_bias.npy`: float32 `[rows]`, `[cols]` (only with `model.biases`);
 * - `row_ids.txt`, `col_ids.txt`: line i = the id of key i as written in the data file (only
 *   when the ids are names, see `data.ids`);
 * - `model.json`: rank, sizes, `mu`, `sigma`, whether there are biases, the data's index base.
 *
 * The prediction for (i, j) is `mu + sigma * (row_bias[i] + col_bias[j] + W[i] . H[j])`
 * (without biases: `mu + sigma * W[i] . H[j]`); in numpy:
 *
 *     import numpy as np, json
 *     m = json.load(open("DIR/model.json")); W = np.load("DIR/W.npy"); H = np.load("DIR/H.npy")
 *     pred = m["mu"] + m["sigma"] * (W @ H.T)   # + row_bias[:, None] + col_bias[None, :]
 *
 * @module
 */
import { readNpy, writeNpy, writeTextAtomic } from "../data/npy.ts";
import { MF_BIAS, mfPredict } from "./mf.ts";
import { topK } from "../core/stats.ts";

/** `model.json` of an mf model. */
export interface MfModelMeta {
  format: "lapse-mf-1";
  rows: number;
  cols: number;
  rank: number;
  mu: number;
  sigma: number;
  biases: boolean;
  /** How the data file numbered rows and columns (ids there = key + index_base). */
  index_base: number;
  /** Files of the ids when the data's ids are names (else null). */
  row_ids: string | null;
  col_ids: string | null;
  /** The formula, for a reader of the folder. */
  prediction: string;
}

/** Reads `keys.length` rows of `dim` floats (factors, bias, ...) into `out` (e.g. a pull). */
export type RowReader = (keys: Uint32Array, out: Float32Array) => Promise<void> | undefined;

/** What {@linkcode writeMfModel} needs. */
export interface MfModelSource {
  meta: Omit<MfModelMeta, "format" | "prediction" | "row_ids" | "col_ids">;
  /** Floats per table row (rank, then bias, then optimizer state). */
  dim: number;
  readW: RowReader;
  readH: RowReader;
  rowNames?: readonly string[];
  colNames?: readonly string[];
}

async function writeTable(
  dir: string,
  name: string,
  biasName: string | null,
  n: number,
  k: number,
  dim: number,
  read: RowReader,
): Promise<void> {
  const chunk = Math.max(1, Math.min(4096, Math.floor((1 << 22) / dim)));
  const keys = new Uint32Array(chunk);
  const buf = new Float32Array(chunk * dim);
  const bias = biasName !== null ? new Float32Array(n) : null;
  await writeNpy(`${dir}/${name}`, n, k, async (first, count, out) => {
    for (let i = 0; i < count; i++) keys[i] = first + i;
    const p = read(keys.subarray(0, count), buf.subarray(0, count * dim));
    if (p) await p;
    for (let i = 0; i < count; i++) {
      out.set(buf.subarray(i * dim, i * dim + k), i * k);
      if (bias !== null) bias[first + i] = buf[i * dim + k];
    }
  }, chunk);
  if (bias !== null) {
    await writeNpy(`${dir}/${biasName}`, n, 0, (first, count, out) => {
      out.set(bias.subarray(first, first + count));
    });
  }
}

/** Writes the model into `dir` (created if needed); see the module doc for the files. */
export async function writeMfModel(dir: string, src: MfModelSource): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const m = src.meta;
  await writeTable(
    dir,
    "W.npy",
    m.biases ? "row_bias.npy" : null,
    m.rows,
    m.rank,
    src.dim,
    src.readW,
  );
  await writeTable(
    dir,
    "H.npy",
    m.biases ? "col_bias.npy" : null,
    m.cols,
    m.rank,
    src.dim,
    src.readH,
  );
  if (src.rowNames) await writeTextAtomic(`${dir}/row_ids.txt`, src.rowNames.join("\n") + "\n");
  if (src.colNames) await writeTextAtomic(`${dir}/col_ids.txt`, src.colNames.join("\n") + "\n");
  const meta: MfModelMeta = {
    format: "lapse-mf-1",
    ...m,
    row_ids: src.rowNames ? "row_ids.txt" : null,
    col_ids: src.colNames ? "col_ids.txt" : null,
    prediction: m.biases
      ? "mu + sigma * (row_bias[i] + col_bias[j] + W[i] . H[j])"
      : "mu + sigma * (W[i] . H[j])",
  };
  // Last: a folder with model.json is complete.
  await writeTextAtomic(`${dir}/model.json`, JSON.stringify(meta, null, 2) + "\n");
}

/** A loaded mf model: rows of `k + 1` floats (factors, then bias; 0 without biases). */
export class MfModel {
  private constructor(
    readonly meta: MfModelMeta,
    private readonly W: Float32Array,
    private readonly H: Float32Array,
    private readonly rowIndex: Map<string, number> | null,
    private readonly colIndex: Map<string, number> | null,
    private readonly colNames: string[] | null,
  ) {}

  /** Reads a model folder written by {@linkcode writeMfModel}. */
  static async load(dir: string): Promise<MfModel> {
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/model.json`)) as MfModelMeta;
    if (meta.format !== "lapse-mf-1") {
      throw new TypeError(`${dir}/model.json: not an mf model (format ${meta.format})`);
    }
    const k = meta.rank;
    const join = async (name: string, bias: string, n: number) => {
      const f = await readNpy(`${dir}/${name}`);
      if (f.shape[0] !== n || f.shape[1] !== k) {
        throw new TypeError(`${dir}/${name}: shape [${f.shape}], expected [${n}, ${k}]`);
      }
      const b = meta.biases ? (await readNpy(`${dir}/${bias}`)).data : null;
      const out = new Float32Array(n * (k + 1));
      for (let i = 0; i < n; i++) {
        out.set(f.data.subarray(i * k, i * k + k), i * (k + 1));
        out[i * (k + 1) + k] = b !== null ? b[i] : 0;
      }
      return out;
    };
    const names = async (file: string | null) =>
      file === null ? null : (await Deno.readTextFile(`${dir}/${file}`)).split("\n").slice(0, -1);
    const rowNames = await names(meta.row_ids), colNames = await names(meta.col_ids);
    const index = (list: string[] | null) =>
      list === null ? null : new Map(list.map((name, i) => [name, i]));
    return new MfModel(
      meta,
      await join("W.npy", "row_bias.npy", meta.rows),
      await join("H.npy", "col_bias.npy", meta.cols),
      index(rowNames),
      index(colNames),
      colNames,
    );
  }

  /** The key of a row id as the data file wrote it; a `RangeError` for an unknown id. */
  rowKey(id: string): number {
    return this.key(id, this.rowIndex, this.meta.rows, "row");
  }

  colKey(id: string): number {
    return this.key(id, this.colIndex, this.meta.cols, "column");
  }

  /** The data file's id of column key `j`. */
  colId(j: number): string {
    return this.colNames !== null ? this.colNames[j] : String(j + this.meta.index_base);
  }

  private key(id: string, names: Map<string, number> | null, n: number, what: string): number {
    const t = id.trim();
    if (names !== null) {
      const k = names.get(t);
      if (k === undefined) throw new RangeError(`unknown ${what} id "${t}"`);
      return k;
    }
    const v = Number(t);
    const key = v - this.meta.index_base;
    if (t === "" || !Number.isInteger(v) || key < 0 || key >= n) {
      throw new RangeError(
        `${what} id "${t}" is not an integer in ${this.meta.index_base}..${
          n - 1 + this.meta.index_base
        }`,
      );
    }
    return key;
  }

  /** The predicted rating of keys (i, j), with mf's own prediction function. */
  predict(i: number, j: number): number {
    const k = this.meta.rank, d = k + 1;
    return this.meta.mu +
      this.meta.sigma * mfPredict(this.W, i * d, this.H, j * d, k, this.meta.biases ? MF_BIAS : 0);
  }

  /** The `n` columns with the highest predictions for row key `i`: [key, prediction], best first. */
  topColumns(i: number, n: number): [number, number][] {
    return topK(this.meta.cols, n, (j) => this.predict(i, j));
  }
}
