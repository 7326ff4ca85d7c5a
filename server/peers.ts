/**
 * The full mesh of one node: one authenticated connection to every other node, plus the
 * listener that keeps accepting drivers (and the higher-numbered nodes) for the node's life.
 *
 * Who dials whom: node `i` dials every node `j < i` and waits for every `j > i` to dial it, so
 * each pair has exactly one connection (TCP keeps it FIFO, which the relocation protocol needs).
 *
 * Ports: `listen()` returns the address actually bound, so a cluster (or a test) can listen on
 * port 0 and fill in `addresses` before `connectAll()`; a real cluster passes fixed ports.
 *
 * @module
 */

import { Connection, type ConnectionOptions } from "./connection.ts";
import {
  addressOf,
  describeWho,
  handshakeAccept,
  handshakeDial,
  HandshakeError,
  type Who,
} from "./handshake.ts";
import { FRAME_BYTES_MAX_DEFAULT, type Message } from "./wire.ts";
import { userError } from "../core/errors.ts";
import { formatHostPort, type HostPort, parseAddress } from "../core/host_port.ts";

/** Options of {@linkcode Peers}. */
export interface PeersOptions {
  /** This node's id, 0-based. */
  self: number;
  /** "host:port" of every node, by id (may be set later, before connectAll()). */
  addresses: string[];
  /** The cluster token (never sent; see handshake.ts). */
  token: string;
  /** Where to listen; port 0 picks a free port (see listen()). */
  listen: HostPort;
  /** How long connectAll() waits for the whole mesh. */
  connect_timeout_ms: number;
  /** Largest frame body accepted and sent, in bytes. */
  frame_bytes_max?: number;
  /** Largest number of bytes queued for sending per connection. */
  queue_bytes_max?: number;
  /** Limit for one handshake (default: 10 s, at most connect_timeout_ms). */
  handshake_timeout_ms?: number;
  /**
   * Every message from another node, in per-node FIFO order. A throw (or a rejected Promise) is
   * logged with the message type and the connection stays open.
   */
  onNodeMessage: (from: number, msg: Message) => unknown;
  /**
   * A driver connected and proved the token. Set `conn.onMessage` (and `onClose`) synchronously;
   * Peers starts the connection's read loop right after this returns.
   */
  onDriver: (conn: Connection) => void;
  /** The connection to a node closed while we were not closing (the node died or left). */
  onNodeClose?: (node: number, reason: string) => void;
  /** Log lines (default: stderr, prefixed with "lapse node <self>: "). */
  log?: (line: string) => void;
  /** Names message types in log lines. */
  messageName?: (t: number) => string;
}

/** Counters summed over the node connections (closed ones included). */
export interface PeerStats {
  messages_sent: number;
  bytes_sent: number;
  messages_received: number;
  bytes_received: number;
  /** Socket writes; far fewer than messages_sent when coalescing works. */
  writes: number;
}

// Backoff between dial attempts: first retry soon (the peer is probably starting), then
// at most once a second.
export const DIAL_BACKOFF_MS_MIN = 50;
export const DIAL_BACKOFF_MS_MAX = 1000;
const HANDSHAKE_TIMEOUT_MS_DEFAULT = 10_000;

/** The node's connections to all other nodes and the listener for drivers. */
export class Peers {
  /** This node's id. */
  readonly self: number;
  /** "host:port" of every node by id; read by connectAll() and for log lines. */
  addresses: string[];

  readonly #options: PeersOptions;
  readonly #frame_bytes_max: number;
  readonly #handshake_timeout_ms: number;
  readonly #log: (line: string) => void;
  readonly #nodes: (Connection | undefined)[] = [];
  readonly #drivers = new Set<Connection>();
  /** Accepted sockets still in their handshake (closed by close()). */
  readonly #handshaking = new Set<Deno.Conn>();
  /** Background tasks (accept loop, handshakes) that close() waits for. */
  readonly #tasks = new Set<Promise<void>>();
  /** Called whenever a node connection is registered. */
  readonly #registered = new Set<() => void>();
  /** Counters of node connections that are closed already. */
  readonly #retired: PeerStats = {
    messages_sent: 0,
    bytes_sent: 0,
    messages_received: 0,
    bytes_received: 0,
    writes: 0,
  };
  #listener: Deno.TcpListener | null = null;
  #connect_abort: AbortController | null = null;
  /** Why the last incoming handshake failed (for connectAll()'s timeout message). */
  #lastRefusal: string | null = null;
  #closing = false;

  constructor(options: PeersOptions) {
    if (!Number.isInteger(options.self) || options.self < 0) {
      throw new RangeError(`self must be a node id >= 0, got ${options.self}`);
    }
    this.#options = options;
    this.self = options.self;
    this.addresses = options.addresses;
    this.#frame_bytes_max = options.frame_bytes_max ?? FRAME_BYTES_MAX_DEFAULT;
    this.#handshake_timeout_ms = options.handshake_timeout_ms ??
      Math.min(HANDSHAKE_TIMEOUT_MS_DEFAULT, options.connect_timeout_ms);
    const log = options.log ??
      ((line: string) => console.error(`lapse node ${this.self}: ${line}`));
    this.#log = log;
  }

  /** The address the listener is bound to (after listen()). */
  get listen_address(): HostPort | null {
    const addr = this.#listener?.addr;
    return addr ? { host: addr.hostname, port: addr.port } : null;
  }

  /**
   * Opens the listener and accepts connections until close(): nodes with a higher id, and
   * drivers at any time. Returns the address actually bound (its port when asked for port 0).
   *
   * @throws {Error} "cannot listen on host:port: address already in use (...)" and the like.
   */
  listen(): HostPort {
    if (this.#listener) throw new Error("listen() was called twice");
    const { host: hostname, port } = this.#options.listen;
    const where = formatHostPort(this.#options.listen);
    try {
      this.#listener = Deno.listen({ hostname, port, transport: "tcp" });
    } catch (err) {
      if (err instanceof Deno.errors.AddrInUse) {
        throw userError(
          `cannot listen on ${where}: address already in use ` +
            `(is another lapse node running? pick another --listen port)`,
        );
      }
      throw userError(`cannot listen on ${where}: ${(err as Error).message}`, { cause: err });
    }
    this.#track(this.#acceptLoop(this.#listener));
    return this.listen_address!;
  }

  /**
   * Connects the mesh: dials every lower node (retrying with backoff) and waits for every
   * higher node to dial in, all within connect_timeout_ms.
   *
   * @throws {Error} naming the nodes that did not answer in time, or the node that rejected our
   *   cluster token, or the address that answered as another node.
   */
  async connectAll(): Promise<void> {
    const n = this.addresses.length;
    if (this.self >= n) {
      throw new RangeError(`node ${this.self} is not in the address list of ${n} nodes`);
    }
    for (let j = 0; j < n; j++) parseAddress(this.addresses[j]); // fail early on a typo
    if (this.self < n - 1 && !this.#listener) {
      throw new Error("call listen() before connectAll(): higher nodes dial this one");
    }
    const timeout_ms = this.#options.connect_timeout_ms;
    const deadline = Date.now() + timeout_ms;
    const abort = new AbortController();
    this.#connect_abort = abort;
    const last_errors = new Map<number, string>();
    let fatal: Error | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const dials: Promise<void>[] = [];
    for (let j = 0; j < this.self; j++) {
      dials.push(
        this.#dialLoop(j, deadline, abort.signal, last_errors).catch((err) => {
          fatal ??= err as Error;
          abort.abort(); // wakes the wait below
        }),
      );
    }
    const missing = () => {
      const ids: number[] = [];
      for (let j = 0; j < n; j++) if (j !== this.self && !this.#nodes[j]) ids.push(j);
      return ids;
    };
    try {
      await new Promise<void>((resolve) => {
        // Wakes on: a fatal dial error, close(), the deadline, or the last node arriving.
        abort.signal.addEventListener("abort", () => resolve(), { once: true });
        const check = () => {
          if (missing().length === 0) resolve();
        };
        this.#registered.add(check);
        timer = setTimeout(() => {
          abort.abort();
          resolve();
        }, timeout_ms);
        check();
      });
    } finally {
      clearTimeout(timer);
      this.#registered.clear();
      abort.abort(); // stop dial loops that are still retrying
      await Promise.all(dials);
      this.#connect_abort = null;
    }
    if (fatal) throw fatal;
    if (this.#closing) throw new Error("connectAll() interrupted: the node is closing");
    const ids = missing();
    if (ids.length > 0) {
      const list = ids.map((j) => `${j} (${this.addresses[j]})`).join(", ");
      const details = ids.filter((j) => last_errors.has(j))
        .map((j) => `node ${j}: ${last_errors.get(j)}`).join("; ");
      const refused = this.#lastRefusal === null
        ? ""
        : `; last refused connection: ${this.#lastRefusal}`;
      throw userError(
        `${ids.length === 1 ? "node" : "nodes"} ${list} did not answer within ${timeout_ms} ms` +
          (details ? ` (last error: ${details})` : "") + refused,
      );
    }
  }

  /**
   * Sends a message to another node.
   *
   * @throws {RangeError} for our own id or an unknown id; {@linkcode Connection.send}'s errors.
   * @throws {Error} when there is no open connection to that node.
   */
  send(node: number, msg: Message): void {
    this.#connectionTo(node).send(msg);
  }

  /** Sends a frame made once by `encodeFrame` (broadcasts); see {@linkcode Connection.sendFrame}. */
  sendFrame(node: number, frame: Uint8Array): void {
    this.#connectionTo(node).sendFrame(frame);
  }

  /** The connection to a node, if open. */
  connection(node: number): Connection | undefined {
    return this.#nodes[node];
  }

  /** True if there is an open connection to `node` (always true for this node itself). */
  isConnected(node: number): boolean {
    if (node === this.#options.self) return true;
    const c = this.#nodes[node];
    return c !== undefined && !c.is_closed;
  }

  /** Counters summed over node connections (drivers excluded), closed ones included. */
  stats(): PeerStats {
    const sum = { ...this.#retired };
    for (const c of this.#nodes) {
      if (!c) continue;
      sum.messages_sent += c.messages_sent;
      sum.bytes_sent += c.bytes_sent;
      sum.messages_received += c.messages_received;
      sum.bytes_received += c.bytes_received;
      sum.writes += c.writes;
    }
    return sum;
  }

  /** Stops listening, closes every connection (flushing queued frames), waits for all. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#connect_abort?.abort();
    try {
      this.#listener?.close();
    } catch {
      // Already closed.
    }
    for (const conn of this.#handshaking) {
      try {
        conn.close();
      } catch {
        // The handshake closed it meanwhile.
      }
    }
    const closing: Promise<void>[] = [];
    for (const c of this.#nodes) if (c) closing.push(c.close());
    for (const c of this.#drivers) closing.push(c.close());
    await Promise.all(closing);
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  #connectionTo(node: number): Connection {
    if (node === this.self || !Number.isInteger(node) || node < 0) {
      throw new RangeError(`node ${this.self} cannot send to node ${node}`);
    }
    const c = this.#nodes[node];
    if (!c) {
      throw new Error(
        `node ${this.self} has no connection to node ${node} (${this.addresses[node] ?? "?"})`,
      );
    }
    return c;
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (this.#closing) return;
        if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) {
          return; // listener closed
        }
        // E.g. out of file descriptors: say so and keep serving the connections we have.
        this.#log(`accepting a connection failed: ${(err as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (this.#closing) {
        conn.close();
        return;
      }
      this.#track(this.#acceptOne(conn));
    }
  }

  async #acceptOne(conn: Deno.TcpConn): Promise<void> {
    const remote = addressOf(conn.remoteAddr);
    this.#handshaking.add(conn);
    let result;
    try {
      result = await handshakeAccept(conn, this.#options.token, this.#handshake_timeout_ms, {
        self: { role: "node", id: this.self },
        frame_bytes_max: this.#frame_bytes_max,
        admit: (who) => this.#admit(who),
      });
    } catch (err) {
      if (!this.#closing) {
        this.#lastRefusal = `${remote}: ${(err as Error).message}`;
        this.#log(`refused a connection from ${remote}: ${(err as Error).message}`);
      }
      return;
    } finally {
      this.#handshaking.delete(conn);
    }
    if (this.#closing) {
      conn.close();
      return;
    }
    const who = result.peer;
    if (who.role === "node") {
      this.#register(who.id, conn, result.decoder, remote);
      return;
    }
    const driver = new Connection(conn, {
      ...this.#connectionOptions(`the driver (${remote})`),
      decoder: result.decoder,
    });
    this.#drivers.add(driver);
    driver.closed.then(() => this.#drivers.delete(driver));
    try {
      this.#options.onDriver(driver);
    } catch (err) {
      this.#log(`onDriver failed for ${driver.name}: ${(err as Error)?.stack ?? err}`);
      driver.abort("onDriver failed");
      return;
    }
    driver.start();
  }

  /** Decides, after the proof, whether a node may connect (the reason is sent back). */
  #admit(who: Who): string | null {
    if (who.role === "driver") return null;
    const n = this.addresses.length;
    if (n > 0 && who.id >= n) {
      return `node ${this.self} knows only nodes 0..${n - 1} (are both nodes started with the ` +
        `same address list?)`;
    }
    if (who.id <= this.self) {
      return `node ${who.id} must not dial node ${this.self}: only higher ids dial lower ones ` +
        `(are both nodes started with the same address list?)`;
    }
    if (this.#nodes[who.id]) return `node ${who.id} is already connected to node ${this.self}`;
    return null;
  }

  #connectionOptions(name: string): ConnectionOptions {
    return {
      name,
      frame_bytes_max: this.#frame_bytes_max,
      queue_bytes_max: this.#options.queue_bytes_max,
      log: this.#log,
      messageName: this.#options.messageName,
    };
  }

  #register(
    id: number,
    conn: Deno.Conn,
    decoder: ConnectionOptions["decoder"],
    remote: string,
  ): void {
    if (this.#nodes[id]) {
      // Two connections of one node raced through admit(); keep the first (FIFO per pair).
      this.#log(`closing a second connection from node ${id} (${remote})`);
      conn.close();
      return;
    }
    const c = new Connection(conn, {
      ...this.#connectionOptions(`node ${id} (${this.addresses[id] ?? remote})`),
      decoder,
      onMessage: (msg) => this.#options.onNodeMessage(id, msg),
      onClose: (reason) => this.#nodeClosed(id, c, reason),
    });
    this.#nodes[id] = c;
    c.start();
    for (const notify of this.#registered) notify();
  }

  #nodeClosed(id: number, c: Connection, reason: string): void {
    if (this.#nodes[id] === c) this.#nodes[id] = undefined;
    this.#retired.messages_sent += c.messages_sent;
    this.#retired.bytes_sent += c.bytes_sent;
    this.#retired.messages_received += c.messages_received;
    this.#retired.bytes_received += c.bytes_received;
    this.#retired.writes += c.writes;
    if (this.#closing) return;
    if (this.#options.onNodeClose) this.#options.onNodeClose(id, reason);
    else if (!c.failed) this.#log(`lost the connection to ${c.name}: ${reason}`);
  }

  /** Dials node j until connected, the deadline, or a fatal answer (thrown). */
  async #dialLoop(
    j: number,
    deadline: number,
    signal: AbortSignal,
    last_errors: Map<number, string>,
  ): Promise<void> {
    const address = this.addresses[j];
    const { host: hostname, port } = parseAddress(address);
    let backoff_ms = DIAL_BACKOFF_MS_MIN;
    while (!signal.aborted && !this.#nodes[j]) {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect({ hostname, port, signal });
      } catch (err) {
        if (signal.aborted) return;
        last_errors.set(j, connectErrorText(err));
        await sleep(Math.min(backoff_ms, Math.max(0, deadline - Date.now())), signal);
        backoff_ms = Math.min(2 * backoff_ms, DIAL_BACKOFF_MS_MAX);
        continue;
      }
      // Closing the socket is how an abort interrupts a handshake in progress.
      const onAbort = () => {
        try {
          conn.close();
        } catch {
          // The handshake closed it already.
        }
      };
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        const result = await handshakeDial(
          conn,
          this.#options.token,
          { role: "node", id: this.self },
          Math.max(1, Math.min(this.#handshake_timeout_ms, deadline - Date.now())),
          { frame_bytes_max: this.#frame_bytes_max },
        );
        signal.removeEventListener("abort", onAbort);
        const peer = result.peer;
        if (!peer || peer.role !== "node" || peer.id !== j) {
          conn.close();
          throw userError(
            `node ${j} (${address}) answered as ${peer ? describeWho(peer) : "an unnamed peer"}: ` +
              `do all nodes use the same address list?`,
          );
        }
        if (signal.aborted) {
          conn.close();
          return;
        }
        this.#register(j, conn, result.decoder, address);
        return;
      } catch (err) {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) return;
        if (!(err instanceof HandshakeError)) throw err;
        const hint = "(check --token-file / LAPSE_TOKEN)";
        switch (err.kind) {
          case "rejected":
            throw userError(`node ${j} (${address}) rejected our cluster token ${hint}`);
          case "wrong_token":
            throw userError(`node ${j} (${address}) does not know our cluster token ${hint}`);
          case "refused":
          case "protocol":
            throw userError(`node ${j} (${address}): ${err.message}`, { cause: err });
          default:
            // closed or timed out: the node may be restarting; try again until the deadline.
            last_errors.set(j, err.message);
            await sleep(Math.min(backoff_ms, Math.max(0, deadline - Date.now())), signal);
            backoff_ms = Math.min(2 * backoff_ms, DIAL_BACKOFF_MS_MAX);
        }
      }
    }
  }
}

/** A short text for a failed `Deno.connect`. */
export function connectErrorText(err: unknown): string {
  if (err instanceof Deno.errors.ConnectionRefused) return "connection refused";
  return (err as Error)?.message ?? String(err);
}

/** Sleeps `ms`, or less when `signal` aborts (the timer is cleared either way). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
