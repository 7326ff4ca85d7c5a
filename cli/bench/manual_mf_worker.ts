/**
 * One worker process of the `manual` mf baseline (`lapse bench mf --modes manual`): DSGD with
 * hand-written parameter management and no parameter server, what a careful engineer would
 * write for this one job. Started by cli/bench/manual_mf.ts as `deno run` children, one per
 * "node" (1 worker each), on 127.0.0.1.
 *
 * Same job as the mf task (tasks/mf.ts) on the same config: the same data (every worker
 * generates or reads its own row block with `loadMfData`), the same initial values (the PS's
 * `initValue` per table and key), the same DSGD schedule (`dsgdPermutation`/`dsgdColBlock` of
 * the job seed), the same per-subepoch shuffle, the same SGD kernel (`mfSgdStep`), learning
 * rate schedule (`lrForEpoch`/`lrAfterEpoch`) and test evaluation (`mfPredict` over all test
 * ratings of the worker's rows). So it computes the same model as the mf task, float for float.
 *
 * Parameters: the worker's W rows live in one plain `Float32Array`; H is cut into N column
 * blocks, each a plain `Float32Array` held by exactly one worker at a time. After subepoch s,
 * worker w sends the block it just trained to worker w-1, which needs it in subepoch s+1
 * (DSGD's ring: block p[(w+s) mod N] of worker w is block p[((w-1)+(s+1)) mod N] of w-1). There
 * are no barriers: a worker starts a subepoch as soon as its block has arrived, and sends and
 * receives at the same time. Between epochs the blocks go around the ring once more for the
 * test evaluation (not training time), then each block goes straight to the worker that needs
 * it first in the next epoch (p changes every epoch).
 *
 * Frames: length-prefixed raw Float32 bytes with a small header (cli/bench/manual_frame.ts),
 * read straight into a block buffer, written straight from it. Control (ports, start, per-epoch
 * numbers) is JSON lines on stdin/stdout with the parent.
 *
 * @module
 */
import { readLines } from "../../core/lines.ts";
import type { JobConfig } from "../../core/types.ts";
import { hash32, Rng } from "../../core/rng.ts";
import {
  type BlockedRatings,
  blockStart,
  groupByColBlock,
  shuffleRange,
} from "../../data/mf_data.ts";
import { initValue } from "../../server/store.ts";
import {
  divergence,
  loadMfData,
  lrAfterEpoch,
  lrForEpoch,
  mfPredict,
  mfSettings,
  mfSgdStep,
  type MfShape,
  standardize,
  task as mfTask,
} from "../../tasks/mf.ts";
import { dsgdColBlock, dsgdPermutation } from "../../tasks/schedules.ts";
import {
  FRAME_HEADER_BYTES,
  FrameError,
  type FrameHeader,
  FrameKind,
  FrameReader,
  writeFrame,
} from "./manual_frame.ts";

/** The parent's first message. */
export interface ManualStart {
  t: "start";
  config: JobConfig;
  worker: number;
  workers: number;
  /** Hex; every connection between workers starts with it (a HELLO frame). */
  token: string;
}

// --- control lines with the parent ----------------------------------------------------------

const encoder = new TextEncoder();

async function say(msg: Record<string, unknown>): Promise<void> {
  const bytes = encoder.encode(JSON.stringify(msg) + "\n");
  let off = 0;
  while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
}

/** JSON lines from stdin; the end of stdin (the parent went away) ends this process. */
class ControlIn {
  #lines: string[] = [];
  #wake: (() => void) | null = null;
  #ended = false;

  constructor(private readonly done: () => boolean) {
    this.#pump();
  }

  async #pump(): Promise<void> {
    await readLines(Deno.stdin.readable, (line) => {
      this.#lines.push(line);
      this.#wake?.();
    });
    this.#ended = true;
    this.#wake?.();
    if (!this.done()) {
      console.error("manual mf worker: the bench process went away; stopping");
      Deno.exit(1);
    }
  }

  /** The next message, which must be of type `t`. */
  async next<T>(t: string): Promise<T> {
    while (this.#lines.length === 0) {
      if (this.#ended) throw new Error(`the parent closed stdin before sending "${t}"`);
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = null;
    }
    const msg = JSON.parse(this.#lines.shift()!);
    if (msg?.t !== t) throw new Error(`expected a "${t}" message, got ${JSON.stringify(msg)}`);
    return msg as T;
  }
}

// --- blocks, their buffers and their delivery -------------------------------------------------

/** An H column block and the buffer that holds it (`rows x rank` values, row j - first col). */
interface Block {
  block: number;
  buf: Float32Array;
}

/**
 * Block buffers for reuse (all of the largest block's size). Every block is at one worker at
 * a time, plus a copy in the sender's buffer while its write is in flight, so a worker never
 * needs more than 2N + 2 buffers: more means a bug, and fails.
 */
class BufferPool {
  #free: Float32Array[] = [];
  #made = 0;

  constructor(private readonly floats: number, private readonly max: number) {}

  take(): Float32Array {
    const b = this.#free.pop();
    if (b !== undefined) return b;
    if (++this.#made > this.max) {
      throw new Error(`manual mf: more than ${this.max} block buffers in use (a schedule bug)`);
    }
    return new Float32Array(this.floats);
  }

  give(b: Float32Array): void {
    this.#free.push(b);
  }
}

/**
 * Blocks received, by transfer key (`epoch * 2N + step`: each worker receives at most one
 * block per step), each taken once by the training loop. A peer that closes its connection
 * has sent everything before (frames are read in order), so only a take of a block that peer
 * still owes fails; a broken stream fails every take.
 */
class Mailbox {
  #items = new Map<number, Block>();
  #waiters = new Map<
    number,
    { from: number; resolve: (b: Block) => void; reject: (e: Error) => void }
  >();
  #closed = new Map<number, Error>();
  #failed: Error | null = null;

  put(key: number, b: Block): void {
    if (this.#items.has(key)) throw new FrameError(`a second block for transfer ${key}`);
    const w = this.#waiters.get(key);
    if (w !== undefined) {
      this.#waiters.delete(key);
      w.resolve(b);
    } else this.#items.set(key, b);
  }

  /** The block of transfer `key`, which worker `from` sends. */
  take(key: number, from: number): Promise<Block> {
    const b = this.#items.get(key);
    if (b !== undefined) {
      this.#items.delete(key);
      return Promise.resolve(b);
    }
    const e = this.#failed ?? this.#closed.get(from);
    if (e !== undefined) return Promise.reject(e);
    return new Promise((resolve, reject) => this.#waiters.set(key, { from, resolve, reject }));
  }

  /** Worker `from` closed its connection: takes of what it still owes fail with `e`. */
  closed(from: number, e: Error): void {
    this.#closed.set(from, e);
    for (const [key, w] of this.#waiters) {
      if (w.from !== from) continue;
      this.#waiters.delete(key);
      w.reject(e);
    }
  }

  /** Fails every take, now and later (a broken stream). */
  fail(e: Error): void {
    this.#failed ??= e;
    for (const w of this.#waiters.values()) w.reject(e);
    this.#waiters.clear();
  }
}

/** A connection to another worker: frames in through the reader loop, out one at a time. */
class Peer {
  #writing: Promise<unknown> = Promise.resolve();
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);

  constructor(readonly id: number, readonly conn: Deno.TcpConn) {}

  /** Queues one frame after the previous ones on this connection; resolves when written. */
  send(h: FrameHeader, payload: Uint8Array): Promise<unknown> {
    const p = this.#writing.then(() => writeFrame(this.conn, this.#header, h, payload));
    this.#writing = p.catch(() => {});
    return p;
  }
}

// --- the worker -------------------------------------------------------------------------------

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Connects every pair of workers once: worker i dials every j < i and accepts every j > i;
 * every connection starts with a HELLO frame (the dialer's number and the run's token).
 */
async function connectMesh(
  listener: Deno.TcpListener,
  me: number,
  ports: number[],
  token: Uint8Array,
): Promise<Map<number, Peer>> {
  const peers = new Map<number, Peer>();
  const n = ports.length;
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  const dials = [];
  for (let j = 0; j < me; j++) {
    dials.push((async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: ports[j] });
      await writeFrame(
        conn,
        header.slice(),
        { kind: FrameKind.HELLO, block: me, epoch: 0, step: 0, payloadBytes: token.length },
        token,
      );
      peers.set(j, new Peer(j, conn));
    })());
  }
  for (let accepted = 0; accepted < n - 1 - me;) {
    const conn = await listener.accept();
    const reader = new FrameReader(conn, "a connecting worker");
    const h = await reader.readHeader();
    if (h === null || h.kind !== FrameKind.HELLO) {
      conn.close();
      throw new FrameError(`a connection to worker ${me} did not start with a HELLO frame`);
    }
    const got = new Uint8Array(h.payloadBytes);
    await reader.readPayload(h, got);
    if (!sameBytes(got, token) || h.block <= me || h.block >= n || peers.has(h.block)) {
      conn.close();
      throw new FrameError(
        `worker ${me}: a HELLO from "worker ${h.block}" with a wrong token or number`,
      );
    }
    peers.set(h.block, new Peer(h.block, conn));
    accepted++;
  }
  await Promise.all(dials);
  for (const p of peers.values()) p.conn.setNoDelay(true);
  return peers;
}

/** Ratings per trainBlock call (see where it is called). */
const TRAIN_SLICE = 4096;

/**
 * SGD over ratings `start .. end-1` of one column block (its H rows from column `c0`); returns
 * the loss in training units.
 */
function trainBlock(
  r: BlockedRatings,
  start: number,
  end: number,
  W: Float32Array,
  r0: number,
  H: Float32Array,
  c0: number,
  m: MfShape,
  lr: number,
  lambda: number,
): number {
  const rows = r.rows, cols = r.cols, vals = r.vals, k = m.k, dim = m.dim, opts = m.opts;
  let loss = 0;
  for (let t = start; t < end; t++) {
    const wo = (rows[t] - r0) * dim, ho = (cols[t] - c0) * dim;
    loss += mfSgdStep(W, wo, H, ho, k, vals[t], lr, lambda, opts);
  }
  return loss;
}

/** Test SSE of the ratings `start .. end-1` (one column block), in rating units. */
function testBlock(
  r: BlockedRatings,
  start: number,
  end: number,
  W: Float32Array,
  r0: number,
  H: Float32Array,
  c0: number,
  m: MfShape,
): number {
  const rows = r.rows, cols = r.cols, vals = r.vals, k = m.k, dim = m.dim, opts = m.opts;
  const mu = m.mu, sigma = m.sigma;
  let sse = 0;
  for (let t = start; t < end; t++) {
    const wo = (rows[t] - r0) * dim, ho = (cols[t] - c0) * dim;
    const e = vals[t] - (mu + sigma * mfPredict(W, wo, H, ho, k, opts));
    sse += e * e;
  }
  return sse;
}

/** `x mod n` in 0 .. n-1 for negative `x` too. */
function mod(x: number, n: number): number {
  return ((x % n) + n) % n;
}

async function main(): Promise<void> {
  let finished = false;
  const control = new ControlIn(() => finished);
  const start = await control.next<ManualStart>("start");
  const { config, worker: me, workers: N } = start;
  const token = hexBytes(start.token);
  const s = mfSettings(config);
  const k = s.rank, dim = s.dim;
  // Table ids as the PS numbers them (the order of the task's tables): the same initial values.
  const [specW, specH] = mfTask.tables(config);
  if (specW.name !== "W" || specH.name !== "H") {
    throw new Error(`manual mf: the mf tables are ${specW.name}, ${specH.name}; expected W, H`);
  }
  const seed = config.seed;

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await say({ t: "listening", port: (listener.addr as Deno.NetAddr).port });

  // Load while the parent gathers the ports.
  const t0 = performance.now();
  const loading = (async () => {
    const data = await loadMfData(s, me, N, me);
    return {
      train: groupByColBlock(data.train, s.cols, N),
      test: groupByColBlock(data.test, s.cols, N),
    };
  })();
  const { ports } = await control.next<{ ports: number[] }>("peers");
  const [peers, { train, test }] = await Promise.all([
    connectMesh(listener, me, ports, token),
    loading,
  ]);
  listener.close();

  // Parameters: my W rows, and the first H block I train (the PS's initial values).
  const r0 = blockStart(me, s.rows, N), r1 = blockStart(me + 1, s.rows, N);
  const W = new Float32Array((r1 - r0) * dim);
  for (let i = r0; i < r1; i++) initValue(specW.init, seed, 0, i, dim, W, (i - r0) * dim);
  const colStart = (b: number) => blockStart(b, s.cols, N);
  let maxCols = 0;
  for (let b = 0; b < N; b++) maxCols = Math.max(maxCols, colStart(b + 1) - colStart(b));
  const pool = new BufferPool(maxCols * dim, 2 * N + 2);
  const initBlock = (b: number): Block => {
    const buf = pool.take();
    for (let j = colStart(b); j < colStart(b + 1); j++) {
      initValue(specH.init, seed, 1, j, dim, buf, (j - colStart(b)) * dim);
    }
    return { block: b, buf };
  };
  let held: Block | null = initBlock(dsgdColBlock(dsgdPermutation(seed, 0, N), me, 0));
  const load_s = (performance.now() - t0) / 1000;

  // Frames in: one reader loop per peer, into pooled buffers, delivered by transfer key.
  const mailbox = new Mailbox();
  const keyOf = (epoch: number, step: number) => epoch * 2 * N + step;
  /** The bytes of block `b` in its buffer (what goes on the wire, and where it arrives). */
  const blockBytes = (b: Block) =>
    new Uint8Array(
      b.buf.buffer,
      b.buf.byteOffset,
      (colStart(b.block + 1) - colStart(b.block)) * dim * 4,
    );
  const readers = [...peers.values()].map(async (p) => {
    const reader = new FrameReader(p.conn, `worker ${p.id}`);
    try {
      for (;;) {
        const h = await reader.readHeader();
        if (h === null) {
          mailbox.closed(
            p.id,
            new Error(`worker ${p.id} closed its connection early (it failed or was stopped)`),
          );
          return;
        }
        if (h.kind !== FrameKind.BLOCK || h.block >= N || h.step >= 2 * N) {
          throw new FrameError(
            `bad frame from worker ${p.id}: kind ${h.kind}, block ${h.block}, step ${h.step}`,
          );
        }
        const b = { block: h.block, buf: pool.take() };
        await reader.readPayload(h, blockBytes(b));
        mailbox.put(keyOf(h.epoch, h.step), b);
      }
    } catch (e) {
      if (finished) return;
      const err = e instanceof Error ? e : new Error(String(e));
      mailbox.fail(err);
    }
  });

  // Frames out: counted when sent; the buffer goes back to the pool once written.
  let messages = 0, bytes = 0;
  const inFlight = new Set<Promise<unknown>>();
  const send = (to: number, b: Block, epoch: number, step: number) => {
    const payload = blockBytes(b);
    messages++;
    bytes += FRAME_HEADER_BYTES + payload.length;
    const p = peers.get(to)!.send(
      { kind: FrameKind.BLOCK, block: b.block, epoch, step, payloadBytes: payload.length },
      payload,
    ).then(() => {
      pool.give(b.buf);
      inFlight.delete(p);
    });
    inFlight.add(p);
  };
  const receive = async (
    epoch: number,
    step: number,
    want: number,
    from: number,
  ): Promise<Block> => {
    const b = await mailbox.take(keyOf(epoch, step), from);
    if (b.block !== want) {
      throw new FrameError(
        `worker ${me}: got block ${b.block} for epoch ${epoch} step ${step}, expected ${want}`,
      );
    }
    return b;
  };

  // model.standardize: the mean and std of all training ratings. The mf task adds every
  // worker's (sum, sum of squares, count) into a Float32 table; here the parent adds them up
  // and sends them with "go" (as Float32, as the table holds them).
  let sum = 0, sumSq = 0;
  for (let t = 0; t < train.length; t++) {
    sum += train.vals[t];
    sumSq += train.vals[t] * train.vals[t];
  }
  await say({
    t: "ready",
    load_s,
    train_n: train.length,
    test_n: test.length,
    sum: Math.fround(sum),
    sum_sq: Math.fround(sumSq),
  });
  const go = await control.next<{ sum: number; sum_sq: number; n: number }>("go");
  const scale = s.standardize
    ? standardize(train.vals, go.sum, go.sum_sq, go.n)
    : { mu: 0, sigma: 1 };
  const shape: MfShape = { k, dim, opts: s.opts, ...scale };

  const rng = new Rng(0);
  const left = mod(me - 1, N), right = mod(me + 1, N);
  const time = { train: 0, wait: 0, eval: 0 };
  let lr = s.lr, prevLoss = Infinity;
  // This worker's training phase of the epoch: from the end of the last evaluation (or "go")
  // to the end of its last subepoch, waiting for blocks included (see manual_mf.ts).
  let phaseStart = performance.now();
  for (let epoch = 0; epoch < s.epochs; epoch++) {
    lr = lrForEpoch(s, epoch, lr);
    const perm = dsgdPermutation(seed, epoch, N);
    let lossSum = 0;
    for (let sub = 0; sub < N; sub++) {
      const b = dsgdColBlock(perm, me, sub);
      const w0 = performance.now();
      // My block: from my right neighbour (or, at sub 0, whoever held it after the last
      // evaluation). My own sends must be written before I train: a write that is not done
      // would not progress while the training loop holds the thread.
      if (held === null) {
        // Sub 0: the holder after the evaluation of the last epoch (see below).
        const from = sub > 0 ? right : mod(dsgdPermutation(seed, epoch - 1, N).indexOf(b) + 2, N);
        held = await receive(epoch, sub, b, from);
      }
      if (inFlight.size > 0) await Promise.all(inFlight);
      const w1 = performance.now();
      const start = train.offsets[b], end = train.offsets[b + 1];
      rng.reseed(hash32(seed, epoch, me * N + b));
      shuffleRange(train, start, end, rng);
      // In slices: V8 then optimizes trainBlock as a whole function with the kernel inlined
      // (one long call was compiled on stack replacement, where the kernel stayed a call).
      for (let t = start; t < end; t += TRAIN_SLICE) {
        const u = Math.min(end, t + TRAIN_SLICE);
        lossSum += trainBlock(train, t, u, W, r0, held.buf, colStart(b), shape, lr, s.lambda);
      }
      const w2 = performance.now();
      time.wait += w1 - w0;
      time.train += w2 - w1;
      if (sub < N - 1) {
        send(left, held, epoch, sub + 1);
        held = null;
      }
    }
    // Test evaluation: every block visits every worker once more (N-1 steps around the ring).
    // At step r I hold the block worker me+r trained last, p[me + r - 1]; at the end the one
    // of me-1, p[me - 2]: so block b ends at worker p^-1(b) + 2.
    const e0 = performance.now();
    const epoch_s = (e0 - phaseStart) / 1000;
    let sse = 0;
    for (let r = 0; r < N; r++) {
      if (held === null) {
        held = await receive(epoch, N - 1 + r, perm[mod(me + N - 1 + r, N)], right);
      }
      const b = held.block;
      sse += testBlock(
        test,
        test.offsets[b],
        test.offsets[b + 1],
        W,
        r0,
        held.buf,
        colStart(b),
        shape,
      );
      if (r < N - 1) {
        send(left, held, epoch, N + r);
        held = null;
      }
    }
    if (inFlight.size > 0) await Promise.all(inFlight);
    phaseStart = performance.now();
    const eval_s = (phaseStart - e0) / 1000;
    time.eval += eval_s * 1000;
    await say({
      t: "epoch",
      epoch,
      sums: {
        // In rating units (the kernel's errors are in training units), as the task reports.
        loss_sum: lossSum * shape.sigma * shape.sigma,
        train_n: train.length,
        test_sse: sse,
        test_n: test.length,
        lr_sum: lr,
        workers: 1,
        epoch_s_max: epoch_s,
        eval_s_max: eval_s,
      },
      messages,
      bytes,
    });
    messages = bytes = 0;
    // A diverging rate stops the run here, with the task's message.
    const diverged = divergence(s, epoch, lr, lossSum, train.length);
    if (diverged !== null) throw new Error(diverged);
    const next = lrAfterEpoch(s, lr, lossSum, prevLoss);
    prevLoss = lossSum;
    lr = next;
    // My block goes to whoever trains it first in the next epoch (part of that epoch's time).
    if (epoch + 1 < s.epochs) {
      const nextPerm = dsgdPermutation(seed, epoch + 1, N);
      const to = nextPerm.indexOf(held!.block);
      if (to !== me) {
        send(to, held!, epoch + 1, 0);
        held = null;
      }
    }
  }
  if (inFlight.size > 0) await Promise.all(inFlight);
  finished = true;
  const sec = (x: number) => x / 1000;
  await say({
    t: "done",
    train_s: sec(time.train),
    wait_s: sec(time.wait),
    eval_s: sec(time.eval),
  });
  for (const p of peers.values()) {
    try {
      p.conn.close();
    } catch { /* already closed */ }
  }
  await Promise.all(readers);
}

if (import.meta.main) {
  try {
    await main();
    Deno.exit(0);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    try {
      await say({ t: "error", message });
    } catch { /* stdout is gone */ }
    console.error(
      `manual mf worker: ${e instanceof FrameError ? message : (e as Error)?.stack ?? message}`,
    );
    Deno.exit(1);
  }
}
