/**
 * Admission of incoming connections before they have proven the cluster token: what a
 * stranger may cost a node.
 *
 * - **Pending handshakes** are capped per remote address and in total; a connection above a
 *   cap is closed at once, before anything is read from it (a handshake frame is at most
 *   4 KiB, so the pending ones cost at most `pending_max` small buffers).
 * - **Wrong tokens** are answered late: each failure of an address within
 *   `failure_memory_ms` doubles the delay before its next REJECT (up to `failure_delay_ms_max`),
 *   so with the per-address cap an address can try at most
 *   `pending_max_per_address / failure_delay_ms_max` tokens per second.
 * - **Log lines** about refused connections are rate-limited: the first refusal of an interval
 *   is logged in full, the rest of that interval are summed up in one line at its end.
 *
 * @module
 */

/** Options of {@linkcode Admission}; every field has a default. */
export interface AdmissionOptions {
  /** Most connections in their handshake at once, from all addresses. */
  pending_max?: number;
  /** Most connections in their handshake at once from one remote address (host). */
  pending_max_per_address?: number;
  /** Delay before the REJECT of the first wrong token of an address, in ms. */
  failure_delay_ms_min?: number;
  /** Largest delay before a REJECT, in ms. */
  failure_delay_ms_max?: number;
  /** How long an address's failures count against it, in ms. */
  failure_memory_ms?: number;
  /** Most addresses whose failures are remembered (the oldest are forgotten first). */
  addresses_max?: number;
  /** Refusals after the first are summed up in one line per this interval, in ms. */
  log_interval_ms?: number;
  /** Where log lines go. */
  log: (line: string) => void;
}

/** Defaults of {@linkcode AdmissionOptions}. */
export const ADMISSION_DEFAULTS = {
  pending_max: 256,
  pending_max_per_address: 64,
  failure_delay_ms_min: 100,
  failure_delay_ms_max: 2000,
  failure_memory_ms: 60_000,
  addresses_max: 4096,
  log_interval_ms: 10_000,
} as const;

interface Failures {
  count: number;
  last_ms: number;
}

/** Per-node admission control of unauthenticated connections (see the module doc). */
export class Admission {
  readonly pending_max: number;
  readonly pending_max_per_address: number;
  readonly #o: Required<AdmissionOptions>;
  readonly #pending = new Map<string, number>();
  #pending_total = 0;
  /** Remembered failures by address; Map order is the order of their last failure. */
  readonly #failures = new Map<string, Failures>();
  /** Refusals not logged yet in this interval, and the last one's text. */
  #suppressed = 0;
  #suppressed_addresses = new Set<string>();
  #last_suppressed = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Connections closed at once because a cap was reached (for tests and diagnostics). */
  over_cap = 0;
  /** Handshakes that failed (any reason). */
  failed = 0;

  constructor(options: AdmissionOptions) {
    this.#o = { ...ADMISSION_DEFAULTS, ...options };
    this.pending_max = this.#o.pending_max;
    this.pending_max_per_address = this.#o.pending_max_per_address;
  }

  /** Connections in their handshake now. */
  get pending(): number {
    return this.#pending_total;
  }

  /**
   * Takes a pending-handshake slot for a connection from `host`; false (and a rate-limited
   * log line) when a cap is reached: then close the connection at once. Give the slot back
   * with {@linkcode Admission.leave}.
   */
  enter(host: string): boolean {
    const mine = this.#pending.get(host) ?? 0;
    if (this.#pending_total >= this.pending_max || mine >= this.pending_max_per_address) {
      this.over_cap++;
      const which = mine >= this.pending_max_per_address
        ? `${mine} handshakes from ${host} pending (pending_max_per_address=${this.pending_max_per_address})`
        : `${this.#pending_total} handshakes pending (pending_max=${this.pending_max})`;
      this.refused(host, `closed a connection from ${host} at once: ${which}`);
      return false;
    }
    this.#pending.set(host, mine + 1);
    this.#pending_total++;
    return true;
  }

  /** Gives back the slot of {@linkcode Admission.enter}. */
  leave(host: string): void {
    const mine = this.#pending.get(host) ?? 0;
    if (mine <= 1) this.#pending.delete(host);
    else this.#pending.set(host, mine - 1);
    this.#pending_total--;
  }

  /**
   * Records a wrong token from `host` and returns how long to wait before answering it: the
   * delay doubles with every failure of that address within failure_memory_ms.
   */
  wrongToken(host: string, now_ms = Date.now()): number {
    let f = this.#failures.get(host);
    if (f !== undefined && now_ms - f.last_ms > this.#o.failure_memory_ms) f = undefined;
    this.#failures.delete(host); // re-inserted last: Map order is by last failure
    f = { count: (f?.count ?? 0) + 1, last_ms: now_ms };
    this.#failures.set(host, f);
    while (this.#failures.size > this.#o.addresses_max) {
      this.#failures.delete(this.#failures.keys().next().value!);
    }
    const delay = this.#o.failure_delay_ms_min * 2 ** Math.min(f.count - 1, 30);
    return Math.min(delay, this.#o.failure_delay_ms_max);
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
      this.#timer = setTimeout(() => this.#flush(), this.#o.log_interval_ms);
      // A pending summary must not keep a stopping process alive.
      if (typeof Deno !== "undefined") Deno.unrefTimer(this.#timer as unknown as number);
      return;
    }
    this.#suppressed++;
    this.#suppressed_addresses.add(host);
    this.#last_suppressed = line;
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#suppressed === 0) return;
    const n = this.#suppressed;
    const hosts = this.#suppressed_addresses.size;
    this.#o.log(
      `refused ${n} more connection${n === 1 ? "" : "s"} from ${hosts} address${
        hosts === 1 ? "" : "es"
      } in the last ${this.#o.log_interval_ms / 1000} s (last: ${this.#last_suppressed})`,
    );
    this.#suppressed = 0;
    this.#suppressed_addresses = new Set();
    // Refusals go on: keep summing up, one line per interval, until an interval is quiet.
    this.#timer = setTimeout(() => this.#flush(), this.#o.log_interval_ms);
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
