/**
 * The full mesh of one node: one authenticated connection to every other node, plus the
 * listener that keeps accepting drivers (and the higher-numbered nodes) for the node's life.
 *
 * Who dials whom: node `i` dials every node `j < i` and waits for every `j > i` to dial it, so
 * each pair has exactly one connection (TCP keeps it FIFO, which the relocation protocol needs).
 * The direction never changes, so two nodes never dial each other at once.
 *
 * Membership heals: the dialer of a pair keeps redialing (with backoff, for the node's life)
 * whenever it has no connection, so a node that restarts with its id (node 0 included) is
 * dialed again by every higher node and dials every lower one itself. A new authenticated
 * connection from a node replaces the one we still hold from it: the dialer only dials when it
 * has none, so ours is a stale one of its previous incarnation (or of a link it saw break).
 *
 * Failure detection: every connection carries a heartbeat frame at least every
 * `peerTimeoutMs / 4` (at most once a second); a node we heard nothing from for
 * `peerTimeoutMs` is cut off (its connection is closed, which the node reports as a loss), so
 * a stopped or hung peer cannot stall a job forever. A node that was itself stalled (its
 * timers ran late by more than half the timeout) forgives its peers that round.
 *
 * Ports: `listen()` returns the address actually bound, so a cluster (or a test) can listen on
 * port 0 and fill in `addresses` before `connectAll()`; a real cluster passes fixed ports.
 *
 * @module
 */

import { Admission, type AdmissionOptions, hostOf } from "./admission.ts";
import { Connection, type ConnectionOptions } from "./connection.ts";
import {
  addressOf,
  describeWho,
  handshakeAccept,
  handshakeDial,
  HandshakeError,
  type Who,
} from "./handshake.ts";
import { encodeFrame, FRAME_BYTES_MAX_DEFAULT, type Message } from "./wire.ts";
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
  /**
   * A listener bound already (to `listen`), which listen() then uses: a node of an embedded
   * cluster binds port 0 and reports the port before it knows the other nodes' addresses.
   */
  listener?: Deno.TcpListener;
  /** How long connectAll() waits for the whole mesh. */
  connectTimeoutMs: number;
  /** Largest frame body accepted and sent, in bytes. */
  frameBytesMax?: number;
  /** Largest number of bytes queued for sending per connection. */
  queueBytesMax?: number;
  /** Limit for one handshake (default: 10 s, at most connectTimeoutMs). */
  handshakeTimeoutMs?: number;
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
  /** A connection to a node is up (at start, and whenever a lost node comes back). */
  onNodeOpen?: (node: number) => void;
  /**
   * How long a node may send nothing (not even a heartbeat) before it is cut off; default
   * {@linkcode PEER_TIMEOUT_MS_DEFAULT}. Changeable later (`peerTimeoutMs`).
   */
  peerTimeoutMs?: number;
  /** Limits on connections that have not proven the token yet (see admission.ts). */
  admission?: Omit<AdmissionOptions, "log">;
  /** Most driver connections at once; more are refused (default 16). */
  driversMax?: number;
  /** Log lines (default: stderr, prefixed with "lapse node <self>: "). */
  log?: (line: string) => void;
  /** Names message types in log lines. */
  messageName?: (t: number) => string;
}

/** Counters summed over the node connections (closed ones included). */
export interface PeerStats {
  messagesSent: number;
  bytesSent: number;
  messagesReceived: number;
  bytesReceived: number;
  /** Socket writes; far fewer than messagesSent when coalescing works. */
  writes: number;
}

// Backoff between dial attempts: first retry soon (the peer is probably starting), then
// at most once a second.
export const DIAL_BACKOFF_MS_MIN = 50;
export const DIAL_BACKOFF_MS_MAX = 1000;
const HANDSHAKE_TIMEOUT_MS_DEFAULT = 10_000;
/** Default of {@linkcode PeersOptions.driversMax}. */
export const DRIVERS_MAX_DEFAULT = 16;
/**
 * Largest frame a driver may send (a job config) or be sent (progress, metrics): a token
 * holder's connections cost at most driversMax x this much receive buffer.
 */
export const DRIVER_FRAME_BYTES_MAX = 1024 * 1024;
/** Most bytes queued for one driver (it reads progress lines; it gets nothing large). */
export const DRIVER_QUEUE_BYTES_MAX = 16 * 1024 * 1024;

/** Default of `ps.peer_timeout_ms`: generous, so that a loaded machine is not taken for dead. */
export const PEER_TIMEOUT_MS_DEFAULT = 30_000;
/** Smallest accepted peer timeout. */
export const PEER_TIMEOUT_MS_MIN = 200;
const HEARTBEAT_INTERVAL_MS_MAX = 1000;

/**
 * Message type of the heartbeat frame: a wire-layer type (240..255 are reserved for the wire,
 * see handshake.ts), consumed by Peers and never given to the node.
 */
export const HEARTBEAT_TYPE = 245;
const HEARTBEAT_FRAME = encodeFrame({ t: HEARTBEAT_TYPE });

/** The node's connections to all other nodes and the listener for drivers. */
export class Peers {
  /** This node's id. */
  readonly self: number;
  /** "host:port" of every node by id; read by connectAll() and for log lines. */
  addresses: string[];

  readonly #options: PeersOptions;
  #frameBytesMax: number;
  /** The limit this node was started with (restored between jobs). */
  readonly #frameBytesMaxBase: number;
  readonly #handshakeTimeoutMs: number;
  readonly #log: (line: string) => void;
  /** Pending-handshake caps, wrong-token delays, rate-limited refusal log. */
  readonly admission: Admission;
  readonly #driversMax: number;
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
    messagesSent: 0,
    bytesSent: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    writes: 0,
  };
  #listener: Deno.TcpListener | null = null;
  /** Aborted by close(): stops the dial loops and their sleeps. */
  readonly #stop = new AbortController();
  /** The dial loops run (started by the first connectAll()). */
  #maintaining = false;
  /** Last dial error per node (for the timeout message), and the last one logged. */
  readonly #lastErrors = new Map<number, string>();
  /** connectAll() is waiting: a fatal dial error (e.g. a wrong token) fails it. */
  #onFatal: ((err: Error) => void) | null = null;
  /** Heartbeats: messagesReceived seen at the last tick, and when it last changed, by node. */
  readonly #seen: number[] = [];
  readonly #heardAt: number[] = [];
  #peerTimeoutMs: number;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #lastTick = 0;
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
    this.#frameBytesMax = options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT;
    this.#frameBytesMaxBase = this.#frameBytesMax;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ??
      Math.min(HANDSHAKE_TIMEOUT_MS_DEFAULT, options.connectTimeoutMs);
    const log = options.log ??
      ((line: string) => console.error(`lapse node ${this.self}: ${line}`));
    this.#log = log;
    this.#peerTimeoutMs = checkPeerTimeout(options.peerTimeoutMs ?? PEER_TIMEOUT_MS_DEFAULT);
    this.admission = new Admission({ ...options.admission, log });
    this.#driversMax = options.driversMax ?? DRIVERS_MAX_DEFAULT;
  }

  /** How long a silent node is tolerated before its connection is closed (see the module). */
  get peerTimeoutMs(): number {
    return this.#peerTimeoutMs;
  }

  set peerTimeoutMs(ms: number) {
    ms = checkPeerTimeout(ms);
    if (ms === this.#peerTimeoutMs) return;
    this.#peerTimeoutMs = ms;
    if (this.#heartbeatTimer !== undefined) this.#startHeartbeats();
  }

  /** Same as setting `peerTimeoutMs` (the node's transport interface). */
  setPeerTimeout(ms: number): void {
    this.peerTimeoutMs = ms;
  }

  /**
   * Sets the largest frame body sent to and accepted from other nodes, on every node
   * connection and on later ones (a running job's `ps.max_frame_bytes`); without an argument,
   * back to the limit the node was started with. Drivers keep their own limit.
   */
  setFrameLimit(bytes?: number): void {
    const limit = bytes ?? this.#frameBytesMaxBase;
    this.#frameBytesMax = limit;
    for (const c of this.#nodes) if (c) c.frameBytesMax = limit;
  }

  /** The address the listener is bound to (after listen()). */
  get listenAddress(): HostPort | null {
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
      this.#listener = this.#options.listener ?? Deno.listen({ hostname, port, transport: "tcp" });
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
    return this.listenAddress!;
  }

  /**
   * Connects the mesh: starts dialing every lower node (and keeps redialing it whenever the
   * connection is lost, until close()) and waits for every higher node to dial in, all within
   * connectTimeoutMs. Heartbeats start too.
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
    if (this.#closing) throw new Error("connectAll() interrupted: the node is closing");
    const timeoutMs = this.#options.connectTimeoutMs;
    let fatal: Error | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let wake = () => {};
    const missing = () => {
      const ids: number[] = [];
      for (let j = 0; j < n; j++) if (j !== this.self && !this.isConnected(j)) ids.push(j);
      return ids;
    };
    const onClose = () => wake();
    this.#stop.signal.addEventListener("abort", onClose);
    try {
      await new Promise<void>((resolve) => {
        // Wakes on: a fatal dial error, close(), the deadline, or the last node arriving.
        wake = resolve;
        this.#onFatal = (err) => {
          fatal ??= err;
          resolve();
        };
        const check = () => {
          if (missing().length === 0) resolve();
        };
        this.#registered.add(check);
        timer = setTimeout(resolve, timeoutMs);
        this.#startMaintaining();
        check();
      });
    } finally {
      clearTimeout(timer);
      this.#registered.clear();
      this.#onFatal = null;
      this.#stop.signal.removeEventListener("abort", onClose);
    }
    if (fatal) throw fatal;
    if (this.#closing) throw new Error("connectAll() interrupted: the node is closing");
    const ids = missing();
    if (ids.length > 0) {
      const list = ids.map((j) => `${j} (${this.addresses[j]})`).join(", ");
      const details = ids.filter((j) => this.#lastErrors.has(j))
        .map((j) => `node ${j}: ${this.#lastErrors.get(j)}`).join("; ");
      const refused = this.#lastRefusal === null
        ? ""
        : `; last refused connection: ${this.#lastRefusal}`;
      throw userError(
        `${ids.length === 1 ? "node" : "nodes"} ${list} did not answer within ${timeoutMs} ms` +
          (details ? ` (last error: ${details})` : "") + refused,
      );
    }
  }

  /** True when every node of the address list is connected. */
  get complete(): boolean {
    for (let j = 0; j < this.addresses.length; j++) if (!this.isConnected(j)) return false;
    return true;
  }

  /** Starts the dial loops (one per lower node, for the node's life) and the heartbeats. */
  #startMaintaining(): void {
    if (this.#maintaining) return;
    this.#maintaining = true;
    for (let j = 0; j < this.self; j++) this.#track(this.#maintain(j));
    this.#startHeartbeats();
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

  /** The connection to a node, if open. */
  connection(node: number): Connection | undefined {
    return this.#nodes[node];
  }

  /** True if there is an open connection to `node` (always true for this node itself). */
  isConnected(node: number): boolean {
    if (node === this.#options.self) return true;
    const c = this.#nodes[node];
    return c !== undefined && !c.isClosed;
  }

  /** Counters summed over node connections (drivers excluded), closed ones included. */
  stats(): PeerStats {
    const sum = { ...this.#retired };
    for (const c of this.#nodes) {
      if (!c) continue;
      sum.messagesSent += c.messagesSent;
      sum.bytesSent += c.bytesSent;
      sum.messagesReceived += c.messagesReceived;
      sum.bytesReceived += c.bytesReceived;
      sum.writes += c.writes;
    }
    return sum;
  }

  /** Stops listening, closes every connection (flushing queued frames), waits for all. */
  async close(): Promise<void> {
    this.#closing = true;
    this.admission.close();
    this.#stop.abort();
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
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
    const host = hostOf(remote);
    if (!this.admission.enter(host)) {
      conn.close();
      return;
    }
    this.#handshaking.add(conn);
    let result;
    try {
      result = await handshakeAccept(conn, this.#options.token, this.#handshakeTimeoutMs, {
        self: { role: "node", id: this.self },
        frameBytesMax: this.#frameBytesMax,
        admit: (who) => this.#admit(who),
        // Slows down token guessing; the connection keeps its pending slot meanwhile.
        beforeReject: () => sleep(this.admission.wrongToken(host), this.#stop.signal),
      });
      this.admission.succeeded(host);
    } catch (err) {
      if (!this.#closing) {
        this.#lastRefusal = `${remote}: ${(err as Error).message}`;
        this.admission.refused(
          host,
          `refused a connection from ${remote}: ${(err as Error).message}`,
        );
      }
      return;
    } finally {
      this.#handshaking.delete(conn);
      this.admission.leave(host);
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
      frameBytesMax: Math.min(DRIVER_FRAME_BYTES_MAX, this.#frameBytesMax),
      queueBytesMax: DRIVER_QUEUE_BYTES_MAX,
      // A token holder's broken connections are logged at the refusals' rate.
      log: (line) => this.admission.limited(host, line),
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
    if (who.role === "driver") {
      if (this.#drivers.size < this.#driversMax) return null;
      return `node ${this.self} already has ${this.#drivers.size} driver connections ` +
        `(driversMax=${this.#driversMax}); try again when a job ends`;
    }
    const n = this.addresses.length;
    if (n > 0 && who.id >= n) {
      return `node ${this.self} knows only nodes 0..${n - 1} (are both nodes started with the ` +
        `same address list?)`;
    }
    if (who.id <= this.self) {
      return `node ${who.id} must not dial node ${this.self}: only higher ids dial lower ones ` +
        `(are both nodes started with the same address list?)`;
    }
    // A connection we still hold from that node is stale (the dialer dials only when it has
    // none): #register replaces it.
    return null;
  }

  #connectionOptions(name: string): ConnectionOptions {
    return {
      name,
      frameBytesMax: this.#frameBytesMax,
      queueBytesMax: this.#options.queueBytesMax,
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
    const old = this.#nodes[id];
    if (old) {
      // The node dialed again: it restarted, or it saw our link break before we did. Its new
      // connection wins; closing the old one first reports the loss (and fails a job that
      // used it: messages queued on it are gone).
      old.abort(`replaced by a new connection from node ${id} (restarted or reconnected)`);
    }
    const c = new Connection(conn, {
      ...this.#connectionOptions(`node ${id} (${this.addresses[id] ?? remote})`),
      decoder,
      onMessage: (msg) =>
        msg.t === HEARTBEAT_TYPE ? undefined : this.#options.onNodeMessage(id, msg),
      onClose: (reason) => this.#nodeClosed(id, c, reason),
    });
    this.#nodes[id] = c;
    this.#seen[id] = c.messagesReceived;
    this.#heardAt[id] = performance.now();
    this.#lastErrors.delete(id);
    c.start();
    for (const notify of this.#registered) notify();
    try {
      this.#options.onNodeOpen?.(id);
    } catch (err) {
      this.#log(`onNodeOpen failed for node ${id}: ${(err as Error)?.stack ?? err}`);
    }
  }

  /** (Re)starts the heartbeat timer for the current peer timeout. */
  #startHeartbeats(): void {
    clearInterval(this.#heartbeatTimer);
    if (this.#closing) return;
    const intervalMs = Math.min(HEARTBEAT_INTERVAL_MS_MAX, Math.floor(this.#peerTimeoutMs / 4));
    this.#lastTick = performance.now();
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), intervalMs);
  }

  /** One heartbeat round: cut off silent nodes, then tell every node we are alive. */
  #heartbeat(): void {
    const now = performance.now();
    // Our own timers ran late (a long synchronous handler, a stopped process, an overloaded
    // machine): nobody can be judged by this round; start counting afresh.
    const stalled = now - this.#lastTick > this.#peerTimeoutMs / 2;
    this.#lastTick = now;
    for (let j = 0; j < this.#nodes.length; j++) {
      const c = this.#nodes[j];
      if (!c || c.isClosed) continue;
      if (stalled || c.messagesReceived !== this.#seen[j]) {
        this.#seen[j] = c.messagesReceived;
        this.#heardAt[j] = now;
      } else if (now - this.#heardAt[j] > this.#peerTimeoutMs) {
        const silentMs = Math.round(now - this.#heardAt[j]);
        c.abort(
          `node ${j} sent nothing for ${silentMs} ms (ps.peer_timeout_ms=` +
            `${this.#peerTimeoutMs}): it is stopped, hung or cut off`,
        );
        continue;
      }
      try {
        c.sendFrame(HEARTBEAT_FRAME);
      } catch {
        // Closed meanwhile, or its queue is full: the peer is not reading; the timeout decides.
      }
    }
    // Drivers watch node 0 the same way (driver/driver.ts): a stopped node 0 fails their job.
    for (const d of this.#drivers) {
      try {
        d.sendFrame(HEARTBEAT_FRAME);
      } catch {
        // A driver that is gone or not reading: its connection closes on its own.
      }
    }
  }

  #nodeClosed(id: number, c: Connection, reason: string): void {
    if (this.#nodes[id] === c) this.#nodes[id] = undefined;
    this.#retired.messagesSent += c.messagesSent;
    this.#retired.bytesSent += c.bytesSent;
    this.#retired.messagesReceived += c.messagesReceived;
    this.#retired.bytesReceived += c.bytesReceived;
    this.#retired.writes += c.writes;
    if (this.#closing) return;
    if (this.#options.onNodeClose) this.#options.onNodeClose(id, reason);
    else if (!c.failed) this.#log(`lost the connection to ${c.name}: ${reason}`);
  }

  /**
   * Keeps a connection to the lower node `j` for the node's life: dials while there is none
   * (backoff from DIAL_BACKOFF_MS_MIN up to DIAL_BACKOFF_MS_MAX), waits while there is one.
   */
  async #maintain(j: number): Promise<void> {
    const signal = this.#stop.signal;
    let backoffMs = DIAL_BACKOFF_MS_MIN;
    let logged = "";
    while (!this.#closing) {
      const c = this.#nodes[j];
      if (c) {
        await c.closed;
        backoffMs = DIAL_BACKOFF_MS_MIN;
        continue;
      }
      let error: string;
      try {
        if (await this.#dialOnce(j, signal)) {
          logged = "";
          continue;
        }
        error = this.#lastErrors.get(j) ?? "no answer";
      } catch (err) {
        // A wrong token or an address that answers as another node: fails a waiting
        // connectAll(); later (a node restarted with another config) it is logged once and
        // the node keeps trying, slowly.
        error = (err as Error).message;
        this.#lastErrors.set(j, error);
        if (this.#onFatal) this.#onFatal(err as Error);
        else if (error !== logged) this.#log(error);
        logged = error;
        backoffMs = DIAL_BACKOFF_MS_MAX;
      }
      await sleep(backoffMs, signal);
      backoffMs = Math.min(2 * backoffMs, DIAL_BACKOFF_MS_MAX);
    }
  }

  /**
   * One attempt to connect to node `j`: true when connected; false for a retryable failure
   * (recorded in #lastErrors); throws for a fatal one.
   */
  async #dialOnce(j: number, signal: AbortSignal): Promise<boolean> {
    const address = this.addresses[j];
    const { host: hostname, port } = parseAddress(address);
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname, port, signal });
    } catch (err) {
      if (!signal.aborted) this.#lastErrors.set(j, connectErrorText(err));
      return false;
    }
    // Closing the socket is how close() interrupts a handshake in progress.
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
        this.#handshakeTimeoutMs,
        { frameBytesMax: this.#frameBytesMax },
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
        return false;
      }
      this.#register(j, conn, result.decoder, address);
      return true;
    } catch (err) {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) return false;
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
          // closed or timed out: the node may be restarting (or stopped); try again.
          this.#lastErrors.set(j, err.message);
          return false;
      }
    }
  }
}

/** Checks a peer timeout (ps.peer_timeout_ms). */
function checkPeerTimeout(ms: number): number {
  if (!Number.isInteger(ms) || ms < PEER_TIMEOUT_MS_MIN) {
    throw new RangeError(
      `ps.peer_timeout_ms must be an integer >= ${PEER_TIMEOUT_MS_MIN}, got ${ms}`,
    );
  }
  return ms;
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
