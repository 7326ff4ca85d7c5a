/**
 * One framed, authenticated TCP connection (to another node or to the driver): a read loop that
 * decodes frames into messages, and a send queue that coalesces small messages into one write.
 *
 * Failure policy: a frame above the limit or a malformed body closes this connection only, with
 * one log line naming the peer, what was wrong and the limit; the process keeps serving its other
 * connections. A message handler that throws is logged (with the message type) and the read loop
 * goes on.
 *
 * Memory: a busy connection allocates nothing per message in steady state. Received frames land
 * in one reused receive buffer (so a message's typed arrays are valid only while its handler
 * runs: see {@linkcode Connection.onMessage}); sent messages are encoded straight into pooled
 * send buffers (small ones appended to one buffer, which is then one write), and a buffer goes
 * back to the pool once the socket has taken all of it.
 *
 * @module
 */

import { HandshakeType } from "./handshake.ts";
import {
  decodeMessage,
  encodeFrameInto,
  FRAME_BYTES_MAX_DEFAULT,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
  MalformedFrameError,
  type Message,
} from "./wire.ts";

/** Default limit of bytes queued for sending on one connection. */
export const QUEUE_BYTES_MAX_DEFAULT = 4 * FRAME_BYTES_MAX_DEFAULT;

/**
 * Default limit of bytes queued for sending on all connections of this thread together: many
 * slow peers must not add up to more than this (send() beyond it throws a RangeError).
 */
export const QUEUE_BYTES_MAX_TOTAL_DEFAULT = 1024 * 1024 * 1024;

let queueBytesMaxTotal = QUEUE_BYTES_MAX_TOTAL_DEFAULT;
let queuedBytesSum = 0;

/** Sets the limit of bytes queued on all connections of this thread together. */
export function setQueueBytesMaxTotal(bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 1) {
    throw new RangeError(`queueBytesMaxTotal must be an integer >= 1, got ${bytes}`);
  }
  queueBytesMaxTotal = bytes;
}

/** Bytes queued for sending on all connections of this thread together. */
export function queuedBytesTotal(): number {
  return queuedBytesSum;
}

/** Default time close() waits for queued frames to be written before it drops them. */
export const CLOSE_FLUSH_TIMEOUT_MS_DEFAULT = 5000;

// Frames are concatenated into one write up to this size; a frame at least this large is
// written on its own, so large payloads are never copied once more just to be coalesced.
const COALESCE_BYTES_MAX = 256 * 1024;

// Free send buffers, shared by the connections of this thread: coalescing buffers of
// COALESCE_BYTES_MAX bytes, and larger ones that held one large frame each. At most this many
// buffers and bytes are kept; a buffer that does not fit is left to the garbage collector.
const SEND_POOL_BUFFERS_MAX = 16;
const SEND_POOL_BYTES_MAX = 32 * 1024 * 1024;
// A buffer for a large frame gets this much room to spare (frames of one kind vary in size).
const SEND_BUFFER_SLACK = 1 / 8;
const SEND_BUFFER_ROUND = 64 * 1024;

const sendPool: Uint8Array[] = [];
let sendPoolBytes = 0;

/** A free send buffer of at least `bytes` bytes (coalescing buffers for small frames). */
function takeSendBuffer(bytes: number): Uint8Array {
  const small = bytes <= COALESCE_BYTES_MAX;
  let best = -1;
  for (let i = 0; i < sendPool.length; i++) {
    const length = sendPool[i].length;
    if (small ? length !== COALESCE_BYTES_MAX : length < bytes) continue;
    if (best < 0 || length < sendPool[best].length) best = i;
  }
  if (best < 0) {
    if (small) return new Uint8Array(COALESCE_BYTES_MAX);
    const size = bytes + bytes * SEND_BUFFER_SLACK;
    return new Uint8Array(Math.ceil(size / SEND_BUFFER_ROUND) * SEND_BUFFER_ROUND);
  }
  const buf = sendPool[best];
  sendPool[best] = sendPool[sendPool.length - 1];
  sendPool.pop();
  sendPoolBytes -= buf.length;
  return buf;
}

/** Returns a written send buffer to the pool, or drops it when the pool is full. */
function giveSendBuffer(buf: Uint8Array): void {
  if (sendPool.length >= SEND_POOL_BUFFERS_MAX) return;
  if (sendPoolBytes + buf.length > SEND_POOL_BYTES_MAX) return;
  sendPool.push(buf);
  sendPoolBytes += buf.length;
}

/** Frames queued back to back in one buffer: one write. */
interface Chunk {
  /** A pooled send buffer, or a frame given to sendFrame. */
  buf: Uint8Array;
  /** Bytes of frames in `buf`. */
  end: number;
  /** Small frames may still be appended: the queue's last chunk, not yet being written. */
  open: boolean;
  /** `buf` goes back to the send pool once written. */
  pooled: boolean;
}

// Free space offered to each read: big enough that a bulk transfer takes few reads.
const READ_BYTES_MIN = 64 * 1024;

/** Options of a {@linkcode Connection}. */
export interface ConnectionOptions {
  /** How log lines name the peer, e.g. "node 2 (127.0.0.1:7002)". */
  name: string;
  /** Largest frame body accepted from the peer and allowed to be sent, in bytes. */
  frameBytesMax?: number;
  /** Largest number of bytes queued for sending; send() beyond it throws a RangeError. */
  queueBytesMax?: number;
  /** Decoder from the handshake, holding any bytes the peer pipelined after it. */
  decoder?: FrameDecoder;
  /**
   * Called for every received message, in order (may also be set later, before start()). See
   * {@linkcode Connection.onMessage} for how long the message's typed arrays are valid.
   */
  onMessage?: (msg: Message) => unknown;
  /**
   * Receive into one reused buffer (default true). False gives every message arrays that stay
   * valid forever, at the cost of a fresh receive buffer per 256 KiB (or per large frame).
   */
  reuseReceiveBuffer?: boolean;
  /** Called once when the connection is closed, by either side, with the reason. */
  onClose?: (reason: string) => void;
  /** Where log lines go (default: stderr, prefixed with "lapse: "). */
  log?: (line: string) => void;
  /** Names message types in log lines (e.g. `msgName` of messages.ts). */
  messageName?: (t: number) => string;
  /** How long close() waits for queued frames to be written. */
  closeFlushTimeoutMs?: number;
}

/**
 * A connection carrying messages both ways over a `Deno.Conn`.
 *
 * Reading starts with {@linkcode Connection.start}, so the owner can set `onMessage` first.
 */
export class Connection {
  /** How log lines name the peer. */
  readonly name: string;
  /** The limit of frame bodies accepted and sent (see the accessor). */
  #frameBytesMax: number;
  /** Largest number of bytes queued for sending. */
  readonly queueBytesMax: number;
  /**
   * Receives every message, in order; a throw is logged and the loop goes on.
   *
   * Validity: the typed arrays (and byte strings) of `msg` are views of the connection's
   * receive buffer, which is reused: they are valid only until the handler returns (for an
   * async handler: until its first `await`). A handler that keeps one longer must copy it
   * (`arr.slice()`); it may modify them in place meanwhile. Everything else in a message
   * (numbers, strings, plain objects and arrays) is fresh and may be kept. With
   * `reuseReceiveBuffer: false` the arrays stay valid forever.
   */
  onMessage: (msg: Message) => unknown;
  /** Called once, when the connection closes. */
  onClose: (reason: string) => void;

  /** Messages queued by send() (counted when queued). */
  messagesSent = 0;
  /** Bytes written to the socket, framing included. */
  bytesSent = 0;
  /** Messages decoded and handed to onMessage. */
  messagesReceived = 0;
  /** Bytes read from the socket, framing included (bytes pipelined into the handshake too). */
  bytesReceived = 0;
  /** Calls of `conn.write` (coalescing makes this far smaller than messagesSent). */
  writes = 0;
  /** Set when the connection was closed because of an error, which was logged already. */
  failed = false;

  /** Resolves when the socket is closed and the read and write loops have stopped. */
  readonly closed: Promise<void>;

  readonly #conn: Deno.Conn;
  readonly #decoder: FrameDecoder;
  readonly #log: (line: string) => void;
  readonly #messageName: (t: number) => string;
  readonly #closeFlushTimeoutMs: number;
  #resolveClosed!: () => void;

  /** Chunks to write, from #queueHead; the one at #queueHead is being written. */
  #queue: Chunk[] = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #flushScheduled = false;
  #writing: Promise<void> | null = null;
  #drainWaiters: (() => void)[] = [];

  #reading: Promise<void> | null = null;
  /** close() was called: no more sends, deliver no more messages, flush then shut down. */
  #closing = false;
  /** The socket is closed (or closing right now). */
  #shut = false;
  #closeReason = "";
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(conn: Deno.Conn, options: ConnectionOptions) {
    this.#conn = conn;
    this.name = options.name;
    this.#frameBytesMax = options.frameBytesMax ?? options.decoder?.frameBytesMax ??
      FRAME_BYTES_MAX_DEFAULT;
    this.queueBytesMax = options.queueBytesMax ?? QUEUE_BYTES_MAX_DEFAULT;
    this.#decoder = options.decoder ?? new FrameDecoder(this.#frameBytesMax);
    this.#decoder.frameBytesMax = this.#frameBytesMax;
    // Bodies handed out before (the handshake's) are no longer used by anyone.
    this.#decoder.reuse = options.reuseReceiveBuffer ?? true;
    this.bytesReceived = this.#decoder.bufferedBytes;
    this.onMessage = options.onMessage ?? (() => {});
    this.onClose = options.onClose ?? (() => {});
    this.#log = options.log ?? ((line) => console.error(`lapse: ${line}`));
    this.#messageName = options.messageName ?? ((t) => `t=${t}`);
    this.#closeFlushTimeoutMs = options.closeFlushTimeoutMs ??
      CLOSE_FLUSH_TIMEOUT_MS_DEFAULT;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    // Small messages must go out at once: latency of small pulls matters more than packets.
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  }

  /**
   * Largest frame body accepted and sent, in bytes. Settable: a node applies the running job's
   * `ps.max_frame_bytes` to its node connections (both sides of every link use the same job
   * config, so both apply the same limit).
   */
  get frameBytesMax(): number {
    return this.#frameBytesMax;
  }
  set frameBytesMax(bytes: number) {
    this.#decoder.frameBytesMax = bytes; // checks the range
    this.#frameBytesMax = bytes;
  }

  /** True once close() or abort() was called or the peer went away. */
  get isClosed(): boolean {
    return this.#closing || this.#shut;
  }

  /** Bytes queued and not yet written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Starts the read loop (idempotent). Messages already in the decoder are delivered first. */
  start(): void {
    if (this.#reading || this.#shut) return;
    this.#reading = this.#readLoop();
  }

  /**
   * Encodes `msg` at once and queues it; queued frames of one tick go out in one write.
   *
   * @throws {RangeError} when the frame is above frameBytesMax (the peer would drop the
   *   connection) or the queue would exceed queueBytesMax (the peer is not keeping up).
   * @throws {Error} when the connection is closed.
   */
  send(msg: Message): void {
    if (encodeFrameInto(msg, this.#reserve) >= COALESCE_BYTES_MAX) this.#writeNow();
  }

  /**
   * Queues a frame made by `encodeFrame` (to send one message to many peers, encode it once).
   * The frame must not be modified afterwards (a small one is copied at once).
   */
  sendFrame(frame: Uint8Array): void {
    if (frame.length < COALESCE_BYTES_MAX) {
      this.#reserve(frame.length).set(frame);
      return;
    }
    this.#checkSend(frame.length);
    this.#queue.push({ buf: frame, end: frame.length, open: false, pooled: false });
    this.#queued(frame.length);
    this.#writeNow();
  }

  /**
   * After a large frame was queued (and written into its buffer): it has nothing to wait for,
   * so writing starts now unless a write is running (Deno starts a socket write at once). The
   * peer then receives it while this thread goes on, e.g. with the next part of a large
   * answer. Frames queued before it go first.
   */
  #writeNow(): void {
    if (!this.#writing && !this.#shut) this.#writing = this.#flushLoop();
  }

  /** Room for one frame of `frameBytes` bytes at the end of the send queue, queued. */
  readonly #reserve = (frameBytes: number): Uint8Array => {
    this.#checkSend(frameBytes);
    const queue = this.#queue;
    let chunk = queue.length > this.#queueHead ? queue[queue.length - 1] : undefined;
    if (frameBytes < COALESCE_BYTES_MAX) {
      // Appended to the open coalescing buffer, or the start of a new one.
      if (chunk === undefined || !chunk.open || chunk.buf.length - chunk.end < frameBytes) {
        chunk = { buf: takeSendBuffer(frameBytes), end: 0, open: true, pooled: true };
        queue.push(chunk);
      }
    } else {
      chunk = { buf: takeSendBuffer(frameBytes), end: 0, open: false, pooled: true };
      queue.push(chunk);
    }
    const at = chunk.end;
    chunk.end += frameBytes;
    this.#queued(frameBytes);
    return chunk.buf.subarray(at, at + frameBytes);
  };

  #checkSend(frameBytes: number): void {
    if (this.isClosed) {
      throw new Error(
        `cannot send to ${this.name}: the connection is closed (${this.#closeReason || "closing"})`,
      );
    }
    const bodyBytes = frameBytes - FRAME_HEADER_BYTES;
    if (bodyBytes > this.frameBytesMax) {
      throw new RangeError(
        `cannot send ${bodyBytes} bytes to ${this.name}: above the frame limit of ` +
          `${this.#frameBytesMax} bytes (ps.max_frame_bytes between nodes: split the batch, or ` +
          `raise the limit)`,
      );
    }
    if (this.#queuedBytes + frameBytes > this.queueBytesMax) {
      throw new RangeError(
        `send queue to ${this.name} would exceed its limit of ${this.queueBytesMax} bytes ` +
          `(${this.#queuedBytes} bytes queued + ${frameBytes}): the peer is not reading ` +
          `fast enough; await drain() between large batches`,
      );
    }
    if (queuedBytesSum + frameBytes > queueBytesMaxTotal) {
      throw new RangeError(
        `send queue to ${this.name} would make the bytes queued on all connections exceed ` +
          `${queueBytesMaxTotal} (${queuedBytesSum} queued + ${frameBytes}): peers ` +
          `are not reading fast enough`,
      );
    }
  }

  /** Counts a queued frame and makes sure a flush is coming. */
  #queued(frameBytes: number): void {
    this.#queuedBytes += frameBytes;
    queuedBytesSum += frameBytes;
    this.messagesSent++;
    if (frameBytes >= COALESCE_BYTES_MAX) return; // the caller starts writing it (#writeNow)
    if (!this.#writing && !this.#flushScheduled) {
      // Defer to a microtask so that every send of the current synchronous run is coalesced.
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        if (!this.#writing && !this.#shut) this.#writing = this.#flushLoop();
      });
    }
  }

  /** Resolves when everything queued so far has been written (or the connection closed). */
  drain(): Promise<void> {
    if (this.#queuedBytes === 0 || this.#shut) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /**
   * Closes gracefully: no more sends, no more messages delivered, queued frames are written
   * (for at most closeFlushTimeoutMs), then the socket is closed. Resolves with `closed`.
   */
  close(reason = "closed locally"): Promise<void> {
    if (this.#shut || this.#closing) return this.closed;
    this.#closing = true;
    this.#closeReason = reason;
    if (this.#queuedBytes === 0 && !this.#writing) {
      this.#shutdown(reason);
    } else {
      this.#closeTimer = setTimeout(() => {
        this.#log(
          `${this.name}: dropping ${this.#queuedBytes} unsent bytes: the peer did not ` +
            `read them within ${this.#closeFlushTimeoutMs} ms of close`,
        );
        this.#shutdown(reason);
      }, this.#closeFlushTimeoutMs);
    }
    return this.closed;
  }

  /** Closes at once, dropping queued frames. */
  abort(reason: string): void {
    this.#shutdown(reason);
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        this.#deliverAll();
        if (this.#shut || this.#closing) return;
        const space = this.#decoder.space(READ_BYTES_MIN);
        const n = await this.#conn.read(space);
        if (n === null) {
          this.#shutdown("peer closed the connection");
          return;
        }
        this.#decoder.commit(n);
        this.bytesReceived += n;
      }
    } catch (err) {
      if (this.#shut) return; // our own close interrupted the read
      if (err instanceof FrameTooLargeError) {
        this.#fail(`frame too large: ${err.message}`);
      } else if (err instanceof MalformedFrameError) {
        this.#fail(`malformed frame: ${err.message}`);
      } else if (err instanceof Deno.errors.ConnectionReset) {
        this.#shutdown("connection reset by peer");
      } else {
        this.#fail(`read failed: ${(err as Error)?.message ?? err}`);
      }
    }
  }

  /** Decodes and hands out every complete frame in the decoder. */
  #deliverAll(): void {
    let body: Uint8Array | null;
    while (!this.#shut && !this.#closing && (body = this.#decoder.next()) !== null) {
      const msg = decodeMessage(body);
      this.messagesReceived++;
      if (msg.t === HandshakeType.reject) {
        this.#fail(`the peer refused the connection: ${String(msg.reason ?? "no reason given")}`);
        return;
      }
      try {
        const result = this.onMessage(msg);
        if (result instanceof Promise) result.catch((err) => this.#handlerFailed(msg.t, err));
      } catch (err) {
        this.#handlerFailed(msg.t, err);
      }
    }
  }

  #handlerFailed(t: number, err: unknown): void {
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    this.#log(
      `${this.name}: handler for message ${this.#messageName(t)} threw ` +
        `(connection kept open): ${detail}`,
    );
  }

  async #flushLoop(): Promise<void> {
    try {
      while (this.#queueHead < this.#queue.length && !this.#shut) {
        // The chunk stays queued (closed to appends) until the socket has taken all of it.
        const chunk = this.#queue[this.#queueHead];
        chunk.open = false;
        const bytes = chunk.end;
        let done = 0;
        while (done < bytes) {
          this.writes++;
          done += await this.#conn.write(chunk.buf.subarray(done, bytes));
        }
        // Aborted meanwhile: the queue was dropped (and the buffer is not reused: a write of
        // it may still be running when an abort interrupted it).
        if (this.#shut) return;
        this.bytesSent += bytes;
        this.#queuedBytes -= bytes;
        queuedBytesSum -= bytes;
        this.#queue[this.#queueHead++] = DONE;
        if (this.#queueHead === this.#queue.length) {
          this.#queue = [];
          this.#queueHead = 0;
        }
        if (chunk.pooled) giveSendBuffer(chunk.buf);
      }
    } catch (err) {
      if (!this.#shut) {
        if (err instanceof Deno.errors.BrokenPipe || err instanceof Deno.errors.ConnectionReset) {
          this.#shutdown("peer closed the connection");
        } else {
          this.#fail(`write failed: ${(err as Error)?.message ?? err}`);
        }
      }
    } finally {
      this.#writing = null;
      if (this.#queuedBytes === 0 || this.#shut) {
        for (const resolve of this.#drainWaiters.splice(0)) resolve();
      }
      if (this.#closing && !this.#shut && this.#queuedBytes === 0) {
        this.#shutdown(this.#closeReason);
      }
    }
  }

  /** Closes for an error, with one log line. */
  #fail(reason: string): void {
    if (this.#shut) return;
    this.failed = true;
    this.#log(`closing connection to ${this.name}: ${reason}`);
    this.#shutdown(reason);
  }

  #shutdown(reason: string): void {
    if (this.#shut) return;
    this.#shut = true;
    this.#closeReason ||= reason;
    clearTimeout(this.#closeTimer);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or the runtime.
    }
    this.#queue = [];
    this.#queueHead = 0;
    queuedBytesSum -= this.#queuedBytes;
    this.#queuedBytes = 0;
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
    try {
      this.onClose(reason);
    } catch (err) {
      this.#log(`${this.name}: onClose handler threw: ${(err as Error)?.stack ?? err}`);
    }
    // Resolve `closed` only after the pending read and write have returned, so that callers
    // awaiting it (and Deno's op sanitizer) see no operation still in flight.
    Promise.all([this.#reading, this.#writing]).then(() => this.#resolveClosed());
  }
}

/** Takes the place of a written chunk in the queue, so that its buffer is not referenced. */
const DONE: Chunk = { buf: new Uint8Array(0), end: 0, open: false, pooled: false };
