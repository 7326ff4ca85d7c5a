/**
 * A small pool of large `ArrayBuffer`s, smallest first, for memory that circulates between a
 * worker thread and its server thread: a worker's request arrays are transferred to the server
 * thread, which answers later pulls in their buffers; the worker keeps the answers' buffers for
 * its next large requests (see ARCHITECTURE.md, memory ownership). Fresh memory is what large
 * requests must not pay for every time: on first touch every page of it faults.
 *
 * @module
 */

/** Buffers smaller than this are not kept (fresh ones are cheap). */
export const POOL_BUFFER_BYTES_MIN = 64 * 1024;
/** At most this many buffers are kept... */
export const POOL_BUFFERS_MAX = 4;
/** ...and at most this many bytes. */
export const POOL_BYTES_MAX = 64 * 1024 * 1024;

/** Large buffers kept for reuse (bounded; the smallest go first when over the limits). */
export class BufferPool {
  readonly #buffers: ArrayBuffer[] = [];
  #bytes = 0;

  /** Buffers kept now. */
  get size(): number {
    return this.#buffers.length;
  }

  /** Bytes kept now. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Keeps `buf` for a later {@linkcode BufferPool.take}. Small, shared, resizable and detached
   * buffers are ignored, and so is one that is kept already (a caller that broke the ownership
   * contract must not get it handed out twice).
   */
  give(buf: ArrayBufferLike): void {
    if (!(buf instanceof ArrayBuffer) || buf.byteLength < POOL_BUFFER_BYTES_MIN) return;
    if (buf.resizable || buf.detached) return;
    const buffers = this.#buffers;
    if (buffers.includes(buf)) return;
    buffers.push(buf);
    this.#bytes += buf.byteLength;
    buffers.sort((a, b) => a.byteLength - b.byteLength);
    // Over the limits: drop the smallest (least useful) first.
    while (buffers.length > POOL_BUFFERS_MAX || this.#bytes > POOL_BYTES_MAX) {
      this.#bytes -= buffers.shift()!.byteLength;
    }
  }

  /** The smallest kept buffer of at least `bytes` bytes, taken out of the pool; else null. */
  take(bytes: number): ArrayBuffer | null {
    if (bytes < POOL_BUFFER_BYTES_MIN) return null;
    const buffers = this.#buffers;
    for (let i = 0; i < buffers.length; i++) {
      const buf = buffers[i];
      if (buf.byteLength < bytes) continue;
      buffers.splice(i, 1);
      this.#bytes -= buf.byteLength;
      return buf;
    }
    return null;
  }
}
