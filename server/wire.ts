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
 * (cbor-x, records off, decodes it). Keys and values travel as typed arrays, encoded as a tag
 * (RFC 8746) plus a byte string, exactly as cbor-x writes them, except that the payload is
 * aligned: cbor-x does not align it, so {@linkcode encodeFrame} writes the message's top-level
 * typed arrays itself (copied once, straight into the frame; cbor-x encodes the other fields)
 * and rewrites the heads in front of nested ones. It picks non-shortest but valid CBOR integer
 * widths, plus the no-op self-describe tag 55799 where needed, so that every payload of 2-, 4-
 * or 8-byte elements starts at a multiple of 4 from the start of the body. The decoder then
 * returns those arrays as views of the receive buffer instead of copies.
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
import { copyBytes } from "./rows.ts";

/** Default largest accepted frame body, in bytes (a cluster-wide setting in practice). */
export const FRAME_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/** Bytes of the length prefix in front of every frame body. */
export const FRAME_HEADER_BYTES = 4;

/** A frame declared a body longer than the receiver's limit. */
export class FrameTooLargeError extends Error {
  /** The declared body length, in bytes. */
  readonly frameBytes: number;
  /** The receiver's limit, in bytes. */
  readonly frameBytesMax: number;
  constructor(frameBytes: number, frameBytesMax: number) {
    super(
      `frame of ${frameBytes} bytes exceeds the limit of ${frameBytesMax} bytes ` +
        `(a peer speaking another protocol, or a message that should have been split)`,
    );
    this.name = "FrameTooLargeError";
    this.frameBytes = frameBytes;
    this.frameBytesMax = frameBytesMax;
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

// cbor-x grows its internal buffer to the largest message it has encoded and keeps it; after a
// body larger than this we start a fresh encoder, so that one big message does not pin its
// size in memory for the life of the process.
const SHARED_ENCODER_BYTES_MAX = 1024 * 1024;

// variableMapSize: cbor-x's default map writer always writes a 16-bit count, which is invalid
// CBOR for a map of 65,536 keys or more (the count wraps); this one writes the right width.
// The messages themselves never hold such maps (messages.ts); this keeps any other use valid.
const ENCODER_OPTIONS = { useRecords: false, variableMapSize: true };
let sharedEncoder = new Encoder(ENCODER_OPTIONS);
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// RFC 8746 tags of the little-endian typed arrays, as cbor-x writes and reads them. Top-level
// typed arrays of a message are written by encodeFrame itself (one copy, straight into the
// frame); on a big-endian machine everything goes through cbor-x instead.
const TYPED_ARRAY_TAGS = new Map<unknown, number>(
  IS_LITTLE_ENDIAN
    ? [
      [Uint8Array, 64],
      [Uint8ClampedArray, 68],
      [Uint16Array, 69],
      [Uint32Array, 70],
      [BigUint64Array, 71],
      [Int8Array, 72],
      [Int16Array, 77],
      [Int32Array, 78],
      [BigInt64Array, 79],
      [Float32Array, 85],
      [Float64Array, 86],
    ]
    : [],
);

// Alignment wanted by the payload of each tag: 4 for 2-, 4- and 8-byte elements (8-byte ones
// are best effort: the receive buffer only guarantees 4); byte arrays need none.
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

// Header layouts (self-describe tag 55799, typed-array tag, byte-string length) in bytes,
// smallest first. All are valid CBOR (non-shortest integer widths are allowed); the smallest
// one that fits the length and aligns the payload wins. A solution always exists: for big
// payloads (5-byte length) 5+3+5 = 13 reaches the residue that tag and length widths alone
// cannot.
const HEADER_LAYOUTS: [number, number, number][] = [];
for (const sd of [0, 3, 5]) {
  for (const tw of [2, 3, 5]) {
    for (const bw of [1, 2, 3, 5, 9]) HEADER_LAYOUTS.push([sd, tw, bw]);
  }
}
HEADER_LAYOUTS.sort((a, b) => a[0] + a[1] + a[2] - (b[0] + b[1] + b[2]));

/** One typed array to write into the frame, with the header layout chosen for it. */
interface TypedArraySpot {
  /** For arrays inside cbor-x's output: offset of the tag's first byte in that output. */
  start: number;
  /** For arrays inside cbor-x's output: offset of the payload's first byte. */
  payload: number;
  /** Payload length in bytes. */
  length: number;
  tag: number;
  selfDescribeBytes: number;
  tagBytes: number;
  bstrBytes: number;
}

/** A top-level typed array of the message, written by encodeFrame after cbor-x's pairs. */
interface TopLevelArray {
  key: string;
  array: ArrayBufferView;
  spot: TypedArraySpot;
}

/**
 * Encodes one message as a complete frame (length prefix, body, padding) in one fresh buffer
 * that the caller owns; the message's arrays may be reused as soon as this returns.
 *
 * Typed-array payloads start at multiples of 4 from the body start. Typed arrays that are
 * direct values of the message (the usual `k`, `v`, ...) are copied once, straight into the
 * frame; everything else is encoded by cbor-x.
 */
export function encodeFrame(msg: unknown): Uint8Array {
  const frame = new Uint8Array(planFrame(msg));
  writePlannedFrame(frame);
  return frame;
}

/**
 * Encodes one message as a complete frame into memory the caller provides: `reserve` is
 * called once with the frame's size in bytes (a multiple of 4) and returns where to write it,
 * at least that many bytes (e.g. a subarray of a pooled send buffer). Returns the size. The
 * bytes are the same as {@linkcode encodeFrame}'s, padding zeroed, so the memory need not be
 * clean. `reserve` may throw (e.g. a size limit): then nothing is written. It must not encode
 * another frame itself.
 */
export function encodeFrameInto(
  msg: unknown,
  reserve: (frameBytes: number) => Uint8Array,
): number {
  const bytes = planFrame(msg);
  const out = reserve(bytes);
  if (out.length < bytes) {
    throw new RangeError(`encodeFrameInto: reserve(${bytes}) returned ${out.length} bytes`);
  }
  writePlannedFrame(out);
  return bytes;
}

// The frame planned by planFrame and written by writePlannedFrame (module state: the two run
// back to back, synchronously, and nothing else encodes in between).
/** cbor-x's output for the message without its top-level typed arrays. */
let planBody: Uint8Array = new Uint8Array(0);
/** The message's top-level typed arrays, or null. */
let planArrays: TopLevelArray[] | null = null;
/** Typed arrays nested in cbor-x's output, to realign. */
const planNested: TypedArraySpot[] = [];
/** Map head written instead of cbor-x's (when there are top-level arrays): bytes and count. */
let planHeadBytes = 0;
let planCount = 0;
/** Where copying cbor-x's output starts (after its map head, which we replace). */
let planFrom = 0;
/** Body length in bytes (without prefix and padding). */
let planSize = 0;

/** Lays out the frame of `msg`; returns its size in bytes (prefix + body + padding). */
function planFrame(msg: unknown): number {
  // 1. Take the top-level typed arrays out; cbor-x encodes the rest.
  let arrays: TopLevelArray[] | null = null;
  let rest = msg;
  if (
    msg !== null && typeof msg === "object" && Object.getPrototypeOf(msg) === Object.prototype
  ) {
    const fields = msg as Record<string, unknown>;
    const others: Record<string, unknown> = {};
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      const tag = value == null ? undefined : TYPED_ARRAY_TAGS.get(value.constructor);
      if (tag === undefined) {
        others[key] = value;
        continue;
      }
      const array = value as ArrayBufferView;
      arrays ??= [];
      arrays.push({ key, array, spot: newSpot(0, 0, array.byteLength, tag) });
    }
    if (arrays) rest = others;
  }
  const body = encodeWithCborX(rest);

  // 2. Lay out: the map head (count grown by the arrays), cbor-x's items with nested typed
  // arrays realigned, then each top-level array as key + aligned tag + payload.
  let from = 0; // where copying of cbor-x's output starts
  let headBytes = 0; // our map head, written instead of cbor-x's
  let count = 0;
  const nested = planNested;
  nested.length = 0;
  if (arrays) {
    readHead(body, 0);
    if (headMajor !== 5 || headArg < 0) throw new Error("encodeFrame: cbor-x wrote no map");
    const pairs = headArg;
    count = pairs + arrays.length;
    headBytes = argumentBytes(count);
    from = headNext;
    let p = from;
    for (let i = 0; i < 2 * pairs; i++) p = scanItem(body, p, nested);
  } else {
    scanItem(body, 0, nested);
  }
  let size = headBytes - from; // output offset of body[i] is i + size (until realignment)
  for (const spot of nested) {
    const original = spot.payload - spot.start;
    chooseHeader(spot, spot.start + size, TYPED_ARRAY_ALIGN[spot.tag] ?? 1);
    size += spot.selfDescribeBytes + spot.tagBytes + spot.bstrBytes - original;
  }
  size += body.length;
  if (arrays) {
    for (const { key, array, spot } of arrays) {
      const keyBytes = utf8Bytes(key);
      size += argumentBytes(keyBytes) + keyBytes;
      if (isShared(array)) {
        // Copying out of shared memory is several times slower when source and destination
        // differ modulo 8 (V8 then copies byte by byte): the payload goes where it matches the
        // source, for a frame that starts at a multiple of 8 (a large frame, in a send buffer
        // of its own). Still a multiple of 4 from the body start, as for any other array.
        const residue = mod8(array.byteOffset - FRAME_HEADER_BYTES);
        if (!chooseSharedHeader(spot, size, residue)) {
          chooseHeader(spot, size, TYPED_ARRAY_ALIGN[spot.tag] ?? 1);
        }
      } else chooseHeader(spot, size, TYPED_ARRAY_ALIGN[spot.tag] ?? 1);
      size += spot.selfDescribeBytes + spot.tagBytes + spot.bstrBytes + spot.length;
    }
  }
  planBody = body;
  planArrays = arrays;
  planHeadBytes = headBytes;
  planCount = count;
  planFrom = from;
  planSize = size;
  return FRAME_HEADER_BYTES + align4(size);
}

/** Writes the frame planned last at the start of `frame`. */
function writePlannedFrame(frame: Uint8Array): void {
  const body = planBody, arrays = planArrays, nested = planNested, size = planSize;
  let from = planFrom;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setUint32(0, size, true);
  let to = FRAME_HEADER_BYTES;
  if (arrays) to = writeArgument(frame, view, to, 0xa0, planCount, planHeadBytes);
  for (const spot of nested) {
    frame.set(body.subarray(from, spot.start), to);
    to += spot.start - from;
    to = writeTypedArrayHeader(frame, view, to, spot);
    frame.set(body.subarray(spot.payload, spot.payload + spot.length), to);
    to += spot.length;
    from = spot.payload + spot.length;
  }
  frame.set(body.subarray(from), to);
  to += body.length - from;
  if (arrays) {
    for (const { key, array, spot } of arrays) {
      to = writeKey(frame, view, to, key);
      to = writeTypedArrayHeader(frame, view, to, spot);
      // Out of shared memory into a frame that did not start at a multiple of 8: see copyBytes.
      copyBytes(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), frame, to);
      to += spot.length;
    }
  }
  // Padding: zero, also in reused memory.
  const end = FRAME_HEADER_BYTES + align4(size);
  while (to < end) frame[to++] = 0;
  planBody = EMPTY_BYTES;
  planArrays = null;
  nested.length = 0;
}

const EMPTY_BYTES = new Uint8Array(0);

/** cbor-x's encoding of `value`: a view of the encoder's buffer, valid until the next call. */
function encodeWithCborX(value: unknown): Uint8Array {
  const encoder = sharedEncoder;
  const body = (encoder.encode as (v: unknown, mode: number) => Uint8Array)(
    value,
    RESET_BUFFER_MODE,
  );
  // The caller copies `body` before anything else encodes, so dropping the encoder is safe.
  if (body.length > SHARED_ENCODER_BYTES_MAX) sharedEncoder = new Encoder(ENCODER_OPTIONS);
  return body;
}

function newSpot(start: number, payload: number, length: number, tag: number): TypedArraySpot {
  return { start, payload, length, tag, selfDescribeBytes: 0, tagBytes: 2, bstrBytes: 0 };
}

/** Whether `array` is a view of shared memory. */
function isShared(array: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer === "function" && array.buffer instanceof SharedArrayBuffer;
}

function mod8(n: number): number {
  return ((n % 8) + 8) % 8;
}

// Header layouts for payloads placed modulo 8 (shared memory, see planFrame): self-describe
// bytes 6, 8 and 10 are two nested self-describe tags (3+3, 3+5, 5+5), which reach the
// residues that one cannot. No 9-byte lengths: cbor-x 1.6.8 misreads a large byte string with
// one inside a map ("Unexpected end of buffer").
const SHARED_LAYOUTS: [number, number, number][] = [];
for (const sd of [0, 3, 5, 6, 8, 10]) {
  for (const tw of [2, 3, 5]) {
    for (const bw of [1, 2, 3, 5]) SHARED_LAYOUTS.push([sd, tw, bw]);
  }
}
SHARED_LAYOUTS.sort((a, b) => a[0] + a[1] + a[2] - (b[0] + b[1] + b[2]));

/**
 * Sets the smallest layout of {@linkcode SHARED_LAYOUTS} that puts the payload at `residue`
 * modulo 8 from the body start; false (spot unchanged) if there is none.
 */
function chooseSharedHeader(spot: TypedArraySpot, outStart: number, residue: number): boolean {
  for (const [sd, tw, bw] of SHARED_LAYOUTS) {
    if (!lengthFits(spot.length, bw) || (outStart + sd + tw + bw) % 8 !== residue) continue;
    spot.selfDescribeBytes = sd;
    spot.tagBytes = tw;
    spot.bstrBytes = bw;
    return true;
  }
  return false;
}

/** Sets the smallest header layout that puts the payload at a multiple of `align`. */
function chooseHeader(spot: TypedArraySpot, outStart: number, align: number): void {
  const shortest = argumentBytes(spot.length);
  if ((outStart + 2 + shortest) % align === 0) {
    // cbor-x's own layout aligns already (the common case for byte arrays and half the rest)
    spot.selfDescribeBytes = 0;
    spot.tagBytes = 2;
    spot.bstrBytes = shortest;
    return;
  }
  for (const [sd, tw, bw] of HEADER_LAYOUTS) {
    if (!lengthFits(spot.length, bw) || (outStart + sd + tw + bw) % align !== 0) continue;
    spot.selfDescribeBytes = sd;
    spot.tagBytes = tw;
    spot.bstrBytes = bw;
    return;
  }
  throw new Error(`encodeFrame: no header layout for a ${spot.length}-byte array`);
}

/** `n` rounded up to a multiple of 4 (not with `& ~3`: lengths may exceed 2^31). */
function align4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

/** Bytes of the shortest CBOR head for argument `n`. */
function argumentBytes(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n <= 0xffffffff ? 5 : 9;
}

/** Whether a CBOR argument of `width` head bytes can carry `length`. */
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

const textEncoder = new TextEncoder();

/** UTF-8 length of a map key (keys are short; ASCII is the fast path). */
function utf8Bytes(key: string): number {
  for (let i = 0; i < key.length; i++) {
    if (key.charCodeAt(i) > 0x7f) return textEncoder.encode(key).length;
  }
  return key.length;
}

/** Writes a text-string key; returns the end. */
function writeKey(out: Uint8Array, view: DataView, at: number, key: string): number {
  const bytes = utf8Bytes(key);
  at = writeArgument(out, view, at, 0x60, bytes, argumentBytes(bytes));
  if (bytes === key.length) {
    for (let i = 0; i < key.length; i++) out[at + i] = key.charCodeAt(i);
  } else {
    out.set(textEncoder.encode(key), at);
  }
  return at + bytes;
}

/** Writes self-describe tag (optional), typed-array tag and byte-string head; returns end. */
function writeTypedArrayHeader(
  out: Uint8Array,
  view: DataView,
  at: number,
  spot: TypedArraySpot,
): number {
  const sd = spot.selfDescribeBytes;
  if (sd > 5) {
    // Two nested self-describe tags (SHARED_LAYOUTS): 3+3, 3+5 or 5+5 bytes.
    at = writeArgument(out, view, at, 0xc0, 55799, sd === 10 ? 5 : 3);
    at = writeArgument(out, view, at, 0xc0, 55799, sd === 6 ? 3 : 5);
  } else if (sd > 0) {
    at = writeArgument(out, view, at, 0xc0, 55799, sd);
  }
  at = writeArgument(out, view, at, 0xc0, spot.tag, spot.tagBytes);
  return writeArgument(out, view, at, 0x40, spot.length, spot.bstrBytes);
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
      view.setUint32(at + 1, Math.floor(value / 0x100000000));
      view.setUint32(at + 5, value >>> 0);
      return at + 9;
  }
}

// readHead's results, in module variables: scanning runs per CBOR item and must not allocate.
let headMajor = 0;
let headArg = 0;
let headNext = 0;

/** Reads the CBOR head at `pos` into headMajor, headArg (-1: indefinite) and headNext. */
function readHead(b: Uint8Array, pos: number): void {
  const initial = b[pos];
  const info = initial & 31;
  let arg: number;
  let p = pos + 1;
  if (info < 24) arg = info;
  else if (info === 24) arg = b[p++];
  else if (info === 25) {
    arg = (b[p] << 8) | b[p + 1];
    p += 2;
  } else if (info === 26) {
    arg = b[p] * 0x1000000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
    p += 4;
  } else if (info === 27) {
    // 8-byte argument: only the low 32 bits matter for lengths we can hold in memory.
    arg = b[p + 4] * 0x1000000 + ((b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7]);
    p += 8;
  } else if (info === 31) arg = -1; // indefinite length (or the break code, major 7)
  else throw new Error(`encodeFrame: unexpected CBOR byte 0x${initial.toString(16)}`);
  headMajor = initial >> 5;
  headArg = arg;
  headNext = p;
}

/**
 * Walks one CBOR item of cbor-x's output starting at `pos`, records typed arrays, and returns
 * the offset after the item. Only the structure is read; values are skipped.
 */
function scanItem(b: Uint8Array, pos: number, spots: TypedArraySpot[]): number {
  readHead(b, pos);
  const major = headMajor;
  const arg = headArg;
  let p = headNext;
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
      // A tag. A typed array that wants alignment is its tag plus a definite byte string.
      if (TYPED_ARRAY_ALIGN[arg] !== undefined && (b[p] >> 5) === 2 && (b[p] & 31) !== 31) {
        readHead(b, p);
        spots.push(newSpot(pos, headNext, headArg, arg));
        return headNext + headArg;
      }
      return scanItem(b, p, spots);
    }
  }
}

/**
 * Decodes one frame body into a message. Typed arrays (and byte strings) in it are views of
 * `body`'s buffer when aligned (see the module doc), so they are valid as long as that memory
 * is: forever for a default {@linkcode FrameDecoder}, until its next read for one that reuses
 * its buffer. Everything else in the message is a fresh value.
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

/** A fresh receive buffer is at least this big: one allocation per this many received bytes. */
export const RECEIVE_BUFFER_BYTES_MIN = 256 * 1024;

/**
 * In reuse mode, a receive buffer up to this size is kept for the next frames; a larger one
 * (grown for an exceptional frame) is given up once it holds no unfinished frame, so that one
 * huge message does not pin its size for the life of the connection.
 */
export const RECEIVE_BUFFER_BYTES_RETAIN = 32 * 1024 * 1024;

/**
 * Turns received chunks into frame bodies, without touching a socket.
 *
 * Memory: chunks are appended to a receive buffer; a returned body is a view of that buffer.
 * When the buffer is full, a new one is allocated and only the unfinished tail is moved; when
 * the length of an incomplete frame is known, the buffer is sized for the whole frame, so a
 * large frame is copied at most once: O(n) overall. Every buffer starts at offset 0 and every
 * frame is a multiple of 4 bytes, so every body starts 4-byte aligned.
 *
 * How long a body (and the typed arrays decoded from it, which alias it) stays valid depends
 * on {@linkcode FrameDecoder.reuse}:
 * - `false` (the default): forever. The decoder never writes over a returned body again; a
 *   full buffer is replaced by a fresh one. Costs an allocation per buffer's worth of bytes.
 * - `true`: only until the next {@linkcode FrameDecoder.space} or {@linkcode FrameDecoder.push}.
 *   Then the decoder may move the unfinished tail to the front of the same buffer and receive
 *   over the old bodies, so a busy connection receives into one warm buffer with no allocation
 *   and no garbage. The caller must copy out whatever it keeps (a {@linkcode Connection} does
 *   so by handing each message to a synchronous handler before reading again).
 *
 * To read from a socket without an extra copy, use {@linkcode FrameDecoder.space} and
 * {@linkcode FrameDecoder.commit}; {@linkcode FrameDecoder.push} copies a chunk in.
 */
export class FrameDecoder {
  /**
   * Reuse the receive buffer: bodies are valid only until the next `space()` or `push()` (see
   * the class doc). May be switched at any time; a switch affects bodies returned afterwards.
   */
  reuse = false;
  /**
   * Smallest receive buffer allocated (default 256 KiB). An unauthenticated connection reads
   * its handshake with a few KiB, so a stranger costs only that much; the connection raises it
   * once the peer has proven the token.
   */
  bufferBytesMin = RECEIVE_BUFFER_BYTES_MIN;
  #frameBytesMax = FRAME_BYTES_MAX_DEFAULT;
  #buf: Uint8Array = new Uint8Array(0);
  #view: DataView = new DataView(this.#buf.buffer);
  /** Start of the first unconsumed frame in #buf. */
  #start = 0;
  /** End of the received bytes in #buf. */
  #end = 0;

  constructor(
    frameBytesMax: number = FRAME_BYTES_MAX_DEFAULT,
    options: { reuse?: boolean; bufferBytesMin?: number } = {},
  ) {
    this.frameBytesMax = frameBytesMax;
    this.reuse = options.reuse ?? false;
    this.bufferBytesMin = options.bufferBytesMin ?? RECEIVE_BUFFER_BYTES_MIN;
  }

  /**
   * Largest accepted body, in bytes. Settable because the handshake reads with a small limit
   * (an unauthenticated peer must not make us allocate a large buffer) and then hands the same
   * decoder, with any pipelined bytes in it, to the connection with the real limit.
   */
  get frameBytesMax(): number {
    return this.#frameBytesMax;
  }
  set frameBytesMax(bytes: number) {
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > 0xffffffff) {
      throw new RangeError(`frameBytesMax must be an integer in 1..2^32-1, got ${bytes}`);
    }
    this.#frameBytesMax = bytes;
  }

  /** Bytes received but not yet returned as frames (a partial frame, or frames not taken). */
  get bufferedBytes(): number {
    return this.#end - this.#start;
  }

  /** Size of the current receive buffer, in bytes (tests and diagnostics). */
  get bufferBytes(): number {
    return this.#buf.length;
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
   * Returns free space of at least `bytesMin` bytes to receive into directly (then call
   * {@linkcode FrameDecoder.commit}). The space is larger when a known frame needs it. In reuse
   * mode this ends the validity of the bodies returned so far.
   */
  space(bytesMin = 64 * 1024): Uint8Array {
    let needed = Math.max(bytesMin, 1);
    const pending = this.#end - this.#start;
    if (pending >= FRAME_HEADER_BYTES) {
      // The length of the incomplete frame is known: make room for all of it at once.
      const frameBytes = this.#frameBytes(this.#start);
      needed = Math.max(needed, frameBytes - pending);
    }
    if (this.reuse) {
      if (pending === 0) {
        // Everything was taken: receive at the front again (the common case, and no copy).
        this.#start = this.#end = 0;
        if (this.#buf.length > RECEIVE_BUFFER_BYTES_RETAIN && needed <= this.bufferBytesMin) {
          this.#replace(this.bufferBytesMin, 0);
        }
      }
      if (this.#buf.length - this.#end >= needed) return this.#buf.subarray(this.#end);
      if (this.#buf.length >= pending + needed) {
        // Move the unfinished frame to the front of the same buffer.
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#start = 0;
        this.#end = pending;
        return this.#buf.subarray(this.#end);
      }
    } else if (this.#buf.length - this.#end >= needed) {
      return this.#buf.subarray(this.#end);
    }
    this.#replace(Math.max(this.bufferBytesMin, align4(pending + needed)), pending);
    return this.#buf.subarray(this.#end);
  }

  /** Moves the `pending` unconsumed bytes into a fresh buffer of `size` bytes. */
  #replace(size: number, pending: number): void {
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(this.#start, this.#start + pending));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
    this.#start = 0;
    this.#end = pending;
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
   * @throws {FrameTooLargeError} when the next frame declares more than frameBytesMax bytes;
   *   the decoder stays in that state (the stream cannot be resynchronised).
   */
  next(): Uint8Array | null {
    const pending = this.#end - this.#start;
    if (pending < FRAME_HEADER_BYTES) return null;
    const frameBytes = this.#frameBytes(this.#start);
    if (pending < frameBytes) return null;
    const bodyStart = this.#start + FRAME_HEADER_BYTES;
    const body = this.#buf.subarray(
      bodyStart,
      bodyStart + this.#view.getUint32(this.#start, true),
    );
    this.#start += frameBytes;
    return body;
  }

  /** Full size on the wire (header + body + padding) of the frame at `at`; checks the limit. */
  #frameBytes(at: number): number {
    const bodyBytes = this.#view.getUint32(at, true);
    if (bodyBytes > this.#frameBytesMax) {
      throw new FrameTooLargeError(bodyBytes, this.#frameBytesMax);
    }
    return FRAME_HEADER_BYTES + align4(bodyBytes);
  }
}
