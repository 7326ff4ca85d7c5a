/**
 * The wire format of the `manual` mf baseline (cli/bench/manual_mf_worker.ts): length-prefixed
 * binary frames between two manual workers over raw TCP, nothing else. No CBOR, no PS: a
 * 24-byte header, then the payload's raw bytes (an H block: Float32 values in this machine's
 * byte order, little-endian on every platform Deno runs on).
 *
 *     u32 magic (FRAME_MAGIC)  u32 kind  u32 block  u32 epoch  u32 step  u32 payload_bytes
 *
 * `kind` is {@linkcode FrameKind.HELLO} (the first frame on a connection: `block` is the
 * sender's worker number, the payload the run's token) or {@linkcode FrameKind.BLOCK} (column
 * block `block` of H for step `step` of epoch `epoch`). Payloads are read straight into the
 * receiver's block buffer: no copy, no allocation per frame.
 *
 * @module
 */

/** "LMF1" as a little-endian u32: the first bytes of every frame. */
export const FRAME_MAGIC = 0x31464d4c;
/** Bytes of a frame header. */
export const FRAME_HEADER_BYTES = 24;
/** No frame carries more than this (1 GiB): a larger length means a broken stream. */
export const FRAME_PAYLOAD_BYTES_MAX = 1 << 30;

/** Frame kinds. */
export const FrameKind = {
  /** First frame on a connection: block = the sender's worker number, payload = the token. */
  HELLO: 1,
  /** An H column block: payload = its rows x rank Float32 values. */
  BLOCK: 2,
} as const;

/** A decoded frame header. */
export interface FrameHeader {
  kind: number;
  block: number;
  epoch: number;
  step: number;
  payloadBytes: number;
}

/** A broken stream: a bad header or a connection that ended inside a frame. */
export class FrameError extends Error {
  override name = "FrameError";
}

/** Writes `h` into `out` (at least {@linkcode FRAME_HEADER_BYTES} bytes). */
export function encodeFrameHeader(h: FrameHeader, out: Uint8Array): void {
  const v = new DataView(out.buffer, out.byteOffset, FRAME_HEADER_BYTES);
  v.setUint32(0, FRAME_MAGIC, true);
  v.setUint32(4, h.kind, true);
  v.setUint32(8, h.block, true);
  v.setUint32(12, h.epoch, true);
  v.setUint32(16, h.step, true);
  v.setUint32(20, h.payloadBytes, true);
}

/**
 * Decodes and checks a header; throws a {@linkcode FrameError} naming `from` for a wrong
 * magic, an unknown kind or an impossible length.
 */
export function decodeFrameHeader(buf: Uint8Array, from: string): FrameHeader {
  const v = new DataView(buf.buffer, buf.byteOffset, FRAME_HEADER_BYTES);
  const magic = v.getUint32(0, true);
  if (magic !== FRAME_MAGIC) {
    throw new FrameError(
      `bad frame from ${from}: magic 0x${magic.toString(16).padStart(8, "0")}, expected ` +
        `0x${FRAME_MAGIC.toString(16)} (not a manual mf worker, or the stream lost its framing)`,
    );
  }
  const h: FrameHeader = {
    kind: v.getUint32(4, true),
    block: v.getUint32(8, true),
    epoch: v.getUint32(12, true),
    step: v.getUint32(16, true),
    payloadBytes: v.getUint32(20, true),
  };
  if (h.kind !== FrameKind.HELLO && h.kind !== FrameKind.BLOCK) {
    throw new FrameError(`bad frame from ${from}: unknown kind ${h.kind}`);
  }
  if (h.payloadBytes > FRAME_PAYLOAD_BYTES_MAX || h.payloadBytes % 4 !== 0) {
    throw new FrameError(
      `bad frame from ${from}: payload of ${h.payloadBytes} bytes (at most ` +
        `${FRAME_PAYLOAD_BYTES_MAX} and a multiple of 4)`,
    );
  }
  return h;
}

/** What a frame reader reads from: a `Deno.Conn` or anything with its `read`. */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

/**
 * Reads frames from one connection. Reads never go past the current frame, so there is no
 * buffering: the header into its own 24 bytes, the payload straight into the caller's buffer.
 */
export class FrameReader {
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);

  /** `from` names the peer in error messages (e.g. `worker 1`). */
  constructor(private readonly src: ByteSource, private readonly from: string) {}

  /**
   * The next frame's header, or null when the stream ended cleanly between two frames.
   * Throws a {@linkcode FrameError} for a bad header or a stream that ended inside one.
   */
  async readHeader(): Promise<FrameHeader | null> {
    const got = await this.#fill(this.#header);
    if (got === 0) return null;
    if (got < FRAME_HEADER_BYTES) {
      throw new FrameError(
        `short read from ${this.from}: the connection ended after ${got} of the ` +
          `${FRAME_HEADER_BYTES} bytes of a frame header`,
      );
    }
    return decodeFrameHeader(this.#header, this.from);
  }

  /** Reads the payload of `h` into `dst` (exactly `h.payloadBytes` bytes long). */
  async readPayload(h: FrameHeader, dst: Uint8Array): Promise<void> {
    if (dst.length !== h.payloadBytes) {
      throw new FrameError(
        `bad frame from ${this.from}: ${h.payloadBytes} payload bytes for block ${h.block}, ` +
          `expected ${dst.length}`,
      );
    }
    const got = await this.#fill(dst);
    if (got < dst.length) {
      throw new FrameError(
        `short read from ${this.from}: the connection ended after ${got} of the ` +
          `${dst.length} payload bytes of block ${h.block} (epoch ${h.epoch}, step ${h.step})`,
      );
    }
  }

  /** Reads until `buf` is full or the stream ends; returns the bytes read. */
  async #fill(buf: Uint8Array): Promise<number> {
    let got = 0;
    while (got < buf.length) {
      const n = await this.src.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    return got;
  }
}

/**
 * Writes all of `buf` (a write may be partial). Not server/handshake.ts's: that module loads
 * the PS's CBOR wire format, which this baseline is without.
 */
export async function writeAll(dst: Deno.Conn, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) off += await dst.write(buf.subarray(off));
}

/**
 * Writes one frame: the header, then `payload` as it is (no copy). Returns the bytes written.
 * One writer per connection at a time (the caller awaits the previous frame).
 */
export async function writeFrame(
  dst: Deno.Conn,
  header: Uint8Array,
  h: FrameHeader,
  payload: Uint8Array,
): Promise<number> {
  if (payload.length !== h.payloadBytes) {
    throw new RangeError(
      `writeFrame: payload of ${payload.length} bytes, header says ${h.payloadBytes}`,
    );
  }
  encodeFrameHeader(h, header);
  await writeAll(dst, header.subarray(0, FRAME_HEADER_BYTES));
  await writeAll(dst, payload);
  return FRAME_HEADER_BYTES + payload.length;
}
