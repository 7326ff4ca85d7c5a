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

let queue_bytes_max_total = QUEUE_BYTES_MAX_TOTAL_DEFAULT;
let queued_bytes_total = 0;

/** Sets the limit of bytes queued on all connections of this thread together. */
export function setQueueBytesMaxTotal(bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 1) {
    throw new RangeError(`queue_bytes_max_total must be an integer >= 1, got ${bytes}`);
  }
  queue_bytes_max_total = bytes;
}

/** Bytes queued for sending on all connections of this thread together. */
export function queuedBytesTotal(): number {
  return queued_bytes_total;
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

const send_pool: Uint8Array[] = [];
let send_pool_bytes = 0;

/** A free send buffer of at least `bytes` bytes (coalescing buffers for small frames). */
function takeSendBuffer(bytes: number): Uint8Array {
  const small = bytes <= COALESCE_BYTES_MAX;
  let best = -1;
  for (let i = 0; i < send_pool.length; i++) {
    const length = send_pool[i].length;
    if (small ? length !== COALESCE_BYTES_MAX : length < bytes) continue;
    if (best < 0 || length < send_pool[best].length) best = i;
  }
  if (best < 0) {
    if (small) return new Uint8Array(COALESCE_BYTES_MAX);
    const size = bytes + bytes * SEND_BUFFER_SLACK;
    return new Uint8Array(Math.ceil(size / SEND_BUFFER_ROUND) * SEND_BUFFER_ROUND);
  }
  const buf = send_pool[best];
  send_pool[best] = send_pool[send_pool.length - 1];
  send_pool.pop();
  send_pool_bytes -= buf.length;
  return buf;
}

/** Returns a written send buffer to the pool, or drops it when the pool is full. */
function giveSendBuffer(buf: Uint8Array): void {
  if (send_pool.length >= SEND_POOL_BUFFERS_MAX) return;
  if (send_pool_bytes + buf.length > SEND_POOL_BYTES_MAX) return;
  send_pool.push(buf);
  send_pool_bytes += buf.length;
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
  frame_bytes_max?: number;
  /** Largest number of bytes queued for sending; send() beyond it throws a RangeError. */
  queue_bytes_max?: number;
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
  reuse_receive_buffer?: boolean;
  /** Called once when the connection is closed, by either side, with the reason. */
  onClose?: (reason: string) => void;
  /** Where log lines go (default: stderr, prefixed with "lapse: "). */
  log?: (line: string) => void;
  /** Names message types in log lines (e.g. `msgName` of messages.ts). */
  messageName?: (t: number) => string;
  /** How long close() waits for queued frames to be written. */
  close_flush_timeout_ms?: number;
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
  readonly queue_bytes_max: number;
  /**
   * Receives every message, in order; a throw is logged and the loop goes on.
   *
   * Validity: the typed arrays (and byte strings) of `msg` are views of the connection's
   * receive buffer, which is reused: they are valid only until the handler returns (for an
   * async handler: until its first `await`). A handler that keeps one longer must copy it
   * (`arr.slice()`); it may modify them in place meanwhile. Everything else in a message
   * (numbers, strings, plain objects and arrays) is fresh and may be kept. With
   * `reuse_receive_buffer: false` the arrays stay valid forever.
   */
  onMessage: (msg: Message) => unknown;
  /** Called once, when the connection closes. */
  onClose: (reason: string) => void;

  /** Messages queued by send() (counted when queued). */
  messages_sent = 0;
  /** Bytes written to the socket, framing included. */
  bytes_sent = 0;
  /** Messages decoded and handed to onMessage. */
  messages_received = 0;
  /** Bytes read from the socket, framing included (bytes pipelined into the handshake too). */
  bytes_received = 0;
  /** Calls of `conn.write` (coalescing makes this far smaller than messages_sent). */
  writes = 0;
  /** Set when the connection was closed because of an error, which was logged already. */
  failed = false;

  /** Resolves when the socket is closed and the read and write loops have stopped. */
  readonly closed: Promise<void>;

  readonly #conn: Deno.Conn;
  readonly #decoder: FrameDecoder;
  readonly #log: (line: string) => void;
  readonly #messageName: (t: number) => string;
  readonly #close_flush_timeout_ms: number;
  #resolve_closed!: () => void;

  /** Chunks to write, from #queue_head; the one at #queue_head is being written. */
  #queue: Chunk[] = [];
  #queue_head = 0;
  #queued_bytes = 0;
  #flush_scheduled = false;
  #writing: Promise<void> | null = null;
  #drain_waiters: (() => void)[] = [];

  #reading: Promise<void> | null = null;
  /** close() was called: no more sends, deliver no more messages, flush then shut down. */
  #closing = false;
  /** The socket is closed (or closing right now). */
  #shut = false;
  #close_reason = "";
  #close_timer: ReturnType<typeof setTimeout> | undefined;

  constructor(conn: Deno.Conn, options: ConnectionOptions) {
    this.#conn = conn;
    this.name = options.name;
    this.#frameBytesMax = options.frame_bytes_max ?? options.decoder?.frame_bytes_max ??
      FRAME_BYTES_MAX_DEFAULT;
    this.queue_bytes_max = options.queue_bytes_max ?? QUEUE_BYTES_MAX_DEFAULT;
    this.#decoder = options.decoder ?? new FrameDecoder(this.#frameBytesMax);
    this.#decoder.frame_bytes_max = this.#frameBytesMax;
    // Bodies handed out before (the handshake's) are no longer used by anyone.
    this.#decoder.reuse = options.reuse_receive_buffer ?? true;
    this.bytes_received = this.#decoder.buffered_bytes;
    this.onMessage = options.onMessage ?? (() => {});
    this.onClose = options.onClose ?? (() => {});
    this.#log = options.log ?? ((line) => console.error(`lapse: ${line}`));
    this.#messageName = options.messageName ?? ((t) => `t=${t}`);
    this.#close_flush_timeout_ms = options.close_flush_timeout_ms ??
      CLOSE_FLUSH_TIMEOUT_MS_DEFAULT;
    this.closed = new Promise((resolve) => this.#resolve_closed = resolve);
    // Small messages must go out at once: latency of small pulls matters more than packets.
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  }

  /**
   * Largest frame body accepted and sent, in bytes. Settable: a node applies the running job's
   * `ps.max_frame_bytes` to its node connections (both sides of every link use the same job
   * config, so both apply the same limit).
   */
  get frame_bytes_max(): number {
    return this.#frameBytesMax;
  }
  set frame_bytes_max(bytes: number) {
    this.#decoder.frame_bytes_max = bytes; // checks the range
    this.#frameBytesMax = bytes;
  }

  /** True once close() or abort() was called or the peer went away. */
  get is_closed(): boolean {
    return this.#closing || this.#shut;
  }

  /** Bytes queued and not yet written. */
  get queued_bytes(): number {
    return this.#queued_bytes;
  }

  /** Starts the read loop (idempotent). Messages already in the decoder are delivered first. */
  start(): void {
    if (this.#reading || this.#shut) return;
    this.#reading = this.#readLoop();
  }

  /**
   * Encodes `msg` at once and queues it; queued frames of one tick go out in one write.
   *
   * @throws {RangeError} when the frame is above frame_bytes_max (the peer would drop the
   *   connection) or the queue would exceed queue_bytes_max (the peer is not keeping up).
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

  /** Room for one frame of `frame_bytes` bytes at the end of the send queue, queued. */
  readonly #reserve = (frame_bytes: number): Uint8Array => {
    this.#checkSend(frame_bytes);
    const queue = this.#queue;
    let chunk = queue.length > this.#queue_head ? queue[queue.length - 1] : undefined;
    if (frame_bytes < COALESCE_BYTES_MAX) {
      // Appended to the open coalescing buffer, or the start of a new one.
      if (chunk === undefined || !chunk.open || chunk.buf.length - chunk.end < frame_bytes) {
        chunk = { buf: takeSendBuffer(frame_bytes), end: 0, open: true, pooled: true };
        queue.push(chunk);
      }
    } else {
      chunk = { buf: takeSendBuffer(frame_bytes), end: 0, open: false, pooled: true };
      queue.push(chunk);
    }
    const at = chunk.end;
    chunk.end += frame_bytes;
    this.#queued(frame_bytes);
    return chunk.buf.subarray(at, at + frame_bytes);
  };

  #checkSend(frame_bytes: number): void {
    if (this.is_closed) {
      throw new Error(
        `cannot send to ${this.name}: the connection is closed (${
          this.#close_reason || "closing"
        })`,
      );
    }
    const body_bytes = frame_bytes - FRAME_HEADER_BYTES;
    if (body_bytes > this.frame_bytes_max) {
      throw new RangeError(
        `cannot send ${body_bytes} bytes to ${this.name}: above the frame limit of ` +
          `${this.#frameBytesMax} bytes (ps.max_frame_bytes between nodes: split the batch, or ` +
          `raise the limit)`,
      );
    }
    if (this.#queued_bytes + frame_bytes > this.queue_bytes_max) {
      throw new RangeError(
        `send queue to ${this.name} would exceed queue_bytes_max=${this.queue_bytes_max} ` +
          `(${this.#queued_bytes} bytes queued + ${frame_bytes}): the peer is not reading ` +
          `fast enough; await drain() between large batches`,
      );
    }
    if (queued_bytes_total + frame_bytes > queue_bytes_max_total) {
      throw new RangeError(
        `send queue to ${this.name} would make the bytes queued on all connections exceed ` +
          `${queue_bytes_max_total} (${queued_bytes_total} queued + ${frame_bytes}): peers ` +
          `are not reading fast enough`,
      );
    }
  }

  /** Counts a queued frame and makes sure a flush is coming. */
  #queued(frame_bytes: number): void {
    this.#queued_bytes += frame_bytes;
    queued_bytes_total += frame_bytes;
    this.messages_sent++;
    if (frame_bytes >= COALESCE_BYTES_MAX) return; // the caller starts writing it (#writeNow)
    if (!this.#writing && !this.#flush_scheduled) {
      // Defer to a microtask so that every send of the current synchronous run is coalesced.
      this.#flush_scheduled = true;
      queueMicrotask(() => {
        this.#flush_scheduled = false;
        if (!this.#writing && !this.#shut) this.#writing = this.#flushLoop();
      });
    }
  }

  /** Resolves when everything queued so far has been written (or the connection closed). */
  drain(): Promise<void> {
    if (this.#queued_bytes === 0 || this.#shut) return Promise.resolve();
    return new Promise((resolve) => this.#drain_waiters.push(resolve));
  }

  /**
   * Closes gracefully: no more sends, no more messages delivered, queued frames are written
   * (for at most close_flush_timeout_ms), then the socket is closed. Resolves with `closed`.
   */
  close(reason = "closed locally"): Promise<void> {
    if (this.#shut || this.#closing) return this.closed;
    this.#closing = true;
    this.#close_reason = reason;
    if (this.#queued_bytes === 0 && !this.#writing) {
      this.#shutdown(reason);
    } else {
      this.#close_timer = setTimeout(() => {
        this.#log(
          `${this.name}: dropping ${this.#queued_bytes} unsent bytes: the peer did not ` +
            `read them within ${this.#close_flush_timeout_ms} ms of close`,
        );
        this.#shutdown(reason);
      }, this.#close_flush_timeout_ms);
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
        this.bytes_received += n;
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
      this.messages_received++;
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
      while (this.#queue_head < this.#queue.length && !this.#shut) {
        // The chunk stays queued (closed to appends) until the socket has taken all of it.
        const chunk = this.#queue[this.#queue_head];
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
        this.bytes_sent += bytes;
        this.#queued_bytes -= bytes;
        queued_bytes_total -= bytes;
        this.#queue[this.#queue_head++] = DONE;
        if (this.#queue_head === this.#queue.length) {
          this.#queue = [];
          this.#queue_head = 0;
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
      if (this.#queued_bytes === 0 || this.#shut) {
        for (const resolve of this.#drain_waiters.splice(0)) resolve();
      }
      if (this.#closing && !this.#shut && this.#queued_bytes === 0) {
        this.#shutdown(this.#close_reason);
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
    this.#close_reason ||= reason;
    clearTimeout(this.#close_timer);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or the runtime.
    }
    this.#queue = [];
    this.#queue_head = 0;
    queued_bytes_total -= this.#queued_bytes;
    this.#queued_bytes = 0;
    for (const resolve of this.#drain_waiters.splice(0)) resolve();
    try {
      this.onClose(reason);
    } catch (err) {
      this.#log(`${this.name}: onClose handler threw: ${(err as Error)?.stack ?? err}`);
    }
    // Resolve `closed` only after the pending read and write have returned, so that callers
    // awaiting it (and Deno's op sanitizer) see no operation still in flight.
    Promise.all([this.#reading, this.#writing]).then(() => this.#resolve_closed());
  }
}

/** Takes the place of a written chunk in the queue, so that its buffer is not referenced. */
const DONE: Chunk = { buf: new Uint8Array(0), end: 0, open: false, pooled: false };
