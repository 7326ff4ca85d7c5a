/**
 * Reports: one self-contained HTML page (inline SVG charts and CSS, no script, no network
 * request) from benchmark rows (`lapse bench TASK --report`) or training metrics files
 * (`lapse report metrics.jsonl... -o report.html`).
 *
 * Four charts: epoch time per mode against node count, speedup over 1 node against node count
 * with the linear line, quality against training time per mode, throughput per epoch. Each
 * chart is an `<svg class="chart" data-chart=NAME data-series=N>` with one
 * `<path class="series">` and its `<circle class="mark">`s per series, so a test can count
 * what was drawn. Plain SVG rather than a charting library: four simple line charts, no
 * dependency to inline, and a page that renders the same without JavaScript.
 *
 * @module
 */

/** One benchmark row or one group of training runs (the fields a report uses). */
export interface ReportRow {
  task: string;
  mode: string;
  /** Node count; null for an in-process run (plain). */
  nodes: number | null;
  workers_per_node?: number;
  /** Training seconds per epoch (the median of the repeats, if any). */
  epoch_s: number;
  epoch_s_min?: number;
  epoch_s_max?: number;
  points_per_s?: number;
  local_fraction?: number;
  messages?: number;
  bytes?: number;
  quality?: number;
  quality_metric?: string;
  speedup?: number;
  speedup_1node?: number;
  vs_lapse?: number;
  repeats?: number;
  status?: string;
  per_epoch_s?: number[];
  per_epoch_quality?: number[];
  per_epoch_points_per_s?: number[];
}

/** What a report shows. */
export interface ReportInput {
  title: string;
  /** Lines shown under the title (the bench header: data, overrides). */
  header: string[];
  rows: ReportRow[];
  /** What a data point is (points, ratings, triples, words). */
  unit?: string;
}

/** Most rows a report takes (a limit, not a layout choice). */
export const REPORT_ROWS_MAX = 10_000;

const PALETTE: Record<string, string> = {
  lapse: "#d62728",
  lapse_nolocalize: "#ff7f0e",
  classic: "#1f77b4",
  classic_remote: "#17becf",
  stale: "#2ca02c",
  plain: "#7f7f7f",
  manual: "#9467bd",
};
const EXTRA_COLORS = ["#8c564b", "#e377c2", "#bcbd22", "#393b79", "#637939", "#843c39"];

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

interface Series {
  name: string;
  color: string;
  points: [number, number][];
  /** The node count of a per-epoch series (for the chart title). */
  nodes?: number | null;
  /** Optional vertical ranges per point (min, max), e.g. repeats. */
  ranges?: ([number, number] | null)[];
  dashed?: boolean;
}

interface ChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Distinct x values as evenly spaced categories (node counts). */
  xCategories?: number[];
  /** Only whole-number x ticks (epochs). */
  integerX?: boolean;
  logY?: boolean;
  /** Shown instead of the plot when no series has a point. */
  empty: string;
}

const W = 580, H = 340, M = { l: 64, r: 165, t: 34, b: 46 };

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function fmtTick(v: number, step = 0): string {
  const a = Math.abs(v);
  // Ticks closer than 3 digits can show (0.9952, 0.9954): as many decimals as the step needs.
  if (step > 0 && a < 1e3 && step < a / 100) {
    return v.toFixed(Math.min(8, Math.max(0, -Math.floor(Math.log10(step)) + 1)));
  }
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e3) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

/** One chart as an SVG element. */
function renderChart(c: ChartSpec): string {
  const series = c.series.filter((s) => s.points.length > 0);
  const head = `<svg class="chart" data-chart="${c.id}" data-series="${series.length}" ` +
    `viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(c.title)}">` +
    `<text class="title" x="${M.l}" y="20">${esc(c.title)}</text>`;
  if (series.length === 0) {
    return `${head}<text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">${
      esc(c.empty)
    }</text></svg>`;
  }
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => [
    ...s.points.map((p) => p[1]),
    ...(s.ranges ?? []).flatMap((r) => (r ? r : [])),
  ]).filter((y) => c.logY ? y > 0 : true);
  const pw = W - M.l - M.r, ph = H - M.t - M.b;
  // x: categories evenly spaced, or linear from 0 (or the least x).
  let xOf: (x: number) => number;
  let xTicks: number[];
  if (c.xCategories && c.xCategories.length > 0) {
    const cats = c.xCategories;
    xOf = (x) => {
      const i = cats.indexOf(x);
      return M.l + (cats.length === 1 ? pw / 2 : (i / (cats.length - 1)) * pw);
    };
    xTicks = cats;
  } else {
    const lo = Math.min(0, ...xs), hi = Math.max(...xs, lo + 1e-9);
    xOf = (x) => M.l + ((x - lo) / (hi - lo)) * pw;
    xTicks = niceTicks(lo, hi);
    if (c.integerX) xTicks = xTicks.filter((t) => Number.isInteger(t));
  }
  let yOf: (y: number) => number;
  let yTicks: number[];
  if (c.logY) {
    const lo = Math.log10(Math.min(...ys)), hi = Math.log10(Math.max(...ys));
    const a = Math.floor(lo), b = Math.max(Math.ceil(hi), a + 1);
    yOf = (y) => M.t + ph - ((Math.log10(y) - a) / (b - a)) * ph;
    yTicks = [];
    for (let e = a; e <= b; e++) yTicks.push(10 ** e);
  } else {
    let lo = Math.min(...ys), hi = Math.max(...ys);
    if (lo > 0 && lo < 0.5 * hi) lo = 0;
    if (!(hi > lo)) {
      hi = lo + (Math.abs(lo) || 1) * 0.1;
      lo = lo - (hi - lo);
    }
    const pad = (hi - lo) * 0.05;
    const t = niceTicks(lo - (lo === 0 ? 0 : pad), hi + pad);
    const tlo = Math.min(t[0], lo), thi = Math.max(t[t.length - 1], hi);
    yOf = (y) => M.t + ph - ((y - tlo) / (thi - tlo)) * ph;
    yTicks = t;
  }
  const parts: string[] = [head];
  // Axes, grid, ticks.
  parts.push(
    `<g class="axes"><line x1="${M.l}" y1="${M.t + ph}" x2="${M.l + pw}" y2="${
      M.t + ph
    }"/><line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${M.t + ph}"/></g>`,
  );
  const yStep = yTicks.length > 1 && !c.logY ? yTicks[1] - yTicks[0] : 0;
  for (const t of yTicks) {
    const y = yOf(t).toFixed(1);
    parts.push(
      `<g class="tick"><line class="grid" x1="${M.l}" y1="${y}" x2="${
        M.l + pw
      }" y2="${y}"/><text x="${M.l - 6}" y="${y}" dy="0.32em" text-anchor="end">${
        fmtTick(t, yStep)
      }</text></g>`,
    );
  }
  for (const t of xTicks) {
    const x = xOf(t).toFixed(1);
    parts.push(
      `<g class="tick"><text x="${x}" y="${M.t + ph + 16}" text-anchor="middle">${
        fmtTick(t)
      }</text></g>`,
    );
  }
  parts.push(
    `<text class="label" x="${M.l + pw / 2}" y="${H - 8}" text-anchor="middle">${
      esc(c.xLabel)
    }</text>`,
    `<text class="label" transform="translate(14 ${
      M.t + ph / 2
    }) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}${c.logY ? " (log scale)" : ""}</text>`,
  );
  // Series: a path, its marks, its range whiskers; a legend entry.
  series.forEach((s, i) => {
    const pts = s.points.map(([x, y]) => [xOf(x), yOf(y)] as const);
    const d = pts.map(([x, y], j) => `${j === 0 ? "M" : "L"}${x.toFixed(1)} ${y.toFixed(1)}`)
      .join("");
    parts.push(
      `<g class="series-group" data-name="${esc(s.name)}"><path class="series" d="${d}" ` +
        `stroke="${s.color}"${s.dashed ? ' stroke-dasharray="5 4"' : ""} fill="none"/>`,
    );
    (s.ranges ?? []).forEach((r, j) => {
      if (!r || r[0] === r[1]) return;
      const x = pts[j][0].toFixed(1);
      parts.push(
        `<line class="range" x1="${x}" x2="${x}" y1="${yOf(r[0]).toFixed(1)}" y2="${
          yOf(r[1]).toFixed(1)
        }" stroke="${s.color}"/>`,
      );
    });
    for (let j = 0; j < pts.length; j++) {
      const [x, y] = pts[j];
      const [dx, dy] = s.points[j];
      parts.push(
        `<circle class="mark" cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${
          s.dashed ? 0 : 3.5
        }" fill="${s.color}"><title>${esc(s.name)}: ${fmtTick(dx)}, ${
          Number(dy.toPrecision(4))
        }</title></circle>`,
      );
    }
    parts.push(`</g>`);
    const ly = M.t + 8 + i * 18, lx = W - M.r + 14;
    parts.push(
      `<g class="legend"><line x1="${lx}" x2="${
        lx + 20
      }" y1="${ly}" y2="${ly}" stroke="${s.color}"${
        s.dashed ? ' stroke-dasharray="5 4"' : ""
      }/><text x="${lx + 26}" y="${ly}" dy="0.32em">${esc(s.name)}</text></g>`,
    );
  });
  parts.push("</svg>");
  return parts.join("");
}

function colorOf(mode: string, extra: Map<string, string>): string {
  if (PALETTE[mode]) return PALETTE[mode];
  let c = extra.get(mode);
  if (!c) {
    c = EXTRA_COLORS[extra.size % EXTRA_COLORS.length];
    extra.set(mode, c);
  }
  return c;
}

/** The four charts of a set of rows. */
export function chartSpecs(rows: ReportRow[], unit = "points"): ChartSpec[] {
  const extra = new Map<string, string>();
  const modes = [...new Set(rows.map((r) => r.mode))];
  const cluster = rows.filter((r) => r.nodes !== null && finite(r.epoch_s));
  const nodeCounts = [...new Set(cluster.map((r) => r.nodes as number))].sort((a, b) => a - b);
  const metric = rows.find((r) => r.quality_metric && r.quality_metric !== "none")
    ?.quality_metric ?? "quality";

  const epochSeries: Series[] = [];
  const speedSeries: Series[] = [];
  for (const mode of modes) {
    const color = colorOf(mode, extra);
    const rs = rows.filter((r) => r.mode === mode && finite(r.epoch_s));
    const byNodes = rs.filter((r) => r.nodes !== null).sort((a, b) => a.nodes! - b.nodes!);
    if (byNodes.length > 0) {
      epochSeries.push({
        name: mode,
        color,
        points: byNodes.map((r) => [r.nodes!, r.epoch_s]),
        ranges: byNodes.map((r) =>
          finite(r.epoch_s_min) && finite(r.epoch_s_max) ? [r.epoch_s_min, r.epoch_s_max] : null
        ),
      });
      const one = byNodes.find((r) => r.nodes === 1);
      if (one) {
        speedSeries.push({
          name: mode,
          color,
          points: byNodes.map((r) => [r.nodes!, one.epoch_s / r.epoch_s]),
        });
      }
    } else if (rs.length > 0 && nodeCounts.length > 0) {
      // An in-process run (plain): the same time at every node count, for reference.
      epochSeries.push({
        name: `${mode} (1 process)`,
        color,
        dashed: true,
        points: nodeCounts.map((n) => [n, rs[0].epoch_s]),
      });
    }
  }
  if (speedSeries.length > 0) {
    speedSeries.push({
      name: "linear",
      color: "#999999",
      dashed: true,
      points: nodeCounts.map((n) => [n, n]),
    });
  }
  const eys = epochSeries.flatMap((s) => s.points.map((p) => p[1])).filter((y) => y > 0);
  const logY = eys.length > 0 && Math.max(...eys) / Math.min(...eys) > 20;

  // Per-epoch charts: each mode at the largest node count it ran on (or in-process).
  const perEpoch = (point: (r: ReportRow, e: number, t: number) => [number, number] | null) =>
    modes.flatMap((mode): Series[] => {
      const rs = rows.filter((r) => r.mode === mode);
      const r = rs.filter((x) => x.nodes !== null).sort((a, b) => b.nodes! - a.nodes!)[0] ??
        rs[0];
      if (!r || !r.per_epoch_s) return [];
      const pts: [number, number][] = [];
      let t = 0;
      r.per_epoch_s.forEach((s, e) => {
        t += finite(s) ? s : 0;
        const p = point(r, e, t);
        if (p !== null && finite(p[0]) && finite(p[1])) pts.push(p);
      });
      return pts.length === 0 ? [] : [{
        name: r.nodes === null ? `${mode} (1 process)` : mode,
        color: colorOf(mode, extra),
        points: pts,
        nodes: r.nodes,
      }];
    });
  const quality = perEpoch((r, e, t) => [t, r.per_epoch_quality?.[e] ?? NaN]);
  const throughput = perEpoch((r, e) => [e, r.per_epoch_points_per_s?.[e] ?? NaN]);
  /** " on 4 nodes" when every cluster series ran on 4 nodes, else " (most nodes per mode)". */
  const onNodes = (ss: Series[]) => {
    const ns = [...new Set(ss.map((x) => x.nodes).filter((n) => n !== null && n !== undefined))];
    return ns.length === 1 ? ` on ${ns[0]} node(s)` : ns.length > 1 ? " (most nodes per mode)" : "";
  };

  return [
    {
      id: "epoch_time",
      title: "Epoch time per mode",
      xLabel: "nodes",
      yLabel: "seconds per epoch",
      series: epochSeries,
      xCategories: nodeCounts,
      logY,
      empty: "no runs with a node count",
    },
    {
      id: "speedup",
      title: "Speedup over 1 node",
      xLabel: "nodes",
      yLabel: "epoch time on 1 node / on n nodes",
      series: speedSeries,
      xCategories: nodeCounts,
      empty: "no mode ran on 1 node",
    },
    {
      id: "quality",
      title: `${metric} against training time${onNodes(quality)}`,
      xLabel: "training seconds (cumulative epoch time)",
      yLabel: metric,
      series: quality,
      empty: "no per-epoch quality",
    },
    {
      id: "throughput",
      title: `Throughput per epoch${onNodes(throughput)}`,
      xLabel: "epoch",
      yLabel: `${unit}/s`,
      series: throughput,
      integerX: true,
      empty: "no per-epoch throughput",
    },
  ];
}

const COLUMNS: [keyof ReportRow, string, (v: any) => string][] = [
  ["task", "task", String],
  ["mode", "mode", String],
  ["nodes", "nodes", (v) => (v === null ? "-" : String(v))],
  ["epoch_s", "epoch s", (v) => (finite(v) ? v.toPrecision(3) : "-")],
  ["epoch_s_min", "min", (v) => (finite(v) ? v.toPrecision(3) : "")],
  ["epoch_s_max", "max", (v) => (finite(v) ? v.toPrecision(3) : "")],
  ["points_per_s", "points/s", (v) => (finite(v) ? fmtTick(v) : "-")],
  ["speedup_1node", "vs 1 node", (v) => (finite(v) ? `${v.toPrecision(3)}x` : "")],
  ["vs_lapse", "vs lapse", (v) => (finite(v) ? `${v.toPrecision(3)}x` : "")],
  ["local_fraction", "local", (v) => (finite(v) ? `${(v * 100).toFixed(1)}%` : "-")],
  ["messages", "messages", (v) => (finite(v) ? fmtTick(v) : "-")],
  ["bytes", "bytes", (v) => (finite(v) ? fmtTick(v) : "-")],
  ["quality", "quality", (v) => (finite(v) ? String(Number(v.toPrecision(4))) : "-")],
  ["status", "status", (v) => (v === undefined ? "" : String(v))],
];

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px;margin:0 0 8px}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}
.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{border:1px solid #ddd;background:#fff}
svg .title{font-weight:600;font-size:14px}svg text{font-size:11px;fill:#333}
svg .axes line{stroke:#444}svg .grid{stroke:#eee}svg path.series{stroke-width:2}
svg .range{stroke-width:1.5}svg .legend line{stroke-width:2}svg .empty{fill:#888;font-size:13px}
table{border-collapse:collapse;margin-top:16px}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}`;

/** The report as one HTML document (no script, no external resource). */
export function renderReport(input: ReportInput): string {
  if (input.rows.length > REPORT_ROWS_MAX) {
    throw new RangeError(
      `A report of ${input.rows.length} rows is above the limit of ${REPORT_ROWS_MAX}`,
    );
  }
  const charts = chartSpecs(input.rows, input.unit).map(renderChart).join("\n");
  const table = `<table><thead><tr>${
    COLUMNS.map(([, label]) => `<th>${esc(label)}</th>`).join("")
  }</tr></thead><tbody>${
    input.rows.map((r) =>
      `<tr>${COLUMNS.map(([k, , f]) => `<td>${esc(f(r[k]))}</td>`).join("")}</tr>`
    ).join("")
  }</tbody></table>`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(input.title)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>${CSS}</style></head><body>
<h1>${esc(input.title)}</h1>
<pre>${esc(input.header.join("\n"))}</pre>
<div class="charts">
${charts}
</div>
${table}
</body></html>
`;
}

/** Writes {@linkcode renderReport} to `path` (creating its folder). */
export async function writeBenchReport(path: string, input: ReportInput): Promise<void> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  await Deno.writeTextFile(path, renderReport(input));
}

/** One training run read from a metrics file. */
export interface MetricsRun {
  /** Where it came from: `file` or `file#2` for the second run in a file. */
  source: string;
  task: string;
  mode: string;
  nodes: number | null;
  epochs: Record<string, number>[];
}

const QUALITY_KEYS = ["test_rmse", "mrr", "test_loss", "loss", "train_loss"];

/**
 * Splits metrics JSONL text into runs: an epoch record (`{epoch, ...metrics}`) belongs to the
 * run begun by the last header line before it (a line without `epoch` that carries a config
 * or run id; its task, mode and node count label the run); lines of other kinds (summaries)
 * are skipped. A line that is not JSON is a SyntaxError naming the file and line.
 */
export function parseMetrics(name: string, text: string): MetricsRun[] {
  const runs: MetricsRun[] = [];
  let current: MetricsRun | null = null;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    let rec: Record<string, any>;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new SyntaxError(
        `${name}:${i + 1}: not a JSON line (${(e as Error).message}): expected the output of ` +
          `lapse train --metrics`,
      );
    }
    if (rec === null || typeof rec !== "object") continue;
    if (typeof rec.epoch === "number") {
      if (current === null) {
        current = { source: name, task: "", mode: "", nodes: null, epochs: [] };
        runs.push(current);
      }
      current.epochs.push(rec as Record<string, number>);
      continue;
    }
    const cfg = rec.config ?? rec.job ?? {};
    const isHeader = rec.config !== undefined || rec.run !== undefined ||
      rec.run_id !== undefined || rec.type === "header" || rec.kind === "header";
    if (!isHeader) continue;
    const nodes = rec.nodes ?? rec.cluster?.nodes ?? cfg.cluster?.nodes;
    current = {
      source: runs.length === 0 ? name : `${name}#${runs.length + 1}`,
      task: String(rec.task ?? cfg.task ?? ""),
      mode: String(rec.mode ?? rec.ps?.mode ?? cfg.ps?.mode ?? ""),
      nodes: typeof nodes === "number" ? nodes : null,
      epochs: [],
    };
    runs.push(current);
  }
  return runs.filter((r) => r.epochs.length > 0);
}

/**
 * Report rows from training runs: runs of the same task, mode and node count form one row
 * (epoch_s: the median over runs of each run's mean epoch time, min and max beside it; the
 * per-epoch series of the median run). A run without a mode is labelled by its file.
 */
export function rowsFromRuns(runs: MetricsRun[]): ReportRow[] {
  const groups = new Map<string, MetricsRun[]>();
  for (const r of runs) {
    const mode = r.mode || r.source;
    const key = `${r.task}\u0000${mode}\u0000${r.nodes}`;
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  const rows: ReportRow[] = [];
  for (const g of groups.values()) {
    const summed = g.map((r) => {
      const secs = r.epochs.map((e) => e.epoch_s).filter(finite);
      return { r, epoch_s: secs.reduce((a, b) => a + b, 0) / Math.max(1, secs.length) };
    }).sort((a, b) => a.epoch_s - b.epoch_s);
    const med = summed[(summed.length - 1) >> 1];
    const r = med.r, last = r.epochs[r.epochs.length - 1];
    const metric = QUALITY_KEYS.find((k) => finite(last[k])) ?? "none";
    const mean = (k: string) => {
      const xs = r.epochs.map((e) => e[k]).filter(finite);
      return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    rows.push({
      task: r.task,
      mode: r.mode || r.source,
      nodes: r.nodes,
      epoch_s: med.epoch_s,
      epoch_s_min: summed[0].epoch_s,
      epoch_s_max: summed[summed.length - 1].epoch_s,
      repeats: g.length,
      points_per_s: mean("points_per_s"),
      local_fraction: mean("local_fraction"),
      messages: mean("messages"),
      bytes: mean("bytes"),
      quality: metric === "none" ? NaN : last[metric],
      quality_metric: metric,
      per_epoch_s: r.epochs.map((e) => e.epoch_s),
      per_epoch_quality: r.epochs.map((e) => (metric === "none" ? NaN : e[metric])),
      per_epoch_points_per_s: r.epochs.map((e) => e.points_per_s),
    });
  }
  // Speedup and vs lapse, as lapse bench computes them.
  const find = (mode: string, nodes: number | null, task: string) =>
    rows.find((x) => x.mode === mode && x.nodes === nodes && x.task === task);
  for (const row of rows) {
    if (row.nodes === null) continue;
    const one = find(row.mode, 1, row.task), lapse = find("lapse", row.nodes, row.task);
    if (one) row.speedup_1node = one.epoch_s / row.epoch_s;
    if (lapse) row.vs_lapse = row.epoch_s / lapse.epoch_s;
  }
  return rows.sort((a, b) =>
    a.task.localeCompare(b.task) || (a.nodes ?? 0) - (b.nodes ?? 0) || a.mode.localeCompare(b.mode)
  );
}
