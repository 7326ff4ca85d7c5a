/**
 * What the driver shows: a progress line per epoch, the per-epoch metrics line, a JSON-lines
 * metrics file, and aligned tables for benchmarks.
 *
 * @module
 */
import { dirname } from "node:path";
import { userError } from "../core/errors.ts";

const encoder = new TextEncoder();

function writeAllSync(w: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}

// --- number formatting ------------------------------------------------------------------------

const SI = ["", "k", "M", "G", "T", "P"];

function scaled(n: number, digits: (x: number) => string, unit = ""): string {
  if (!Number.isFinite(n)) return Number.isNaN(n) ? "nan" : n > 0 ? "inf" : "-inf";
  const sign = n < 0 ? "-" : "";
  let x = Math.abs(n);
  if (x < 999.5) return `${sign}${Number.isInteger(x) ? x : digits(x)}${unit}`;
  let i = 0;
  while (x >= 999.5 && i < SI.length - 1) {
    x /= 1000;
    i++;
  }
  return `${sign}${digits(x)}${SI[i]}${unit}`;
}

/** A rate or large count with 3 significant digits: `1.10M`, `12.3k`, `950`. */
export function formatRate(n: number): string {
  return scaled(n, (x) => x.toPrecision(3));
}

/** A count, short: `1.2k`, `34k`, `3.4M`, `950`. */
export function formatCount(n: number): string {
  return scaled(n, (x) => (x < 9.95 ? x.toFixed(1) : x.toFixed(0)));
}

/** Bytes in decimal units: `3.4MB`, `12kB`, `512B`. */
export function formatBytes(n: number): string {
  return scaled(n, (x) => (x < 9.95 ? x.toFixed(1) : x.toFixed(0)), "B");
}

/** Seconds: `0.42s`, `1.82s`, `12.3s`, `2m05s`, `1h02m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 10) return `${seconds.toFixed(2)}s`;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** A metric value: 4 significant digits, no trailing zeros: `0.0123`, `0.1041`, `12.5`, `1.2e-5`. */
export function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  if (n === 0) return "0";
  const a = Math.abs(n);
  if (Number.isInteger(n) && a < 1e15) return String(n);
  if (a >= 1000) return String(Math.round(n));
  if (a < 1e-3) return n.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
  const s = n.toPrecision(4);
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return "?";
  const p = fraction * 100;
  if (p < 100 && p >= 99.95) return ">99.9%";
  return `${p.toFixed(1)}%`;
}

// --- metrics line -----------------------------------------------------------------------------

/** Task metrics shown first, in this order (others follow alphabetically). */
const TASK_ORDER = [
  "loss",
  "train_loss",
  "test_loss",
  "rmse",
  "train_rmse",
  "test_rmse",
  "mrr",
  "hits@1",
  "hits@3",
  "hits@10",
];

/** System metrics shown last, with their labels and formats. */
const SYSTEM: ReadonlyArray<readonly [string, string, (n: number) => string]> = [
  ["points", "points", formatCount],
  ["epoch_s", "time", formatDuration],
  ["eval_s", "eval", formatDuration],
  ["points_per_s", "points/s", formatRate],
  ["local_fraction", "local", formatPercent],
  ["messages", "msgs", formatCount],
  ["bytes", "bytes", formatBytes],
];

/**
 * The per-epoch line. Task metrics first (`loss`, `test_rmse`, `mrr`, `hits@10`, ... then any
 * others alphabetically), then the system metrics, which have fixed keys and units:
 * `points` (count), `epoch_s` (seconds), `points_per_s`, `local_fraction` (0..1 of accesses
 * served locally), `messages` (between nodes), `bytes` (between nodes).
 *
 * @example
 * ```ts
 * formatMetrics(3, { loss: 0.0123, test_rmse: 0.1041, epoch_s: 1.82, points_per_s: 1.1e6,
 *   local_fraction: 0.998, messages: 1200, bytes: 3.4e6 });
 * // "epoch 3  loss 0.0123  test_rmse 0.1041  time 1.82s  points/s 1.10M  local 99.8%  msgs 1.2k  bytes 3.4MB"
 * ```
 */
export function formatMetrics(epoch: number, metrics: Record<string, number>): string {
  const system = new Set(SYSTEM.map(([k]) => k));
  const task = Object.keys(metrics).filter((k) => !system.has(k));
  task.sort((a, b) => {
    const ia = TASK_ORDER.indexOf(a);
    const ib = TASK_ORDER.indexOf(b);
    if (ia >= 0 || ib >= 0) return (ia < 0 ? Infinity : ia) - (ib < 0 ? Infinity : ib);
    return a < b ? -1 : a > b ? 1 : 0;
  });
  const parts = [`epoch ${epoch}`];
  for (const k of task) parts.push(`${k} ${formatNumber(metrics[k])}`);
  for (const [k, label, fmt] of SYSTEM) {
    if (metrics[k] !== undefined) parts.push(`${label} ${fmt(metrics[k])}`);
  }
  return parts.join("  ");
}

// --- progress ---------------------------------------------------------------------------------

/** Options of {@linkcode EpochProgress}; the defaults write to stderr. */
export interface ProgressOptions {
  /** Where text goes (default: stderr, synchronously). */
  write?: (text: string) => void;
  /** A terminal gets a redrawn bar, anything else plain lines (default: `Deno.stderr.isTerminal()`). */
  terminal?: boolean;
  /** Clock in milliseconds (default `performance.now`). */
  now?: () => number;
  /** Terminal width (default: the console's, else 80). */
  columns?: number;
  /** Least time between redraws on a terminal (default 100 ms). */
  redrawMs?: number;
  /** Least time between plain lines (default 5000 ms). */
  plainEveryMs?: number;
}

/**
 * The progress of one epoch at a time. On a terminal: one line redrawn in place with `\r` (at
 * most every 100 ms) showing a bar, points done/total, points/s and ETA, cleared at the end of
 * the epoch so the metrics line can take its place. Elsewhere (a log file, CI): a plain line at
 * most every 5 s, plus one at the end of the epoch.
 *
 * @example
 * ```ts
 * import { EpochProgress, formatMetrics } from "./progress.ts";
 * const metrics = { test_rmse: 0.25, epoch_s: 1.5 };
 * const p = new EpochProgress();
 * p.start(1, 2_500_000);
 * p.add(10_000); // ... as progress reports arrive
 * p.end();
 * console.log(formatMetrics(1, metrics));
 * ```
 */
export class EpochProgress {
  /** Whether the bar is redrawn in place (else plain lines). */
  readonly terminal: boolean;
  #write: (text: string) => void;
  #fixedColumns: number | undefined;
  #now: () => number;
  #columns: number;
  #redrawMs: number;
  #plainEveryMs: number;
  #epoch = 0;
  #total: number | undefined;
  #done = 0;
  #t0 = 0;
  #lastDraw = -Infinity;
  #drawn = false;
  #active = false;

  /** A progress display; see {@linkcode ProgressOptions} for the defaults. */
  constructor(options: ProgressOptions = {}) {
    this.#write = options.write ?? ((t) => writeAllSync(Deno.stderr, t));
    this.terminal = options.terminal ?? Deno.stderr.isTerminal();
    this.#now = options.now ?? (() => performance.now());
    this.#fixedColumns = options.columns;
    this.#columns = Math.max(40, options.columns ?? terminalColumns());
    this.#redrawMs = options.redrawMs ?? 100;
    this.#plainEveryMs = options.plainEveryMs ?? 5000;
  }

  /** Starts an epoch; `total` is the number of data points, if known yet. */
  start(epoch: number, total?: number): void {
    if (this.#active) this.end();
    this.#epoch = epoch;
    this.#total = total !== undefined && total > 0 ? total : undefined;
    this.#done = 0;
    this.#t0 = this.#now();
    this.#active = true;
    this.#drawn = false;
    if (this.terminal) this.#draw(this.#t0);
    else this.#lastDraw = this.#t0;
  }

  /** Sets the epoch's number of data points (when it becomes known). */
  setTotal(total: number): void {
    this.#total = total > 0 ? total : undefined;
  }

  /** Adds points done. */
  add(points: number): void {
    this.update(this.#done + points);
  }

  /** Sets the points done so far in this epoch. */
  update(done: number): void {
    if (!this.#active) return;
    this.#done = done;
    const t = this.#now();
    const every = this.terminal ? this.#redrawMs : this.#plainEveryMs;
    if (t - this.#lastDraw >= every) this.#draw(t);
  }

  /** Prints a line (a log message) without garbling the bar. */
  log(line: string): void {
    if (this.terminal && this.#drawn) {
      this.#write(`\r\x1b[K${line}\n`);
      this.#draw(this.#now());
    } else {
      this.#write(line + "\n");
    }
  }

  /** Ends the epoch: clears the bar on a terminal. */
  end(): void {
    if (!this.#active) return;
    this.#active = false;
    // Plain output needs no closing line: the epoch's metrics line follows and says it all.
    if (this.terminal && this.#drawn) this.#write("\r\x1b[K");
    this.#drawn = false;
  }

  #draw(t: number): void {
    this.#lastDraw = t;
    // The real width, now: a resized terminal gets a bar that fits.
    if (this.terminal && this.#fixedColumns === undefined) {
      this.#columns = Math.max(40, terminalColumns());
    }
    const secs = (t - this.#t0) / 1000;
    const rate = secs > 0 ? this.#done / secs : 0;
    const total = this.#total;
    const frac = total ? Math.min(1, this.#done / total) : undefined;
    const eta = total && rate > 0 ? Math.max(0, (total - this.#done) / rate) : undefined;
    const counts = total
      ? `${formatCount(this.#done)}/${formatCount(total)} points`
      : `${formatCount(this.#done)} points`;
    const rateText = secs > 0 ? `${formatRate(rate)} points/s` : "";
    const etaText = eta !== undefined && secs > 0 ? `ETA ${formatClock(eta)}` : "";
    if (this.terminal) {
      const tail = [counts, rateText, etaText].filter((s) => s).join("  ");
      let line: string;
      if (frac !== undefined) {
        const head = `epoch ${this.#epoch} `;
        const pct = ` ${(frac * 100).toFixed(0).padStart(3)}%  `;
        const room = this.#columns - 1 - head.length - pct.length - tail.length - 2;
        const w = Math.max(10, Math.min(100, room));
        const full = Math.floor(frac * w);
        const bar = "=".repeat(full) + (full < w ? ">" + " ".repeat(w - full - 1) : "");
        line = `${head}[${bar}]${pct}${tail}`;
      } else {
        line = `epoch ${this.#epoch}  ${tail}`;
      }
      this.#write(`\r${line.slice(0, this.#columns - 1)}\x1b[K`);
      this.#drawn = true;
    } else {
      const pct = frac !== undefined ? `${(frac * 100).toFixed(0)}% ` : "";
      const rest = [counts, rateText, etaText].filter((s) => s).join(", ");
      this.#write(`epoch ${this.#epoch}: ${pct}(${rest})\n`);
    }
  }
}

/** Seconds as `m:ss` or `h:mm:ss`. */
function formatClock(seconds: number): string {
  const s = Math.ceil(seconds);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh > 0 ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

// --- metrics file -----------------------------------------------------------------------------

/**
 * Appends one JSON object per line to a metrics file (`--metrics FILE`), each line written
 * with one synchronous write so a crash leaves only whole lines. Missing directories are made.
 * Non-finite numbers become `null` (JSON has no NaN).
 *
 * @example
 * ```ts
 * const w = await MetricsWriter.open("out/run.jsonl");
 * w.writeEpoch(1, { loss: 0.02, time: 1.8 }); // {"epoch":1,"loss":0.02,"time":1.8}
 * w.close();
 * ```
 */
export class MetricsWriter {
  /** The metrics file. */
  readonly path: string;
  #file: Deno.FsFile | undefined;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** Opens (creates, appends to) `path`; a path that cannot be written is a user error. */
  static async open(path: string): Promise<MetricsWriter> {
    try {
      const dir = dirname(path);
      if (dir !== "." && dir !== "") await Deno.mkdir(dir, { recursive: true });
      const file = await Deno.open(path, { create: true, append: true });
      return new MetricsWriter(path, file);
    } catch (e) {
      throw userError(`cannot write metrics file "${path}": ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** Writes one record as one line. */
  write(record: Record<string, unknown>): void {
    if (!this.#file) throw new Error(`metrics file "${this.path}" is closed`);
    writeAllSync(this.#file, JSON.stringify(record) + "\n");
  }

  /** Writes `{ epoch, ...metrics }`. */
  writeEpoch(epoch: number, metrics: Record<string, number>): void {
    this.write({ epoch, ...metrics });
  }

  /** Closes the file; later writes throw. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

// --- tables -----------------------------------------------------------------------------------

/** A column of {@linkcode formatTable}. */
export interface Column {
  /** Key of the value in each row. */
  key: string;
  /** Header (default: the key). */
  label?: string;
  /** Cell text (default: numbers by {@linkcode formatNumber}, others by `String`). */
  format?: (value: unknown, row: Record<string, unknown>) => string;
  /** Default: right if any value in the column is a number, else left. */
  align?: "left" | "right";
}

/**
 * An aligned text table: header, a rule, one line per row; numbers right-aligned, missing
 * values shown as `-`.
 *
 * @example
 * ```ts
 * formatTable([{ mode: "lapse", nodes: 4, time: 1.5 }, { mode: "classic", nodes: 4, time: 31.2 }],
 *   ["mode", "nodes", { key: "time", label: "time (s)" }]);
 * // mode     nodes  time (s)
 * // -------  -----  --------
 * // lapse        4       1.5
 * // classic      4      31.2
 * ```
 */
export function formatTable(
  rows: Record<string, unknown>[],
  columns: (string | Column)[],
): string {
  const cols: Column[] = columns.map((c) => (typeof c === "string" ? { key: c } : c));
  const cells = rows.map((row) =>
    cols.map((c) => {
      const v = row[c.key];
      if (c.format) return c.format(v, row);
      if (v === undefined || v === null) return "-";
      if (typeof v === "number") return formatNumber(v);
      return String(v);
    })
  );
  const headers = cols.map((c) => c.label ?? c.key);
  const right = cols.map((c) =>
    c.align ? c.align === "right" : rows.some((r) => typeof r[c.key] === "number")
  );
  const widths = cols.map((_, j) => Math.max(headers[j].length, ...cells.map((r) => r[j].length)));
  const line = (parts: string[]) =>
    parts.map((p, j) => (right[j] ? p.padStart(widths[j]) : p.padEnd(widths[j]))).join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

/** The terminal's width (Deno.consoleSize), else $COLUMNS, else 80. */
export function terminalColumns(): number {
  try {
    // A pseudo-terminal without a size (e.g. under `script`) says 0.
    const c = Deno.consoleSize().columns;
    if (c > 0) return c;
  } catch { /* not a terminal */ }
  const env = Number(Deno.env.get("COLUMNS"));
  return Number.isInteger(env) && env > 0 ? env : 80;
}
