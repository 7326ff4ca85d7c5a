/**
 * A log that a flood cannot fill: at most a few lines per interval, then one summary line
 * with the number of lines left out. For events a peer can cause at any rate (malformed
 * messages, messages of other jobs).
 *
 * @module
 */

/** Options of {@linkcode RateLimitedLog}. */
export interface RateLimitedLogOptions {
  /** Lines written per interval before lines are only counted (default 5). */
  linesPerInterval?: number;
  /** Interval length in milliseconds (default 10,000). */
  intervalMs?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** Writes at most `linesPerInterval` lines per interval; counts the rest. */
export class RateLimitedLog {
  readonly #write: (line: string) => void;
  readonly #max: number;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #start = -Infinity;
  #written = 0;
  #suppressed = 0;

  constructor(write: (line: string) => void, options: RateLimitedLogOptions = {}) {
    this.#write = write;
    this.#max = options.linesPerInterval ?? 5;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Lines left out so far in the current interval. */
  get suppressed(): number {
    return this.#suppressed;
  }

  /**
   * Writes `line`, unless this interval's budget is spent (then it is counted, and the count
   * is written with the first line of a later interval). `line` may be a function, so that a
   * line that is left out costs nothing to build.
   */
  log(line: string | (() => string)): void {
    const now = this.#now();
    if (now - this.#start >= this.#intervalMs) {
      if (this.#suppressed > 0) {
        this.#write(`(${this.#suppressed} similar lines left out in the last interval)`);
      }
      this.#start = now;
      this.#written = 0;
      this.#suppressed = 0;
    }
    if (this.#written >= this.#max) {
      this.#suppressed++;
      return;
    }
    this.#written++;
    this.#write(typeof line === "string" ? line : line());
  }
}
