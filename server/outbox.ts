/**
 * Batches data-plane entries per (message type, destination) during one handler run, so that a
 * call or an incoming message produces one outgoing message per destination, or, for a batch
 * larger than {@linkcode MESSAGE_BYTES_SPLIT}, one per that many bytes: the first parts then
 * go out (and are received and handled by the peer) while the rest is still being gathered.
 *
 * @module
 */
import { assert, AssertionError } from "../core/errors.ts";
import { F32Rows, U32List } from "./grow.ts";
import { type DataMessage, Msg } from "./messages.ts";

/** Sends one encoded-at-once message to a node. The message may be reused after it returns. */
export type SendFn = (node: number, msg: DataMessage) => void;

/**
 * A batch is sent as soon as its entries reach about this many bytes (values plus 12 bytes per
 * entry), and a new one begins: large pulls and pushes are pipelined in parts of this size, and
 * no batch outgrows a frame limit.
 */
export const MESSAGE_BYTES_SPLIT = 1024 * 1024;

class Bucket {
  type = 0;
  tb = -1;
  origin = -1;
  node = -1;
  /** PULL only: the clock the values must be fresh to (stale mode; 0 otherwise). */
  need = 0;
  /** PULL only: the barriers the reading worker has completed (stale mode; 0 otherwise). */
  barriers = 0;
  readonly r = new U32List();
  readonly k = new U32List();
  readonly p = new U32List();
  readonly v = new F32Rows();
  count = 0;
  /**
   * PUSH only: deltas not copied into `v` yet, `pendLen` floats of `pendSrc` from `pendFrom`,
   * for `v` at `pendAt`. Consecutive rows of one source array are copied in one go, at the
   * latest when the bucket is sent (see {@linkcode Outbox.push}).
   */
  pendSrc: Float32Array | null = null;
  pendFrom = 0;
  pendAt = 0;
  pendLen = 0;
  /** Copies the pending deltas into `v`. */
  settle(): void {
    const src = this.pendSrc;
    if (src === null) return;
    const from = this.pendFrom, at = this.pendAt, n = this.pendLen, dst = this.v.data;
    if (n <= 80) { for (let i = 0; i < n; i++) dst[at + i] = src[from + i]; }
    else dst.set(src.subarray(from, from + n), at);
    this.pendSrc = null;
    this.pendLen = 0;
  }
  /**
   * The values to send: when all of them are still pending from one source array (a worker's
   * push routed to one node in bulk) a view of that array, so that they are copied once, into
   * the frame, instead of twice; else `v` after {@linkcode Bucket.settle}. Either way nothing
   * stays pending.
   */
  pendingOnly(): Float32Array {
    const src = this.pendSrc;
    if (src !== null && this.pendAt === 0 && this.pendLen === this.v.length) {
      const values = src.subarray(this.pendFrom, this.pendFrom + this.pendLen);
      this.pendSrc = null;
      this.pendLen = 0;
      return values;
    }
    this.settle();
    return this.v.view();
  }
  /** Bytes the entries will take in the message, roughly. */
  get bytes(): number {
    return 4 * this.v.length + 12 * this.count;
  }
}

const TYPES = [
  Msg.PULL,
  Msg.PUSH,
  Msg.PULL_R,
  Msg.PUSH_R,
  Msg.LOCALIZE,
  Msg.HANDOVER,
  Msg.TRANSFER,
] as const;

/** One outbox per node and job; flushed at the end of every handler that added to it. */
export class Outbox {
  readonly #self: number;
  readonly #job: number;
  readonly #send: SendFn;
  readonly #splitBytes: number;
  // buckets[typeIndex][node]
  readonly #buckets: Bucket[][];
  readonly #dirty: Bucket[] = [];

  /**
   * `job` is the id every message carries (job isolation: see messages.ts); a batch is sent
   * once it reaches `splitBytes` (default {@linkcode MESSAGE_BYTES_SPLIT}; smaller under a small
   * `ps.max_frame_bytes`).
   */
  constructor(
    self: number,
    nodes: number,
    job: number,
    send: SendFn,
    splitBytes = MESSAGE_BYTES_SPLIT,
  ) {
    this.#self = self;
    this.#job = job;
    this.#splitBytes = splitBytes;
    this.#send = send;
    this.#buckets = TYPES.map(() => Array.from({ length: nodes }, () => new Bucket()));
  }

  #bucket(
    type: number,
    node: number,
    tb: number,
    origin: number,
    need = 0,
    bar = 0,
    entries = 1,
  ): Bucket {
    assert(node !== this.#self, () => `message ${type} to self (${node})`);
    const b = this.#buckets[type - 1][node];
    if (
      b.count > 0 &&
      (b.tb !== tb || b.origin !== origin || b.need !== need || b.barriers !== bar ||
        b.bytes >= this.#splitBytes)
    ) {
      this.#flushBucket(type, b);
    }
    if (b.count === 0) {
      b.tb = tb;
      b.origin = origin;
      b.node = node;
      b.type = type;
      b.need = need;
      b.barriers = bar;
      this.#dirty.push(b);
    }
    b.count += entries;
    return b;
  }

  /**
   * A pull entry for `node` (request or forward), on behalf of `origin`; `need` is the clock
   * the value must be fresh to and `barriers` the reading worker's completed barriers (stale
   * mode, else 0).
   */
  pull(
    node: number,
    tb: number,
    origin: number,
    rid: number,
    key: number,
    pos: number,
    need = 0,
    barriers = 0,
  ): void {
    const b = this.#bucket(Msg.PULL, node, tb, origin, need, barriers);
    b.r.push(rid);
    b.k.push(key);
    b.p.push(pos);
  }

  /**
   * Pull entries for `node` of this node's request `rid`: keys `keys[from .. from+n)` at
   * positions `from .. from+n`; the bulk form of {@linkcode Outbox.pull} (lapse and classic
   * modes: no clock). Returns how many were taken (at least 1): fewer when the batch reached
   * its split size; call again for the rest.
   */
  pullRun(node: number, tb: number, rid: number, keys: Uint32Array, from: number, n: number) {
    const b = this.#bucket(Msg.PULL, node, tb, this.#self, 0, 0, 0);
    const m = Math.max(1, Math.min(n, Math.floor((this.#splitBytes - b.bytes) / 12)));
    b.count += m;
    b.r.pushSeries(rid, 0, m);
    b.k.pushRange(keys, from, m);
    b.p.pushSeries(from, 1, m);
    return m;
  }

  /**
   * Push entries for `node` of this node's request `rid`: keys `keys[from .. from+n)` at
   * positions `from .. from+n` with the rows of `deltas` at the same positions, which must stay
   * unchanged until the next flush (as for {@linkcode Outbox.push}); the bulk form of
   * {@linkcode Outbox.push}. Returns how many were taken (at least 1): fewer when the batch
   * reached its split size; call again for the rest.
   */
  pushRun(
    node: number,
    tb: number,
    rid: number,
    keys: Uint32Array,
    from: number,
    n: number,
    deltas: Float32Array,
    dim: number,
  ): number {
    const b = this.#bucket(Msg.PUSH, node, tb, this.#self, 0, 0, 0);
    const m = Math.max(1, Math.min(n, Math.floor((this.#splitBytes - b.bytes) / (4 * dim + 12))));
    b.count += m;
    b.r.pushSeries(rid, 0, m);
    b.k.pushRange(keys, from, m);
    b.p.pushSeries(from, 1, m);
    const offset = from * dim;
    if (b.pendSrc === deltas && b.pendFrom + b.pendLen === offset) {
      b.v.alloc(m * dim);
      b.pendLen += m * dim;
    } else {
      b.settle();
      b.pendSrc = deltas;
      b.pendFrom = offset;
      b.pendAt = b.v.alloc(m * dim);
      b.pendLen = m * dim;
    }
    return m;
  }

  /**
   * A push entry for `node`: the delta is `delta[offset .. offset+dim)`, which is read at the
   * latest by the next {@linkcode Outbox.flush}: it must not change before.
   */
  push(
    node: number,
    tb: number,
    origin: number,
    rid: number,
    key: number,
    pos: number,
    delta: Float32Array,
    offset: number,
    dim: number,
  ): void {
    const b = this.#bucket(Msg.PUSH, node, tb, origin);
    b.r.push(rid);
    b.k.push(key);
    b.p.push(pos);
    // The copy is deferred so that rows that follow each other in `delta` (a worker's push
    // routed to one node, a forwarded PUSH) are copied in bulk: `delta` must stay unchanged
    // until the next flush, which every caller does before its handler returns.
    if (b.pendSrc === delta && b.pendFrom + b.pendLen === offset) {
      b.v.alloc(dim);
      b.pendLen += dim;
    } else {
      b.settle();
      b.pendSrc = delta;
      b.pendFrom = offset;
      b.pendAt = b.v.alloc(dim);
      b.pendLen = dim;
    }
  }

  /**
   * The array that the last `pullReply` or `transfer` reserved room in; write the `dim` floats
   * at the offset that call returned, before the next call.
   */
  buf: Float32Array = new Float32Array(0);

  /**
   * Stale mode: the clock the values served now are fresh to (every worker's pushes of earlier
   * clocks are in them), sent as `clock` with pull replies. Change it only with nothing batched
   * (right after a flush): replies batched before would otherwise claim too much.
   */
  stamp = 0;

  /** Reserves a pull reply entry; returns the offset in {@linkcode Outbox.buf} to write at. */
  pullReply(node: number, tb: number, rid: number, key: number, pos: number, dim: number): number {
    const b = this.#bucket(Msg.PULL_R, node, tb, -1);
    b.r.push(rid);
    b.k.push(key);
    b.p.push(pos);
    const at = b.v.alloc(dim);
    this.buf = b.v.data;
    return at;
  }

  /** The bucket that the last {@linkcode Outbox.pullReplyRoom} reserved in, and where. */
  #room: Bucket | null = null;
  #roomAt = 0;

  /**
   * Reserves room for up to `n` pull reply entries of `dim` floats to `node` in one bucket:
   * fewer (at least 1) when the batch reaches its split size first. Returns how many; write
   * their values packed from the returned offset {@linkcode Outbox.roomAt} in
   * {@linkcode Outbox.buf}, then call {@linkcode Outbox.commitPullReplies} before any other
   * call. The bulk form of {@linkcode Outbox.pullReply}: one bucket look-up per run of keys.
   */
  pullReplyRoom(node: number, tb: number, n: number, dim: number): number {
    const b = this.#bucket(Msg.PULL_R, node, tb, -1, 0, 0, 0);
    const fit = Math.floor((this.#splitBytes - b.bytes) / (4 * dim + 12));
    const m = Math.max(1, Math.min(n, fit));
    this.#room = b;
    this.#roomAt = b.v.alloc(m * dim);
    this.buf = b.v.data;
    return m;
  }

  /** Where the room reserved by the last {@linkcode Outbox.pullReplyRoom} starts in `buf`. */
  get roomAt(): number {
    return this.#roomAt;
  }

  /**
   * Commits the first `n` entries of the room reserved last (0 .. what it returned): their
   * requests, keys and positions are `r`, `k`, `p` at `from .. from+n`.
   */
  commitPullReplies(
    r: Uint32Array,
    k: Uint32Array,
    p: Uint32Array,
    from: number,
    n: number,
    dim: number,
  ): void {
    const b = this.#room;
    assert(b !== null, () => "commitPullReplies without pullReplyRoom");
    this.#room = null;
    b.v.length = this.#roomAt + n * dim;
    b.r.pushRange(r, from, n);
    b.k.pushRange(k, from, n);
    b.p.pushRange(p, from, n);
    b.count += n;
  }

  /** How many pull reply entries of `dim` floats one message holds at most. */
  pullRepliesMax(dim: number): number {
    return Math.max(1, Math.floor(this.#splitBytes / (4 * dim + 12)));
  }

  /**
   * Sends pull reply entries `from .. from+n` of `r`, `k`, `p` to `node` at once, as one
   * message whose values are `values` (`dim` floats per entry, at most
   * {@linkcode Outbox.pullRepliesMax} entries): the values are copied once, straight into the
   * frame (e.g. from the store, under the keys' locks, which the caller releases after this
   * returns). Entries batched for `node` before go first.
   */
  pullRepliesNow(
    node: number,
    tb: number,
    r: Uint32Array,
    k: Uint32Array,
    p: Uint32Array,
    from: number,
    n: number,
    values: Float32Array,
  ): void {
    assert(node !== this.#self, () => `pull replies to self (${node})`);
    const b = this.#buckets[Msg.PULL_R - 1][node];
    if (b.count > 0) this.#flushBucket(Msg.PULL_R, b);
    this.#send(node, {
      t: Msg.PULL_R,
      job: this.#job,
      table: tb,
      holder: this.#self,
      requests: r.subarray(from, from + n),
      keys: k.subarray(from, from + n),
      positions: p.subarray(from, from + n),
      values,
      clock: this.stamp,
    });
  }

  /**
   * Push acknowledgements of the entries `from .. from+n` of `r` (requests) and `k` (keys) to
   * `node`: the bulk form of {@linkcode Outbox.pushReply}.
   */
  pushReplies(node: number, tb: number, r: Uint32Array, k: Uint32Array, from: number, n: number) {
    while (n > 0) {
      // In parts that keep the batch within its split size, as single entries would.
      const b = this.#bucket(Msg.PUSH_R, node, tb, -1, 0, 0, 0);
      const m = Math.max(1, Math.min(n, Math.floor((this.#splitBytes - b.bytes) / 12)));
      b.count += m;
      b.r.pushRange(r, from, m);
      b.k.pushRange(k, from, m);
      from += m;
      n -= m;
    }
  }

  pushReply(node: number, tb: number, rid: number, key: number): void {
    const b = this.#bucket(Msg.PUSH_R, node, tb, -1);
    b.r.push(rid);
    b.k.push(key);
  }

  localize(node: number, tb: number, dest: number, key: number): void {
    this.#bucket(Msg.LOCALIZE, node, tb, dest).k.push(key);
  }

  handover(node: number, tb: number, dest: number, key: number): void {
    this.#bucket(Msg.HANDOVER, node, tb, dest).k.push(key);
  }

  /** Reserves a transfer entry; returns the offset in {@linkcode Outbox.buf} to write at. */
  transfer(node: number, tb: number, key: number, dim: number): number {
    const b = this.#bucket(Msg.TRANSFER, node, tb, -1);
    b.k.push(key);
    const at = b.v.alloc(dim);
    this.buf = b.v.data;
    return at;
  }

  /** Sends everything batched since the last flush: one message per bucket. */
  flush(): void {
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) {
      const b = dirty[i];
      if (b.count > 0) this.#flushBucket(b.type, b);
    }
    dirty.length = 0;
  }

  // A bucket flushed early (another table or origin came in, or it was full) stays listed in
  // #dirty; a refill lists it again, and flush() skips the listings that find it empty.
  #flushBucket(type: number, b: Bucket): void {
    const job = this.#job, table = b.tb;
    let msg: DataMessage;
    switch (type) {
      case Msg.PULL:
        msg = {
          t: Msg.PULL,
          job,
          table,
          origin: b.origin,
          requests: b.r.view(),
          keys: b.k.view(),
          positions: b.p.view(),
          need: b.need,
          barriers: b.barriers,
        };
        break;
      case Msg.PUSH:
        msg = {
          t: Msg.PUSH,
          job,
          table,
          origin: b.origin,
          requests: b.r.view(),
          keys: b.k.view(),
          positions: b.p.view(),
          values: b.pendingOnly(),
        };
        break;
      case Msg.PULL_R:
        msg = {
          t: Msg.PULL_R,
          job,
          table,
          holder: this.#self,
          requests: b.r.view(),
          keys: b.k.view(),
          positions: b.p.view(),
          values: b.v.view(),
          clock: this.stamp,
        };
        break;
      case Msg.PUSH_R:
        msg = {
          t: Msg.PUSH_R,
          job,
          table,
          holder: this.#self,
          requests: b.r.view(),
          keys: b.k.view(),
        };
        break;
      case Msg.LOCALIZE:
        msg = { t: Msg.LOCALIZE, job, table, dest: b.origin, keys: b.k.view() };
        break;
      case Msg.HANDOVER:
        msg = { t: Msg.HANDOVER, job, table, dest: b.origin, keys: b.k.view() };
        break;
      case Msg.TRANSFER:
        msg = { t: Msg.TRANSFER, job, table, keys: b.k.view(), values: b.v.view() };
        break;
      default:
        throw new AssertionError(`unknown outbox type ${type}`);
    }
    this.#send(b.node, msg);
    b.count = 0;
    b.r.length = 0;
    b.k.length = 0;
    b.p.length = 0;
    b.v.length = 0;
  }
}
