/**
 * Admission of incoming connections before they have proven the cluster token: what a
 * stranger may cost a node.
 *
 * - **Pending handshakes** are capped per remote address and in total; a connection above a
 *   cap is closed at once, before anything is read from it (a handshake frame is at most
 *   4 KiB, so the pending ones cost at most `pendingMax` small buffers).
 * - **Wrong tokens** are answered late: each failure of an address within
 *   `failureMemoryMs` doubles the delay before its next REJECT (up to `failureDelayMsMax`),
 *   so with the per-address cap an address can try at most
 *   `pendingMaxPerAddress / failureDelayMsMax` tokens per second.
 * - **Log lines** about refused connections are rate-limited: the first refusal of an interval
 *   is logged in full, the rest of that interval are summed up in one line at its end.
 *
 * @module
 */

/** Options of {@linkcode Admission}; every field has a default. */
export interface AdmissionOptions {
  /** Most connections in their handshake at once, from all addresses. */
  pendingMax?: number;
  /** Most connections in their handshake at once from one remote address (host). */
  pendingMaxPerAddress?: number;
  /** Delay before the REJECT of the first wrong token of an address, in ms. */
  failureDelayMsMin?: number;
  /** Largest delay before a REJECT, in ms. */
  failureDelayMsMax?: number;
  /** How long an address's failures count against it, in ms. */
  failureMemoryMs?: number;
  /** Most addresses whose failures are remembered (the oldest are forgotten first). */
  addressesMax?: number;
  /** Refusals after the first are summed up in one line per this interval, in ms. */
  logIntervalMs?: number;
  /** Where log lines go. */
  log: (line: string) => void;
}

/** Defaults of {@linkcode AdmissionOptions}. */
export const ADMISSION_DEFAULTS = {
  pendingMax: 256,
  pendingMaxPerAddress: 64,
  failureDelayMsMin: 100,
  failureDelayMsMax: 2000,
  failureMemoryMs: 60_000,
  addressesMax: 4096,
  logIntervalMs: 10_000,
} as const;

interface Failures {
  count: number;
  lastMs: number;
}

/** Per-node admission control of unauthenticated connections (see the module doc). */
export class Admission {
  readonly pendingMax: number;
  readonly pendingMaxPerAddress: number;
  readonly #o: Required<AdmissionOptions>;
  readonly #pending = new Map<string, number>();
  #pendingTotal = 0;
  /** Remembered failures by address; Map order is the order of their last failure. */
  readonly #failures = new Map<string, Failures>();
  /** Refusals not logged yet in this interval, and the last one's text. */
  #suppressed = 0;
  #suppressedAddresses = new Set<string>();
  #lastSuppressed = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Connections closed at once because a cap was reached (for tests and diagnostics). */
  overCap = 0;
  /** Handshakes that failed (any reason). */
  failed = 0;

  constructor(options: AdmissionOptions) {
    this.#o = { ...ADMISSION_DEFAULTS, ...options };
    this.pendingMax = this.#o.pendingMax;
    this.pendingMaxPerAddress = this.#o.pendingMaxPerAddress;
  }

  /** Connections in their handshake now. */
  get pending(): number {
    return this.#pendingTotal;
  }

  /**
   * Takes a pending-handshake slot for a connection from `host`; false (and a rate-limited
   * log line) when a cap is reached: then close the connection at once. Give the slot back
   * with {@linkcode Admission.leave}.
   */
  enter(host: string): boolean {
    const mine = this.#pending.get(host) ?? 0;
    if (this.#pendingTotal >= this.pendingMax || mine >= this.pendingMaxPerAddress) {
      this.overCap++;
      const which = mine >= this.pendingMaxPerAddress
        ? `${mine} handshakes from ${host} pending (pendingMaxPerAddress=${this.pendingMaxPerAddress})`
        : `${this.#pendingTotal} handshakes pending (pendingMax=${this.pendingMax})`;
      this.refused(host, `closed a connection from ${host} at once: ${which}`);
      return false;
    }
    this.#pending.set(host, mine + 1);
    this.#pendingTotal++;
    return true;
  }

  /** Gives back the slot of {@linkcode Admission.enter}. */
  leave(host: string): void {
    const mine = this.#pending.get(host) ?? 0;
    if (mine <= 1) this.#pending.delete(host);
    else this.#pending.set(host, mine - 1);
    this.#pendingTotal--;
  }

  /**
   * Records a wrong token from `host` and returns how long to wait before answering it: the
   * delay doubles with every failure of that address within failureMemoryMs.
   */
  wrongToken(host: string, nowMs = Date.now()): number {
    let f = this.#failures.get(host);
    if (f !== undefined && nowMs - f.lastMs > this.#o.failureMemoryMs) f = undefined;
    this.#failures.delete(host); // re-inserted last: Map order is by last failure
    f = { count: (f?.count ?? 0) + 1, lastMs: nowMs };
    this.#failures.set(host, f);
    while (this.#failures.size > this.#o.addressesMax) {
      this.#failures.delete(this.#failures.keys().next().value!);
    }
    const delay = this.#o.failureDelayMsMin * 2 ** Math.min(f.count - 1, 30);
    return Math.min(delay, this.#o.failureDelayMsMax);
  }

  /** The token was right: the address's failures are forgotten. */
  succeeded(host: string): void {
    this.#failures.delete(host);
  }

  /**
   * Logs a refused connection: the first of an interval in full; later ones are counted and
   * summed up in one line at the end of the interval.
   */
  refused(host: string, line: string): void {
    this.failed++;
    this.limited(host, line);
  }

  /**
   * Logs a line about a connection of `host` at the same rate limit as refusals (e.g. a
   * driver's connection closed for a malformed frame: a token holder must not flood the log).
   */
  limited(host: string, line: string): void {
    if (this.#closed) return;
    if (this.#timer === undefined) {
      this.#o.log(line);
      this.#timer = setTimeout(() => this.#flush(), this.#o.logIntervalMs);
      // A pending summary must not keep a stopping process alive.
      if (typeof Deno !== "undefined") Deno.unrefTimer(this.#timer as unknown as number);
      return;
    }
    this.#suppressed++;
    this.#suppressedAddresses.add(host);
    this.#lastSuppressed = line;
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#suppressed === 0) return;
    const n = this.#suppressed;
    const hosts = this.#suppressedAddresses.size;
    this.#o.log(
      `refused ${n} more connection${n === 1 ? "" : "s"} from ${hosts} address${
        hosts === 1 ? "" : "es"
      } in the last ${this.#o.logIntervalMs / 1000} s (last: ${this.#lastSuppressed})`,
    );
    this.#suppressed = 0;
    this.#suppressedAddresses = new Set();
    // Refusals go on: keep summing up, one line per interval, until an interval is quiet.
    this.#timer = setTimeout(() => this.#flush(), this.#o.logIntervalMs);
    if (typeof Deno !== "undefined") Deno.unrefTimer(this.#timer as unknown as number);
  }

  /** Stops the summary timer (node shutdown); later refusals are not logged. */
  close(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#closed = true;
  }
}

/** The host part of "host:port" / "[v6]:port" (the unit of per-address limits). */
export function hostOf(address: string): string {
  const m = /^\[([^\]]*)\]:\d+$/.exec(address) ?? /^([^:]*):\d+$/.exec(address);
  return m ? m[1] : address;
}
