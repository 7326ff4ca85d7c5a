/**
 * The wire format shared by every connection (node <-> node, driver <-> node): pure framing and
 * CBOR, no sockets, so split and merged chunks are unit-tested in memory.
 *
 * A frame on the wire is
 *
 * ```text
 * u32 little-endian body length | CBOR body (length bytes) | 0-3 zero bytes of padding
 * ```
 *
 * The padding makes every frame a multiple of 4 bytes long, so in a receive buffer that starts
 * 4-byte aligned every body starts 4-byte aligned too. The body is one CBOR map `{ t, ... }`
 * encoded by cbor-x with records off. Keys and values travel as typed arrays, which cbor-x
 * writes as a tag (RFC 8746) plus a byte string. cbor-x itself does not align that byte
 * string, so {@linkcode encodeFrame} rewrites the headers in front of each typed-array payload
 * (non-shortest but valid CBOR integer widths, plus the no-op self-describe tag 55799 where
 * needed) so that every payload of 2- or 4-byte elements starts at a multiple of 4 from the
 * start of the body. The decoder then returns those arrays as views of the receive buffer
 * instead of copies.
 *
 * When a decoded typed array is a copy instead of a view:
 * - 8-byte elements (`Float64Array`, `BigInt64Array`, `BigUint64Array`): payloads are aligned
 *   to 4 only, so they alias only when they happen to land on a multiple of 8;
 * - a body that was not produced by {@linkcode encodeFrame} (any CBOR encoder), or a body that
 *   the caller placed at an offset that is not a multiple of 4.
 * Copies are always correct, only slower.
 *
 * @module
 */

import { Decoder, Encoder } from "cbor-x";

/** Default largest accepted frame body, in bytes (a cluster-wide setting in practice). */
export const FRAME_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/** Bytes of the length prefix in front of every frame body. */
export const FRAME_HEADER_BYTES = 4;

/** A frame declared a body longer than the receiver's limit. */
export class FrameTooLargeError extends Error {
  /** The declared body length, in bytes. */
  readonly frame_bytes: number;
  /** The receiver's limit, in bytes. */
  readonly frame_bytes_max: number;
  constructor(frame_bytes: number, frame_bytes_max: number) {
    super(
      `frame of ${frame_bytes} bytes exceeds frame_bytes_max=${frame_bytes_max} ` +
        `(a peer speaking another protocol, or a message that should have been split)`,
    );
    this.name = "FrameTooLargeError";
    this.frame_bytes = frame_bytes;
    this.frame_bytes_max = frame_bytes_max;
  }
}

/** A frame body that is not CBOR, or not a map with a numeric `t`. */
export class MalformedFrameError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MalformedFrameError";
  }
}

/** A decoded message: a plain object whose numeric `t` says what it is. */
export type Message = { t: number } & Record<string, unknown>;

// cbor-x's RESET_BUFFER_MODE (not re-exported by its index): the encoder reuses its internal
// buffer for the next message. Safe because encodeFrame copies the body out at once.
const RESET_BUFFER_MODE = 1024;

// Messages whose typed arrays add up to more than this are encoded by a throwaway Encoder:
// cbor-x grows its internal buffer to the largest message and keeps it for good, and we do not
// want one 400 MB localize to pin 400 MB per process forever.
const SHARED_ENCODER_BYTES_MAX = 1024 * 1024;

const shared_encoder = new Encoder({ useRecords: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

// Typed-array tags (RFC 8746, little-endian variants as cbor-x writes them on x86/ARM) mapped to
// the alignment their payload wants: 4 for 2- and 4-byte elements (4 covers both), 4 for 8-byte
// elements too (best effort: the receive buffer only guarantees 4).
const TYPED_ARRAY_ALIGN: Record<number, number> = {
  69: 4, // Uint16Array
  70: 4, // Uint32Array
  71: 4, // BigUint64Array
  77: 4, // Int16Array
  78: 4, // Int32Array
  79: 4, // BigInt64Array
  85: 4, // Float32Array
  86: 4, // Float64Array
};

/** Where one typed-array item sits in cbor-x's output. */
interface TypedArraySpot {
  /** Offset of the tag's first byte in the body. */
  start: number;
  /** Offset of the payload's first byte. */
  payload: number;
  /** Payload length in bytes. */
  length: number;
  tag: number;
  /** Header widths chosen for the output (filled by planAlignment). */
  self_describe_bytes: number;
  tag_bytes: number;
  bstr_bytes: number;
}

/**
 * Encodes one message as a complete frame (length prefix, body, padding) in one fresh buffer
 * that the caller owns. Typed-array payloads are 4-byte aligned relative to the body start.
 */
export function encodeFrame(msg: unknown): Uint8Array {
  const encoder = typedArrayBytes(msg) > SHARED_ENCODER_BYTES_MAX
    ? new Encoder({ useRecords: false })
    : shared_encoder;
  const body: Uint8Array = (encoder.encode as (v: unknown, mode: number) => Uint8Array)(
    msg,
    RESET_BUFFER_MODE,
  );
  const spots: TypedArraySpot[] = [];
  scanItem(body, 0, spots);
  const extra_bytes = planAlignment(spots);
  const body_bytes = body.length + extra_bytes;
  const frame = new Uint8Array(FRAME_HEADER_BYTES + align4(body_bytes));
  new DataView(frame.buffer).setUint32(0, body_bytes, true);
  if (extra_bytes === 0) {
    frame.set(body, FRAME_HEADER_BYTES);
    return frame;
  }
  let from = 0;
  let to = FRAME_HEADER_BYTES;
  for (const spot of spots) {
    frame.set(body.subarray(from, spot.start), to);
    to += spot.start - from;
    to = writeTypedArrayHeader(frame, to, spot);
    frame.set(body.subarray(spot.payload, spot.payload + spot.length), to);
    to += spot.length;
    from = spot.payload + spot.length;
  }
  frame.set(body.subarray(from), to);
  return frame;
}

/** Total bytes of the typed arrays directly inside `msg` (a cheap size estimate). */
function typedArrayBytes(msg: unknown): number {
  if (msg === null || typeof msg !== "object") return 0;
  let bytes = 0;
  for (const key in msg) {
    const v = (msg as Record<string, unknown>)[key];
    if (ArrayBuffer.isView(v)) bytes += v.byteLength;
  }
  return bytes;
}

/** `n` rounded up to a multiple of 4 (not with `& ~3`: lengths may exceed 2^31). */
function align4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

/**
 * Chooses header widths so that each payload lands on a multiple of 4 in the output body and
 * returns how many bytes that adds. Processes spots in order because each choice shifts
 * everything after it.
 */
function planAlignment(spots: TypedArraySpot[]): number {
  let shift = 0;
  for (const spot of spots) {
    const original = spot.payload - spot.start;
    const out_start = spot.start + shift;
    spot.self_describe_bytes = 0;
    spot.tag_bytes = 2;
    spot.bstr_bytes = original - 2;
    if ((out_start + original) % TYPED_ARRAY_ALIGN[spot.tag] === 0) continue;
    let best = Infinity;
    // Every combination below is valid CBOR; the smallest one that aligns wins. A solution
    // always exists: for big payloads (5-byte length) 5+3+5 = 13 covers the residue that tag and
    // length widths alone cannot reach.
    for (const sd of [0, 3, 5]) {
      for (const tw of [2, 3, 5]) {
        for (const bw of [1, 2, 3, 5, 9]) {
          if (!lengthFits(spot.length, bw)) continue;
          const header = sd + tw + bw;
          if ((out_start + header) % 4 !== 0 || header >= best) continue;
          best = header;
          spot.self_describe_bytes = sd;
          spot.tag_bytes = tw;
          spot.bstr_bytes = bw;
        }
      }
    }
    shift += best - original;
  }
  return shift;
}

/** Whether a CBOR argument of `width` header bytes can carry `length`. */
function lengthFits(length: number, width: number): boolean {
  switch (width) {
    case 1:
      return length < 24;
    case 2:
      return length < 0x100;
    case 3:
      return length < 0x10000;
    case 5:
      return length <= 0xffffffff;
    default:
      return true;
  }
}

/** Writes self-describe tag (optional), typed-array tag and byte-string header; returns end. */
function writeTypedArrayHeader(out: Uint8Array, at: number, spot: TypedArraySpot): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (spot.self_describe_bytes === 3) {
    out[at++] = 0xd9;
    view.setUint16(at, 55799);
    at += 2;
  } else if (spot.self_describe_bytes === 5) {
    out[at++] = 0xda;
    view.setUint32(at, 55799);
    at += 4;
  }
  at = writeArgument(out, view, at, 0xc0, spot.tag, spot.tag_bytes);
  return writeArgument(out, view, at, 0x40, spot.length, spot.bstr_bytes);
}

/** Writes a CBOR head of major type `major` (already shifted) with a fixed width. */
function writeArgument(
  out: Uint8Array,
  view: DataView,
  at: number,
  major: number,
  value: number,
  width: number,
): number {
  switch (width) {
    case 1:
      out[at] = major | value;
      return at + 1;
    case 2:
      out[at] = major | 24;
      out[at + 1] = value;
      return at + 2;
    case 3:
      out[at] = major | 25;
      view.setUint16(at + 1, value);
      return at + 3;
    case 5:
      out[at] = major | 26;
      view.setUint32(at + 1, value);
      return at + 5;
    default:
      out[at] = major | 27;
      view.setUint32(at + 1, 0);
      view.setUint32(at + 5, value);
      return at + 9;
  }
}

/**
 * Walks one CBOR item of cbor-x's output starting at `pos`, records typed arrays, and returns
 * the offset after the item. Only the structure is read; values are skipped.
 */
function scanItem(b: Uint8Array, pos: number, spots: TypedArraySpot[]): number {
  const initial = b[pos];
  const major = initial >> 5;
  const info = initial & 31;
  let arg: number;
  let p = pos + 1;
  if (info < 24) arg = info;
  else if (info === 24) arg = b[p++];
  else if (info === 25) {
    arg = (b[p] << 8) | b[p + 1];
    p += 2;
  } else if (info === 26) {
    arg = (b[p] * 0x1000000) + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
    p += 4;
  } else if (info === 27) {
    // 8-byte argument: lengths this large never occur in our messages; values are skipped.
    arg = (b[p + 4] * 0x1000000) + ((b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7]);
    p += 8;
  } else if (info === 31) arg = -1; // indefinite length (or the break code, major 7)
  else throw new Error(`encodeFrame: unexpected CBOR byte 0x${initial.toString(16)}`);

  switch (major) {
    case 0:
    case 1:
    case 7:
      return p;
    case 2:
    case 3:
      if (arg >= 0) return p + arg;
      while (b[p] !== 0xff) p = scanItem(b, p, spots);
      return p + 1;
    case 4:
    case 5: {
      if (arg < 0) {
        while (b[p] !== 0xff) p = scanItem(b, p, spots);
        return p + 1;
      }
      const items = major === 4 ? arg : 2 * arg;
      for (let i = 0; i < items; i++) p = scanItem(b, p, spots);
      return p;
    }
    default: {
      // Tag: a typed array is a known tag followed by a definite-length byte string.
      if (TYPED_ARRAY_ALIGN[arg] !== undefined && (b[p] >> 5) === 2 && (b[p] & 31) !== 31) {
        const end = scanItem(b, p, []);
        const bstr_info = b[p] & 31;
        const bstr_head = bstr_info < 24
          ? 1
          : bstr_info === 24
          ? 2
          : bstr_info === 25
          ? 3
          : bstr_info === 26
          ? 5
          : 9;
        const payload = p + bstr_head;
        spots.push({
          start: pos,
          payload,
          length: end - payload,
          tag: arg,
          self_describe_bytes: 0,
          tag_bytes: 2,
          bstr_bytes: bstr_head,
        });
        return end;
      }
      return scanItem(b, p, spots);
    }
  }
}

/**
 * Decodes one frame body into a message. Typed arrays in it are views of `body`'s buffer when
 * aligned (see the module doc), so the caller must not reuse that memory while it keeps them;
 * {@linkcode FrameDecoder} never does.
 *
 * @throws {MalformedFrameError} when the body is not valid CBOR or not a map with a numeric `t`.
 */
export function decodeMessage(body: Uint8Array): Message {
  let msg: unknown;
  try {
    msg = decoder.decode(body);
  } catch (err) {
    throw new MalformedFrameError(
      `body of ${body.length} bytes is not valid CBOR: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (msg === null || typeof msg !== "object" || Array.isArray(msg) || ArrayBuffer.isView(msg)) {
    throw new MalformedFrameError(`body is not a CBOR map but ${describe(msg)}`);
  }
  const t = (msg as Record<string, unknown>).t;
  if (typeof t !== "number") {
    throw new MalformedFrameError(`message has no numeric "t" (got ${describe(t)})`);
  }
  return msg as Message;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  return typeof v === "object" ? `a ${v.constructor?.name ?? "object"}` : `a ${typeof v}`;
}

// A fresh receive buffer is at least this big: one allocation per this many received bytes.
const RECEIVE_BUFFER_BYTES_MIN = 256 * 1024;

/**
 * Turns received chunks into frame bodies, without touching a socket.
 *
 * Memory: chunks are appended to a receive buffer; a returned body is a view of that buffer and
 * the decoder never writes over it again (a body, and typed arrays decoded from it, may be kept
 * by the caller as long as it likes). When the buffer is full, a new one is allocated and only
 * the unfinished tail is moved; when the length of an incomplete frame is known, the new
 * buffer is sized for the whole frame, so a large frame is copied at most once: O(n) overall.
 * Every buffer starts at offset 0 and every frame is a multiple of 4 bytes, so every body
 * starts 4-byte aligned.
 *
 * To read from a socket without an extra copy, use {@linkcode FrameDecoder.space} and
 * {@linkcode FrameDecoder.commit}; {@linkcode FrameDecoder.push} copies a chunk in.
 */
export class FrameDecoder {
  #frame_bytes_max = FRAME_BYTES_MAX_DEFAULT;
  #buf: Uint8Array = new Uint8Array(0);
  #view: DataView = new DataView(this.#buf.buffer);
  /** Start of the first unconsumed frame in #buf. */
  #start = 0;
  /** End of the received bytes in #buf. */
  #end = 0;

  constructor(frame_bytes_max: number = FRAME_BYTES_MAX_DEFAULT) {
    this.frame_bytes_max = frame_bytes_max;
  }

  /**
   * Largest accepted body, in bytes. Settable because the handshake reads with a small limit
   * (an unauthenticated peer must not make us allocate a large buffer) and then hands the same
   * decoder, with any pipelined bytes in it, to the connection with the real limit.
   */
  get frame_bytes_max(): number {
    return this.#frame_bytes_max;
  }
  set frame_bytes_max(bytes: number) {
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > 0xffffffff) {
      throw new RangeError(`frame_bytes_max must be an integer in 1..2^32-1, got ${bytes}`);
    }
    this.#frame_bytes_max = bytes;
  }

  /** Bytes received but not yet returned as frames (a partial frame, or frames not taken). */
  get buffered_bytes(): number {
    return this.#end - this.#start;
  }

  /** Copies `chunk` in. Frames are then taken with {@linkcode FrameDecoder.next}. */
  push(chunk: Uint8Array): void {
    let from = 0;
    while (from < chunk.length) {
      const space = this.space(1);
      const n = Math.min(space.length, chunk.length - from);
      space.set(chunk.subarray(from, from + n));
      this.commit(n);
      from += n;
    }
  }

  /**
   * Returns free space of at least `bytes_min` bytes to receive into directly (then call
   * {@linkcode FrameDecoder.commit}). The space is larger when a known frame needs it.
   */
  space(bytes_min = 64 * 1024): Uint8Array {
    let needed = Math.max(bytes_min, 1);
    const pending = this.#end - this.#start;
    if (pending >= FRAME_HEADER_BYTES) {
      // The length of the incomplete frame is known: make room for all of it at once.
      const frame_bytes = this.#frameBytes(this.#start);
      needed = Math.max(needed, frame_bytes - pending);
    }
    if (this.#buf.length - this.#end < needed) {
      const size = Math.max(RECEIVE_BUFFER_BYTES_MIN, align4(pending + needed));
      const next = new Uint8Array(size);
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
      this.#start = 0;
      this.#end = pending;
    }
    return this.#buf.subarray(this.#end);
  }

  /** Records that `n` bytes were written at the start of the last {@linkcode space}. */
  commit(n: number): void {
    if (n < 0 || this.#end + n > this.#buf.length) {
      throw new RangeError(`commit(${n}) beyond the space handed out`);
    }
    this.#end += n;
  }

  /**
   * The next complete frame body, or null when more bytes are needed.
   *
   * @throws {FrameTooLargeError} when the next frame declares more than frame_bytes_max bytes;
   *   the decoder stays in that state (the stream cannot be resynchronised).
   */
  next(): Uint8Array | null {
    const pending = this.#end - this.#start;
    if (pending < FRAME_HEADER_BYTES) return null;
    const frame_bytes = this.#frameBytes(this.#start);
    if (pending < frame_bytes) return null;
    const body_start = this.#start + FRAME_HEADER_BYTES;
    const body = this.#buf.subarray(
      body_start,
      body_start + this.#view.getUint32(this.#start, true),
    );
    this.#start += frame_bytes;
    return body;
  }

  /** Full size on the wire (header + body + padding) of the frame at `at`; checks the limit. */
  #frameBytes(at: number): number {
    const body_bytes = this.#view.getUint32(at, true);
    if (body_bytes > this.#frame_bytes_max) {
      throw new FrameTooLargeError(body_bytes, this.#frame_bytes_max);
    }
    return FRAME_HEADER_BYTES + align4(body_bytes);
  }
}
