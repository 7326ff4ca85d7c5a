/**
 * Replicas of the most frequent words for task `w2v` (`model.hot_words`).
 *
 * Why: every node's sentences contain "the", ",", "of" ...; localizing those words ahead makes
 * them bounce between the nodes (each move a round trip through the server threads), and
 * leaving them remote makes every sentence wait for them. A worker instead trains the hot words
 * it does not hold on a private copy and merges with the PS every `model.hot_sync` sentences:
 * one push of the changes of the rows it trained since the last merge and one asynchronous pull
 * of their fresh values, to which the changes made while the pull was in flight are re-applied
 * when it arrives. The hot words never move (nobody localizes them), so the ones this node
 * holds are trained in place and need no copy. Additive merging keeps every worker's updates
 * (as bounded staleness does, here about two merge periods for the replicated words).
 *
 * @module
 */
import type { Keys, ParameterServer } from "../mod.ts";
import { sharedF32, sharedI32, sharedU32 } from "../data/shared_arrays.ts";

/** The replicated hot words of one table on one worker. */
export class HotReplica {
  /** Per vocabulary word: its row in {@linkcode HotReplica.vals}, or -1 (not replicated). */
  readonly row: Int32Array;
  /** The replicated keys, in row order. */
  readonly keys: Uint32Array;
  /** Number of replicated keys. */
  readonly n: number;
  /** The values trained on (`n * dim`). */
  readonly vals: Float32Array;
  /** Per row: 1 if trained since the last merge started (the training loop sets it). */
  readonly touched: Uint8Array;
  /** Merges done (pull applied). */
  merges = 0;
  /** Rows sent by the merges (pushed, and pulled). */
  rowsMerged = 0;
  /** The values at the last merge (changes since = vals - orig). */
  private readonly orig: Float32Array;
  /** The merge in flight: its rows, keys, pushed changes and pulled values. */
  private readonly mRows: Int32Array;
  private readonly mKeys: Uint32Array;
  private readonly delta: Float32Array;
  private readonly fresh: Float32Array;
  private mN = 0;
  private pending = false;
  private arrived = false;
  private inflight: Promise<void> | undefined = undefined;

  /**
   * Replicates the keys among the hot ones (`0 .. hot-1`) that `isLocal` says cannot be
   * acquired here. Call {@linkcode HotReplica.load} before training.
   */
  constructor(
    private readonly ps: ParameterServer,
    private readonly table: number,
    vocab: number,
    hot: number,
    private readonly dim: number,
    isLocal: (key: number) => boolean,
  ) {
    this.row = sharedI32(vocab).fill(-1);
    const keys: number[] = [];
    for (let k = 0; k < hot; k++) {
      if (!isLocal(k)) {
        this.row[k] = keys.length;
        keys.push(k);
      }
    }
    const n = this.n = keys.length;
    this.keys = sharedU32(n);
    this.keys.set(keys);
    this.vals = sharedF32(n * dim);
    this.orig = sharedF32(n * dim);
    this.touched = new Uint8Array(new SharedArrayBuffer(Math.max(1, n)), 0, n);
    this.mRows = sharedI32(n);
    this.mKeys = sharedU32(n);
    this.delta = sharedF32(n * dim);
    this.fresh = sharedF32(n * dim);
  }

  /** Pulls the current values (awaited: once, before training). */
  async load(maxKeys: number): Promise<void> {
    await pullAll(this.ps, this.table, this.keys, this.n, this.vals, this.dim, maxKeys);
    this.orig.set(this.vals);
  }

  /**
   * Starts a merge of the rows trained since the last one, unless a merge is in flight: pushes
   * their changes and pulls their fresh values (not awaited; {@linkcode HotReplica.poll}
   * applies them when they are in). A row not trained meanwhile keeps its (older) value until
   * the first merge after it is trained again.
   */
  merge(maxKeys: number): void {
    if (this.n === 0 || this.pending) return;
    const dim = this.dim, v = this.vals, o = this.orig, d = this.delta, touched = this.touched;
    let m = 0;
    for (let r = 0; r < this.n; r++) {
      if (touched[r] === 0) continue;
      touched[r] = 0;
      this.mRows[m] = r;
      this.mKeys[m] = this.keys[r];
      const a = r * dim, b = m * dim;
      for (let x = 0; x < dim; x++) {
        d[b + x] = v[a + x] - o[a + x];
        o[a + x] = v[a + x];
      }
      m++;
    }
    this.mN = m;
    if (m === 0) return;
    const keys = this.mKeys;
    for (let i0 = 0; i0 < m; i0 += maxKeys) {
      const i1 = Math.min(m, i0 + maxKeys);
      const p = this.ps.push(this.table, keys.subarray(i0, i1), d.subarray(i0 * dim, i1 * dim));
      if (p) p.catch(() => {});
    }
    this.rowsMerged += m;
    this.pending = true;
    this.arrived = false;
    const p = pullAll(this.ps, this.table, keys, m, this.fresh, dim, maxKeys);
    if (p === undefined) this.apply();
    else {
      this.inflight = p.then(() => {
        this.arrived = true;
      }, () => {
        this.pending = false;
      });
    }
  }

  /** Applies a merge whose pull arrived; true if it did. */
  poll(): boolean {
    if (!this.arrived) return false;
    this.apply();
    return true;
  }

  /** Waits for the merge in flight, if any, and applies it. */
  async settle(): Promise<void> {
    if (this.pending && !this.arrived) await this.inflight;
    if (this.arrived) this.apply();
  }

  /** For the merged rows: vals := fresh + (changes since the pull was sent); orig := fresh. */
  private apply(): void {
    const dim = this.dim, v = this.vals, o = this.orig, f = this.fresh;
    for (let i = 0; i < this.mN; i++) {
      const a = this.mRows[i] * dim, b = i * dim;
      for (let x = 0; x < dim; x++) {
        v[a + x] = f[b + x] + (v[a + x] - o[a + x]);
        o[a + x] = f[b + x];
      }
    }
    this.pending = false;
    this.arrived = false;
    this.inflight = undefined;
    this.merges++;
  }
}

/** Pulls `keys[0..n)` into `out` in chunks of `maxKeys`; undefined if all were local. */
function pullAll(
  ps: ParameterServer,
  table: number,
  keys: Keys,
  n: number,
  out: Float32Array,
  dim: number,
  maxKeys: number,
): Promise<void> | undefined {
  const pulls: Promise<void>[] = [];
  for (let i0 = 0; i0 < n; i0 += maxKeys) {
    const i1 = Math.min(n, i0 + maxKeys);
    const p = ps.pull(table, keys.subarray(i0, i1), out.subarray(i0 * dim, i1 * dim));
    if (p) pulls.push(p);
  }
  if (pulls.length === 0) return undefined;
  return pulls.length === 1 ? pulls[0] : Promise.all(pulls).then(() => {});
}
