/**
 * NumPy `.npy` files of float32 (version 1.0, little-endian, C order): what `lapse train --out`
 * writes so that `numpy.load` (and pandas through it) reads a trained model directly. Writes are
 * atomic: a temporary file in the same folder, then a rename over the final name.
 *
 * @module
 */

/** The header of a little-endian float32 C-order `.npy` file of `shape`. */
export function npyHeader(shape: readonly number[]): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${
    shape.length === 1 ? "," : ""
  }), }`;
  // magic (6) + version (2) + header length (2) + dict + padding + "\n": a multiple of 64.
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
 * Writes a `[rows, cols]` float32 array (`cols` 0: a vector of `rows`) to `path` atomically,
 * `chunkRows` rows at a time: `fill(first, n, out)` puts rows `first .. first+n-1` into `out`
 * (`n * cols` floats; may return a Promise, e.g. of a pull).
 */
export async function writeNpy(
  path: string,
  rows: number,
  cols: number,
  fill: (first: number, n: number, out: Float32Array) => Promise<void> | void,
  chunkRows = 4096,
): Promise<void> {
  const width = Math.max(1, cols);
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(f, npyHeader(cols === 0 ? [rows] : [rows, cols]));
    const out = new Float32Array(Math.max(1, Math.min(chunkRows, rows)) * width);
    for (let a = 0; a < rows; a += chunkRows) {
      const n = Math.min(chunkRows, rows - a);
      const view = out.subarray(0, n * width);
      await fill(a, n, view);
      // Little-endian bytes on every platform Deno runs on.
      await writeAll(f, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    }
    await f.sync();
  } catch (e) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  f.close();
  await Deno.rename(tmp, path);
}

/** Writes a text file atomically (temporary file in the same folder, then a rename). */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, text);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await Deno.rename(tmp, path);
}

/** A float32 array read from an `.npy` file. */
export interface Npy {
  shape: number[];
  data: Float32Array;
}

/** Reads a float32 little-endian C-order `.npy` file; anything else is a `TypeError`. */
export async function readNpy(path: string): Promise<Npy> {
  const bytes = await Deno.readFile(path);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) {
    throw new TypeError(`${path}: not a .npy file`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
    throw new TypeError(`${path}: expected a little-endian float32 C-order array (${header})`);
  }
  const m = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (m === null) throw new TypeError(`${path}: no shape in the header`);
  const shape = m[1].split(",").map((x) => x.trim()).filter((x) => x !== "").map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const off = start + headerLen;
  if (bytes.length - off < n * 4) {
    throw new TypeError(`${path}: ${bytes.length - off} bytes of data, expected ${n * 4}`);
  }
  // Copied: the data's offset in the file need not be a multiple of 4.
  const data = new Float32Array(n);
  new Uint8Array(data.buffer).set(bytes.subarray(off, off + n * 4));
  return { shape, data };
}
