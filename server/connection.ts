/**
 * One framed, authenticated TCP connection (to another node or to the driver): a read loop that
 * decodes frames into messages, and a send queue that coalesces small messages into one write.
 *
 * Failure policy: a frame above the limit or a malformed body closes this connection only, with
 * one log line naming the peer, what was wrong and the limit; the process keeps serving its other
 * connections. A message handler that throws is logged (with the message type) and the read loop
 * goes on.
 *
 * @module
 */

import { HandshakeType } from "./handshake.ts";
import {
  decodeMessage,
  encodeFrame,
  FRAME_BYTES_MAX_DEFAULT,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
  MalformedFrameError,
  type Message,
} from "./wire.ts";

/** Default limit of bytes queued for sending on one connection. */
export const QUEUE_BYTES_MAX_DEFAULT = 4 * FRAME_BYTES_MAX_DEFAULT;

/** Default time close() waits for queued frames to be written before it drops them. */
export const CLOSE_FLUSH_TIMEOUT_MS_DEFAULT = 5000;

// Frames are concatenated into one write up to this size; a frame at least this large is
// written on its own, so large payloads are never copied once more just to be coalesced.
const COALESCE_BYTES_MAX = 256 * 1024;

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
  /** Called for every received message, in order (may also be set later, before start()). */
  onMessage?: (msg: Message) => unknown;
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
  /** Largest frame body accepted and sent, in bytes. */
  readonly frame_bytes_max: number;
  /** Largest number of bytes queued for sending. */
  readonly queue_bytes_max: number;
  /** Receives every message; a throw is logged and the loop goes on. */
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

  #queue: Uint8Array[] = [];
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
    this.frame_bytes_max = options.frame_bytes_max ?? options.decoder?.frame_bytes_max ??
      FRAME_BYTES_MAX_DEFAULT;
    this.queue_bytes_max = options.queue_bytes_max ?? QUEUE_BYTES_MAX_DEFAULT;
    this.#decoder = options.decoder ?? new FrameDecoder(this.frame_bytes_max);
    this.#decoder.frame_bytes_max = this.frame_bytes_max;
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
    this.sendFrame(encodeFrame(msg));
  }

  /**
   * Queues a frame made by `encodeFrame` (to send one message to many peers, encode it once).
   * The frame must not be modified afterwards.
   */
  sendFrame(frame: Uint8Array): void {
    if (this.is_closed) {
      throw new Error(
        `cannot send to ${this.name}: the connection is closed (${
          this.#close_reason || "closing"
        })`,
      );
    }
    const body_bytes = frame.length - FRAME_HEADER_BYTES;
    if (body_bytes > this.frame_bytes_max) {
      throw new RangeError(
        `cannot send ${body_bytes} bytes to ${this.name}: above frame_bytes_max=` +
          `${this.frame_bytes_max} (split the batch, or raise the limit on every node)`,
      );
    }
    if (this.#queued_bytes + frame.length > this.queue_bytes_max) {
      throw new RangeError(
        `send queue to ${this.name} would exceed queue_bytes_max=${this.queue_bytes_max} ` +
          `(${this.#queued_bytes} bytes queued + ${frame.length}): the peer is not reading ` +
          `fast enough; await drain() between large batches`,
      );
    }
    this.#queue.push(frame);
    this.#queued_bytes += frame.length;
    this.messages_sent++;
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
        const batch = this.#takeBatch();
        let done = 0;
        while (done < batch.length) {
          this.writes++;
          done += await this.#conn.write(batch.subarray(done));
        }
        if (this.#shut) return; // aborted meanwhile: the queue was dropped
        this.bytes_sent += batch.length;
        this.#queued_bytes -= batch.length;
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

  /** Takes the next frames off the queue: one large frame, or small ones concatenated. */
  #takeBatch(): Uint8Array {
    const queue = this.#queue;
    let end = this.#queue_head;
    let bytes = 0;
    do {
      bytes += queue[end].length;
      end++;
    } while (end < queue.length && bytes + queue[end].length <= COALESCE_BYTES_MAX);
    let batch: Uint8Array;
    if (end - this.#queue_head === 1) {
      batch = queue[this.#queue_head];
    } else {
      batch = new Uint8Array(bytes);
      let at = 0;
      for (let i = this.#queue_head; i < end; i++) {
        batch.set(queue[i], at);
        at += queue[i].length;
      }
    }
    for (let i = this.#queue_head; i < end; i++) queue[i] = EMPTY; // let frames be collected
    this.#queue_head = end;
    if (end === queue.length) {
      this.#queue = [];
      this.#queue_head = 0;
    }
    return batch;
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

const EMPTY = new Uint8Array(0);
