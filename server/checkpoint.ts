/**
 * Checkpoints on disk: each node writes the keys it owns (values and its directory entries)
 * plus the resumable state of its workers into one file; node 0 then writes a manifest naming
 * the complete checkpoint. Every file is written atomically (temporary file, fsync, rename,
 * fsync of the folder), and the manifest is written last, so a crash at any moment leaves the
 * previous manifest and the files it names intact: a half-written checkpoint never replaces a
 * good one.
 *
 * ```text
 * DIR/manifest.json                 the last complete checkpoint (JSON, see CheckpointManifest)
 * DIR/epoch-000004/node-0.bin       node 0's part of the checkpoint taken after epoch 4
 * ```
 *
 * Node file (little endian, every part 4-byte aligned):
 *
 * ```text
 * "LAPSECK1"  u32 header bytes  header JSON (NodeFileHeader) padded with spaces to 4 bytes
 * per table:  u32 keys[local]   f32 values[local * dim]   i32 owner[keys] (directory; -1: not home)
 * ```
 *
 * The files of one checkpoint restore a cluster of the same size and placement exactly: every
 * node gets back the keys it held and the directory entries of the keys it is home of.
 *
 * @module
 */
import type { Table } from "./store.ts";

/** Format tag of the manifest. */
export const CHECKPOINT_FORMAT = "lapse-checkpoint-v1";
const MAGIC = new TextEncoder().encode("LAPSECK1");
/** Name of the manifest in a checkpoint folder. */
export const MANIFEST_FILE = "manifest.json";

/** One node's file of a checkpoint, as the manifest names it. */
export interface CheckpointFile {
  node: number;
  /** Relative to the checkpoint folder. */
  path: string;
  bytes: number;
  /** FNV-1a over the file's 32-bit words (see {@linkcode hashWords}). */
  hash: number;
}

/** `DIR/manifest.json`: the last complete checkpoint. */
export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  task: string;
  nodes: number;
  workers_per_node: number;
  seed: number;
  /** The checkpoint was taken after this epoch (0-based): training resumes at epoch + 1. */
  epoch: number;
  files: CheckpointFile[];
  /** ISO time, for people. */
  written: string;
}

/** The JSON header of a node file. */
export interface NodeFileHeader {
  node: number;
  nodes: number;
  epoch: number;
  tables: { name: string; keys: number; dim: number; local: number }[];
  /** Per worker of the node (global rank): the state its task gave to checkpoint(). */
  workers: { worker: number; state: unknown }[];
}

/** What a table contributes: its store and its directory (owner per key, -1 if not home). */
export interface TableForCheckpoint {
  table: Table;
  owner: Int32Array;
}

/** The folder of the checkpoint taken after `epoch`, relative to the checkpoint folder. */
export function epochFolder(epoch: number): string {
  return `epoch-${String(epoch).padStart(6, "0")}`;
}

/** 32-bit FNV-1a over 32-bit words, continuing from `h` (start: 0x811c9dc5). */
export function hashWords(bytes: Uint8Array, h = 0x811c9dc5): number {
  if (bytes.byteOffset % 4 !== 0 || bytes.length % 4 !== 0) {
    throw new RangeError(`hashWords needs 4-byte aligned parts, got offset ${bytes.byteOffset}`);
  }
  const w = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2);
  for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w[i], 0x01000193);
  return h >>> 0;
}

/** Test-only fault injection: `LAPSE_FAILPOINT=checkpoint_write:EPOCH` (see writeNodeFile). */
function failpoint(name: string, epoch: number): boolean {
  let v: string | undefined;
  try {
    v = Deno.env.get("LAPSE_FAILPOINT");
  } catch {
    return false; // no --allow-env
  }
  return v === `${name}:${epoch}`;
}

/** The byte parts of one node's file, in order (views of fresh arrays, 4-byte aligned). */
export function nodeFileParts(
  self: number,
  nodes: number,
  epoch: number,
  tables: TableForCheckpoint[],
  workers: { worker: number; state: unknown }[],
): Uint8Array[] {
  const header: NodeFileHeader = { node: self, nodes, epoch, tables: [], workers };
  const body: Uint8Array[] = [];
  for (const { table, owner } of tables) {
    const dim = table.dim;
    const index = table.index;
    const local = table.localCount;
    const keys = new Uint32Array(local);
    const values = new Float32Array(local * dim);
    const view = table.refresh();
    let n = 0;
    for (let k = 0; k < index.length; k++) {
      const slot = index[k];
      if (slot < 0) continue;
      keys[n] = k;
      values.set(view.subarray(slot * dim, slot * dim + dim), n * dim);
      n++;
    }
    if (n !== local) {
      throw new Error(`Invariant: table "${table.name}" has ${n} local keys, counted ${local}`);
    }
    header.tables.push({ name: table.name, keys: table.keys, dim, local });
    body.push(
      new Uint8Array(keys.buffer),
      new Uint8Array(values.buffer),
      new Uint8Array(owner.buffer.slice(owner.byteOffset, owner.byteOffset + owner.byteLength)),
    );
  }
  let json = JSON.stringify(header);
  json += " ".repeat((4 - (new TextEncoder().encode(json).length % 4)) % 4);
  const jsonBytes = new TextEncoder().encode(json);
  const head = new Uint8Array(MAGIC.length + 4 + jsonBytes.length);
  head.set(MAGIC, 0);
  new DataView(head.buffer).setUint32(MAGIC.length, jsonBytes.length, true);
  head.set(jsonBytes, MAGIC.length + 4);
  return [head, ...body];
}

/**
 * Writes `parts` to `path` atomically: a temporary file next to it, fsync, rename over `path`,
 * fsync of the folder. Returns the bytes written and their hash.
 */
export async function writeAtomic(
  path: string,
  parts: Uint8Array[],
  options: { failAfterBytes?: number } = {},
): Promise<{ bytes: number; hash: number }> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
  let bytes = 0, hash = 0x811c9dc5;
  try {
    for (const part of parts) {
      hash = hashWords(part, hash);
      let done = 0;
      while (done < part.length) {
        if (options.failAfterBytes !== undefined && bytes + done >= options.failAfterBytes) {
          // A real kill -9 in the middle of the write (tests: LAPSE_FAILPOINT).
          Deno.kill(Deno.pid, "SIGKILL");
          await new Promise(() => {});
        }
        const end = options.failAfterBytes !== undefined
          ? Math.min(part.length, done + 65536)
          : part.length;
        done += await file.write(part.subarray(done, end));
      }
      bytes += part.length;
    }
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  await syncFolder(path.slice(0, path.lastIndexOf("/")) || ".");
  return { bytes, hash };
}

/** fsync of a folder, so that a rename in it survives a crash (best effort off Linux). */
async function syncFolder(dir: string): Promise<void> {
  try {
    const f = await Deno.open(dir, { read: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
  } catch {
    // Some platforms cannot open or sync a folder; the rename is still atomic.
  }
}

/** Writes this node's file of the checkpoint after `epoch` under `dir`. */
export async function writeNodeFile(
  dir: string,
  self: number,
  nodes: number,
  epoch: number,
  tables: TableForCheckpoint[],
  workers: { worker: number; state: unknown }[],
): Promise<CheckpointFile> {
  const folder = epochFolder(epoch);
  await Deno.mkdir(`${dir}/${folder}`, { recursive: true });
  const rel = `${folder}/node-${self}.bin`;
  const parts = nodeFileParts(self, nodes, epoch, tables, workers);
  const total = parts.reduce((a, p) => a + p.length, 0);
  const { bytes, hash } = await writeAtomic(`${dir}/${rel}`, parts, {
    failAfterBytes: failpoint("checkpoint_write", epoch) ? total >> 1 : undefined,
  });
  return { node: self, path: rel, bytes, hash };
}

/** Writes the manifest (last: it makes the checkpoint the one `--resume` uses). */
export async function writeManifest(dir: string, manifest: CheckpointManifest): Promise<void> {
  const text = JSON.stringify(manifest, null, 2) + "\n";
  const bytes = new TextEncoder().encode(text + " ".repeat((4 - text.length % 4) % 4));
  await writeAtomic(`${dir}/${MANIFEST_FILE}`, [bytes]);
}

/**
 * Reads `DIR/manifest.json`.
 *
 * @throws {Error} naming the folder when there is no complete checkpoint or it is not one.
 */
export async function readManifest(dir: string): Promise<CheckpointManifest> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${MANIFEST_FILE}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `no complete checkpoint in "${dir}" (${MANIFEST_FILE} is missing): check --resume, ` +
          `or train with --checkpoint ${dir} first`,
      );
    }
    throw new Error(`cannot read the checkpoint manifest in "${dir}": ${(e as Error).message}`);
  }
  let m: CheckpointManifest;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new Error(`"${dir}/${MANIFEST_FILE}" is not valid JSON: ${(e as Error).message}`);
  }
  if (m?.format !== CHECKPOINT_FORMAT || !Array.isArray(m.files) || !Number.isInteger(m.epoch)) {
    throw new Error(`"${dir}/${MANIFEST_FILE}" is not a ${CHECKPOINT_FORMAT} manifest`);
  }
  return m;
}

/** A node file read back and checked. */
export interface NodeFile {
  header: NodeFileHeader;
  /** Per table, in header order. */
  tables: { keys: Uint32Array; values: Float32Array; owner: Int32Array }[];
  bytes: number;
}

/**
 * Reads a node file and checks it against its manifest entry (size and hash).
 *
 * @throws {Error} naming the file for a missing, truncated, corrupt or foreign file.
 */
export async function readNodeFile(dir: string, entry: CheckpointFile): Promise<NodeFile> {
  const path = `${dir}/${entry.path}`;
  let data: Uint8Array;
  try {
    data = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`cannot read checkpoint file "${path}": ${(e as Error).message}`);
  }
  if (data.length !== entry.bytes || hashWords(data) !== entry.hash) {
    throw new Error(
      `checkpoint file "${path}" is damaged: ${data.length} bytes, the manifest says ` +
        `${entry.bytes} (or its hash differs)`,
    );
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (data[i] !== MAGIC[i]) throw new Error(`"${path}" is not a lapse checkpoint file`);
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const headerBytes = dv.getUint32(MAGIC.length, true);
  let at = MAGIC.length + 4;
  const header = JSON.parse(
    new TextDecoder().decode(data.subarray(at, at + headerBytes)),
  ) as NodeFileHeader;
  at += headerBytes;
  const tables: NodeFile["tables"] = [];
  const take = (n: number) => {
    if (at + n > data.length) throw new Error(`checkpoint file "${path}" is truncated`);
    const part = data.slice(at, at + n); // a fresh, aligned copy
    at += n;
    return part.buffer;
  };
  for (const t of header.tables) {
    tables.push({
      keys: new Uint32Array(take(4 * t.local)),
      values: new Float32Array(take(4 * t.local * t.dim)),
      owner: new Int32Array(take(4 * t.keys)),
    });
  }
  return { header, tables, bytes: data.length };
}

/**
 * Puts a node file's keys and directory back into freshly created tables (same names and
 * sizes): every key the tables hold now is removed, the checkpoint's keys are inserted.
 *
 * @throws {Error} when the tables do not match the checkpoint's.
 */
export function restoreTables(tables: TableForCheckpoint[], file: NodeFile): void {
  const h = file.header;
  if (h.tables.length !== tables.length) {
    throw new Error(
      `the checkpoint has ${h.tables.length} tables, the job ${tables.length}: resume the job ` +
        `that wrote it`,
    );
  }
  tables.forEach(({ table, owner }, i) => {
    const t = h.tables[i];
    if (t.name !== table.name || t.keys !== table.keys || t.dim !== table.dim) {
      throw new Error(
        `checkpoint table ${t.name} (${t.keys} x ${t.dim}) does not match the job's table ` +
          `${table.name} (${table.keys} x ${table.dim}): resume with the same model settings`,
      );
    }
    const scratch = new Float32Array(table.dim);
    for (let k = 0; k < table.index.length; k++) {
      if (table.index[k] >= 0) table.remove(k, scratch, 0);
    }
    const { keys, values, owner: savedOwner } = file.tables[i];
    for (let n = 0; n < keys.length; n++) table.insert(keys[n], values, n * table.dim);
    owner.set(savedOwner);
  });
}

/** Removes this node's files of checkpoints older than `epoch` (best effort). */
export async function removeOlderNodeFiles(
  dir: string,
  self: number,
  epoch: number,
): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return;
  }
  for (const e of entries) {
    const m = /^epoch-(\d+)$/.exec(e.name);
    if (!e.isDirectory || m === null || Number(m[1]) >= epoch) continue;
    await Deno.remove(`${dir}/${e.name}/node-${self}.bin`).catch(() => {});
    // Temporary files of a write that was killed.
    try {
      for (const f of Deno.readDirSync(`${dir}/${e.name}`)) {
        if (f.name.startsWith(`node-${self}.bin.tmp-`)) {
          await Deno.remove(`${dir}/${e.name}/${f.name}`).catch(() => {});
        }
      }
    } catch { /* gone */ }
    // The last node to clean up removes the folder (fails while other files are in it).
    await Deno.remove(`${dir}/${e.name}`).catch(() => {});
  }
}

/**
 * The whole model of a complete checkpoint (every node's file read from `dir`, so the files
 * must all be reachable, as on one machine): per table, `keys x dim` floats in key order.
 */
export async function readCheckpointModel(
  dir: string,
): Promise<{ manifest: CheckpointManifest; tables: Map<string, Float32Array> }> {
  const manifest = await readManifest(dir);
  const tables = new Map<string, Float32Array>();
  const seen = new Map<string, number>();
  const sizes = new Map<string, number>();
  for (const entry of manifest.files) {
    const file = await readNodeFile(dir, entry);
    file.header.tables.forEach((t, i) => {
      sizes.set(t.name, t.keys);
      let all = tables.get(t.name);
      if (all === undefined) tables.set(t.name, all = new Float32Array(t.keys * t.dim));
      const { keys, values } = file.tables[i];
      for (let n = 0; n < keys.length; n++) {
        all.set(values.subarray(n * t.dim, (n + 1) * t.dim), keys[n] * t.dim);
      }
      seen.set(t.name, (seen.get(t.name) ?? 0) + keys.length);
    });
  }
  for (const name of tables.keys()) {
    const keys = sizes.get(name)!;
    if (seen.get(name) !== keys) {
      throw new Error(
        `the checkpoint in "${dir}" holds ${seen.get(name)} keys of table ${name}, not ${keys}`,
      );
    }
  }
  return { manifest, tables };
}

/**
 * Resuming on a cluster of another size: puts every key of the checkpoint whose home (under the
 * new placement) is this node into its freshly created tables, from the files of all old nodes
 * (so every file must be readable here: one machine, or a shared folder). The directory needs
 * nothing: at the start of a job every key is at its home.
 *
 * @throws {Error} when the tables do not match the checkpoint's.
 */
export function restoreRehomed(
  tables: (TableForCheckpoint & { placement: { home(key: number): number } })[],
  files: NodeFile[],
  self: number,
): void {
  for (const file of files) {
    if (file.header.tables.length !== tables.length) {
      throw new Error(
        `the checkpoint has ${file.header.tables.length} tables, the job ${tables.length}: ` +
          `resume the job that wrote it`,
      );
    }
  }
  tables.forEach(({ table, placement }, i) => {
    const scratch = new Float32Array(table.dim);
    for (const file of files) {
      const t = file.header.tables[i];
      if (t.name !== table.name || t.keys !== table.keys || t.dim !== table.dim) {
        throw new Error(
          `checkpoint table ${t.name} (${t.keys} x ${t.dim}) does not match the job's table ` +
            `${table.name} (${table.keys} x ${table.dim}): resume with the same model settings`,
        );
      }
      const { keys, values } = file.tables[i];
      for (let n = 0; n < keys.length; n++) {
        const k = keys[n];
        if (placement.home(k) !== self) continue;
        if (table.isLocal(k)) table.remove(k, scratch, 0);
        table.insert(k, values, n * table.dim);
      }
    }
  });
}
