/**
 * The handshake every connection starts with: both sides prove that they know the cluster token
 * without sending it (HMAC-SHA256 challenge-response, WebCrypto), and the dialer says who it is.
 *
 * ```text
 * dialer                                   acceptor
 *   HELLO     { v, nonce_d, role, id? }  ->
 *                                        <-  CHALLENGE { nonce_a }
 *   PROOF     { mac_d }                  ->
 *                                        <-  ACCEPT { mac_a, role?, id? }  |  REJECT { code, reason }
 * ```
 *
 * - `mac_d = HMAC(token, "lapse-handshake-v1|dial|" + who(dialer) + "|" + nonce_d + nonce_a)`
 * - `mac_a = HMAC(token, "lapse-handshake-v1|accept|" + who(acceptor) + "|" + who(dialer) + "|"
 *   + nonce_d + nonce_a)`
 *
 * Both nonces are fresh random 32 bytes, so a recorded proof never verifies again (replay);
 * the labels differ, so a proof taken from one side can never pass as the other's (reflection).
 * The dialer proves first, so a stranger that connects to a node learns nothing computed from
 * the token. A wrong token is answered with an explicit REJECT frame before the socket is
 * closed, so the dialer reports "node X rejected our cluster token" instead of a bare EOF.
 *
 * Handshake frames use the framing of `wire.ts` with a small size limit; the acceptor sends
 * ACCEPT and may then pipeline data, so bytes received after the last handshake frame stay in
 * the returned {@linkcode FrameDecoder}, which the {@linkcode Connection} must take over.
 *
 * @module
 */

import {
  decodeMessage,
  encodeFrame,
  FRAME_BYTES_MAX_DEFAULT,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
  MalformedFrameError,
  type Message,
  RECEIVE_BUFFER_BYTES_MIN,
} from "./wire.ts";

/** Who is on the other end of a connection: a node of the cluster (by id) or the driver. */
export type Who = { role: "node"; id: number } | { role: "driver" };

/**
 * Message types (`t`) of the handshake. Values 240..255 are reserved for the wire layer; job
 * and relocation messages must use other numbers.
 */
export const HandshakeType = {
  hello: 240,
  challenge: 241,
  proof: 242,
  accept: 243,
  /** Also valid after the handshake: "I refuse this connection", with `code` and `reason`. */
  reject: 244,
} as const;

/** Protocol version in HELLO; a mismatch is rejected with a clear reason. */
export const HANDSHAKE_VERSION = 1;

/** Why a handshake failed, for callers that word their own error (see `peers.ts`). */
export type HandshakeErrorKind =
  /** We checked the peer's proof and it does not match our token. */
  | "wrong_token"
  /** The peer checked our proof and rejected it (it has another token). */
  | "rejected"
  /** The peer refused us for another reason (version, identity); see the message. */
  | "refused"
  /** No answer within the timeout. */
  | "timeout"
  /** The peer closed the connection during the handshake. */
  | "closed"
  /** The peer sent something that is not the lapse handshake. */
  | "protocol";

/** A failed handshake; the connection has been closed. */
export class HandshakeError extends Error {
  readonly kind: HandshakeErrorKind;
  constructor(kind: HandshakeErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandshakeError";
    this.kind = kind;
  }
}

/** The result of a handshake: the peer's identity and the decoder holding any extra bytes. */
export interface HandshakeResult {
  /** For the acceptor: the dialer. For the dialer: what the acceptor said it is (or null). */
  peer: Who | null;
  /** Holds bytes the peer sent after its last handshake frame; give it to the Connection. */
  decoder: FrameDecoder;
}

/** Options of {@linkcode handshakeAccept}. */
export interface AcceptOptions {
  /** Our identity, sent (and covered by our MAC) so that a dialer can check it reached the
   * node it meant to. */
  self?: Who;
  /** Limit for frames after the handshake (set on the returned decoder). */
  frameBytesMax?: number;
  /**
   * Called with the dialer's proven identity before ACCEPT; returning a string refuses the
   * connection with that reason (sent to the dialer), e.g. "node 2 is already connected".
   */
  admit?: (dialer: Who) => string | null;
  /**
   * Awaited before a wrong proof is answered with REJECT: the caller slows down token guessing
   * (e.g. a delay that grows with the failures of that address).
   */
  beforeReject?: () => Promise<void>;
}

/** Options of {@linkcode handshakeDial}. */
export interface DialOptions {
  /** Limit for frames after the handshake (set on the returned decoder). */
  frameBytesMax?: number;
}

/**
 * Handshake frames are tiny; a stranger must not make us allocate a large buffer: until it has
 * proven the token, a connection's receive buffer holds one such frame.
 */
export const HANDSHAKE_FRAME_BYTES_MAX = 4096;
const NONCE_BYTES = 32;
const encoder = new TextEncoder();

/**
 * Dials side of the handshake on a fresh connection. On success the connection is ready for
 * frames; on failure it is closed and a {@linkcode HandshakeError} is thrown.
 *
 * @param who what we are (a node with its id, or the driver)
 */
export async function handshakeDial(
  conn: Deno.Conn,
  token: string,
  who: Who,
  timeoutMs: number,
  options: DialOptions = {},
): Promise<HandshakeResult> {
  const io = new HandshakeIo(conn, timeoutMs);
  try {
    const key = await hmacKey(token);
    const nonce_d = randomNonce();
    await io.send({ t: HandshakeType.hello, v: HANDSHAKE_VERSION, nonce: nonce_d, ...who });
    const challenge = await io.receive(HandshakeType.challenge);
    const nonce_a = nonceOf(challenge, io.peer);
    const mac_d = await sign(key, ["dial", whoLabel(who)], nonce_d, nonce_a);
    await io.send({ t: HandshakeType.proof, mac: mac_d });
    const answer = await io.receive(HandshakeType.accept);
    const acceptor = answer.role === undefined ? null : parseWho(answer, io.peer);
    const mac_a = answer.mac;
    const ok = mac_a instanceof Uint8Array &&
      await verify(
        key,
        ["accept", acceptor ? whoLabel(acceptor) : "", whoLabel(who)],
        nonce_d,
        nonce_a,
        mac_a,
      );
    if (!ok) {
      await io.reject("wrong_token", "wrong cluster token");
      throw new HandshakeError(
        "wrong_token",
        `wrong cluster token: ${io.peer} accepted us but could not prove that it knows our ` +
          `cluster token (is it a node of another cluster?)`,
      );
    }
    return io.finish(options.frameBytesMax, acceptor);
  } catch (err) {
    throw io.fail(err);
  }
}

/**
 * Accepting side of the handshake on a fresh connection. Resolves with the dialer's identity
 * once it has proven that it knows the token; on failure, sends REJECT where that helps the
 * dialer, closes the connection and throws a {@linkcode HandshakeError}.
 */
export async function handshakeAccept(
  conn: Deno.Conn,
  token: string,
  timeoutMs: number,
  options: AcceptOptions = {},
): Promise<HandshakeResult & { peer: Who }> {
  const io = new HandshakeIo(conn, timeoutMs);
  try {
    const key = await hmacKey(token);
    const hello = await io.receive(HandshakeType.hello);
    if (hello.v !== HANDSHAKE_VERSION) {
      const reason = `handshake version ${hello.v} is not supported (this node speaks ` +
        `${HANDSHAKE_VERSION}): run the same lapse version on every node`;
      await io.reject("version", reason);
      throw new HandshakeError("refused", `${io.peer}: ${reason}`);
    }
    const dialer = parseWho(hello, io.peer);
    const nonce_d = nonceOf(hello, io.peer);
    const nonce_a = randomNonce();
    await io.send({ t: HandshakeType.challenge, nonce: nonce_a });
    const proof = await io.receive(HandshakeType.proof);
    const ok = proof.mac instanceof Uint8Array &&
      await verify(key, ["dial", whoLabel(dialer)], nonce_d, nonce_a, proof.mac);
    if (!ok) {
      await options.beforeReject?.();
      await io.reject("wrong_token", "wrong cluster token");
      throw new HandshakeError(
        "wrong_token",
        `wrong cluster token from ${io.peer} (says it is ${describeWho(dialer)}): ` +
          `its proof does not match our cluster token`,
      );
    }
    const refusal = options.admit?.(dialer) ?? null;
    if (refusal !== null) {
      await io.reject("refused", refusal);
      throw new HandshakeError(
        "refused",
        `refused ${describeWho(dialer)} at ${io.peer}: ${refusal}`,
      );
    }
    const self = options.self;
    const mac_a = await sign(
      key,
      ["accept", self ? whoLabel(self) : "", whoLabel(dialer)],
      nonce_d,
      nonce_a,
    );
    await io.send({ t: HandshakeType.accept, mac: mac_a, ...self });
    const result = io.finish(options.frameBytesMax, dialer);
    return { peer: dialer, decoder: result.decoder };
  } catch (err) {
    throw io.fail(err);
  }
}

/** "node 3" or "the driver", for messages. */
export function describeWho(who: Who): string {
  return who.role === "node" ? `node ${who.id}` : "the driver";
}

/** Frame I/O of one handshake, under one deadline. */
class HandshakeIo {
  readonly peer: string;
  readonly #conn: Deno.Conn;
  readonly #decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX, {
    bufferBytesMin: FRAME_HEADER_BYTES + HANDSHAKE_FRAME_BYTES_MAX,
  });
  readonly #timeoutMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timed_out = false;

  constructor(conn: Deno.Conn, timeoutMs: number) {
    this.#conn = conn;
    this.#timeoutMs = timeoutMs;
    this.peer = addressOf(conn.remoteAddr);
    // Set here, not only in Connection: the handshake is two round trips of small frames, and
    // with Nagle a frame pipelined right after ACCEPT waits for a delayed ACK (~40 ms).
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    // Closing the socket is the only way to cancel a pending read; the read then fails and
    // fail() turns that into a timeout error.
    this.#timer = setTimeout(() => {
      this.#timed_out = true;
      this.#close();
    }, timeoutMs);
  }

  async send(msg: Message): Promise<void> {
    await writeAll(this.#conn, encodeFrame(msg));
  }

  /** Reads the next frame and checks its type (a REJECT becomes a HandshakeError). */
  async receive(t: number): Promise<Message> {
    let body = this.#decoder.next();
    while (body === null) {
      const space = this.#decoder.space(FRAME_HEADER_BYTES);
      const n = await this.#conn.read(space);
      if (n === null) {
        throw new HandshakeError(
          "closed",
          `${this.peer} closed the connection during the handshake`,
        );
      }
      this.#decoder.commit(n);
      body = this.#decoder.next();
    }
    const msg = decodeMessage(body);
    if (msg.t === HandshakeType.reject) {
      const reason = String(msg.reason ?? "no reason given");
      if (msg.code === "wrong_token") {
        throw new HandshakeError(
          "rejected",
          `wrong cluster token: ${this.peer} rejected our cluster token`,
        );
      }
      throw new HandshakeError("refused", `${this.peer} refused the connection: ${reason}`);
    }
    if (msg.t !== t) {
      throw new HandshakeError(
        "protocol",
        `${this.peer} is not speaking the lapse handshake: expected message type ${t}, got ${msg.t}`,
      );
    }
    return msg;
  }

  /** Best effort: tell the peer why before we close (it may already be gone). */
  async reject(code: string, reason: string): Promise<void> {
    try {
      await this.send({ t: HandshakeType.reject, code, reason });
    } catch {
      // The peer is gone; the error we throw next says what went wrong.
    }
  }

  finish(frameBytesMax: number | undefined, peer: Who | null): HandshakeResult {
    clearTimeout(this.#timer);
    this.#decoder.frameBytesMax = frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT;
    // Authenticated now: receive buffers of the normal size.
    this.#decoder.bufferBytesMin = RECEIVE_BUFFER_BYTES_MIN;
    return { peer, decoder: this.#decoder };
  }

  /** Closes the connection and returns the error to throw. */
  fail(err: unknown): HandshakeError {
    clearTimeout(this.#timer);
    this.#close();
    if (this.#timed_out) {
      return new HandshakeError(
        "timeout",
        `handshake with ${this.peer} timed out after ${this.#timeoutMs} ms`,
        { cause: err },
      );
    }
    if (err instanceof HandshakeError) return err;
    if (err instanceof FrameTooLargeError || err instanceof MalformedFrameError) {
      return new HandshakeError(
        "protocol",
        `${this.peer} is not speaking the lapse handshake: ${err.message}`,
        { cause: err },
      );
    }
    if (err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe) {
      return new HandshakeError(
        "closed",
        `${this.peer} closed the connection during the handshake`,
        { cause: err },
      );
    }
    return new HandshakeError(
      "protocol",
      `handshake with ${this.peer} failed: ${(err as Error)?.message ?? err}`,
      { cause: err },
    );
  }

  #close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Writes all of `bytes` (a write may be partial). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

/** "host:port" of a socket address (IPv6 in brackets). */
export function addressOf(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }
  return String((addr as { path?: string }).path ?? addr.transport);
}

function randomNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

function nonceOf(msg: Message, peer: string): Uint8Array {
  const nonce = msg.nonce;
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) {
    throw new HandshakeError("protocol", `${peer} sent no valid ${NONCE_BYTES}-byte nonce`);
  }
  return nonce;
}

function parseWho(msg: Message, peer: string): Who {
  if (msg.role === "driver") return { role: "driver" };
  if (msg.role === "node" && Number.isInteger(msg.id) && (msg.id as number) >= 0) {
    return { role: "node", id: msg.id as number };
  }
  throw new HandshakeError(
    "protocol",
    `${peer} sent an invalid identity (role ${JSON.stringify(msg.role)}, id ${msg.id})`,
  );
}

function whoLabel(who: Who): string {
  return who.role === "node" ? `node:${who.id}` : "driver";
}

function hmacKey(token: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(token),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

function macInput(parts: string[], nonce_d: Uint8Array, nonce_a: Uint8Array): Uint8Array {
  const label = encoder.encode(`lapse-handshake-v${HANDSHAKE_VERSION}|${parts.join("|")}|`);
  const input = new Uint8Array(label.length + nonce_d.length + nonce_a.length);
  input.set(label, 0);
  input.set(nonce_d, label.length);
  input.set(nonce_a, label.length + nonce_d.length);
  return input;
}

async function sign(
  key: CryptoKey,
  parts: string[],
  nonce_d: Uint8Array,
  nonce_a: Uint8Array,
): Promise<Uint8Array> {
  const input = macInput(parts, nonce_d, nonce_a);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, input as Uint8Array<ArrayBuffer>));
}

/** Constant-time check of a MAC (crypto.subtle.verify). */
function verify(
  key: CryptoKey,
  parts: string[],
  nonce_d: Uint8Array,
  nonce_a: Uint8Array,
  mac: Uint8Array,
): Promise<boolean> {
  const input = macInput(parts, nonce_d, nonce_a);
  // A decoded byte string may be a view of a larger buffer; WebCrypto wants its own bytes.
  return crypto.subtle.verify(
    "HMAC",
    key,
    mac.slice() as Uint8Array<ArrayBuffer>,
    input as Uint8Array<ArrayBuffer>,
  );
}
