import assert from "node:assert/strict";
import { sampleRows } from "./report_fixtures.ts";
import { parseMetrics, renderReport, rowsFromRuns } from "../../driver/report.ts";

/** Chart name -> [series, marks] as drawn in the HTML. */
function drawn(html: string): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const m of html.matchAll(/<svg class="chart" data-chart="(\w+)"[\s\S]*?<\/svg>/g)) {
    out.set(m[1], [
      (m[0].match(/<path class="series"/g) ?? []).length,
      (m[0].match(/<circle class="mark"/g) ?? []).length,
    ]);
  }
  return out;
}

Deno.test("report: four charts with one series per mode (plus the linear line), one mark per point", () => {
  const html = renderReport({ title: "t", header: ["h"], rows: sampleRows() });
  const d = drawn(html);
  // epoch_time: 3 modes x 3 node counts + plain as a reference line over 3 node counts.
  assert.deepEqual(d.get("epoch_time"), [4, 12]);
  // speedup: 3 modes x 3 node counts + linear (3 points).
  assert.deepEqual(d.get("speedup"), [4, 12]);
  // quality: each mode at its largest node count, and plain: 4 series x 3 epochs.
  assert.deepEqual(d.get("quality"), [4, 12]);
  // throughput: plain has no per-epoch throughput.
  assert.deepEqual(d.get("throughput"), [3, 9]);
  assert.match(html, /data-chart="epoch_time" data-series="4"/);
  assert.match(html, /\(log scale\)/, "epoch times 40x apart: log scale");
});

Deno.test("report: self-contained (no script, no external reference), names escaped", () => {
  const rows = sampleRows();
  rows[1].mode = "<b>x</b>";
  const html = renderReport({ title: "a & b", header: ["<i>"], rows });
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /\b(src|href)=/i);
  assert.doesNotMatch(html, /<b>x<\/b>|<i>/);
  assert.match(html, /&#60;b&#62;x&#60;\/b&#62;/);
  assert.match(html, /<title>a &#38; b<\/title>/);
});

Deno.test("report: a chart without data says so instead of drawing nothing", () => {
  const html = renderReport({
    title: "t",
    header: [],
    rows: [{ task: "mf", mode: "lapse", nodes: 2, epoch_s: 1 }],
  });
  const d = drawn(html);
  assert.deepEqual(d.get("speedup"), [0, 0]);
  assert.match(html, /no mode ran on 1 node/);
});

Deno.test("metrics files: header lines split runs; runs of one mode and node count form one row", () => {
  const epoch = (e: number, s: number, q: number) =>
    JSON.stringify({ epoch: e, epoch_s: s, test_rmse: q, points_per_s: 10 / s });
  const text = [
    JSON.stringify({
      run: "a",
      config: { task: "mf", ps: { mode: "classic" }, cluster: { nodes: 2 } },
    }),
    epoch(0, 2, 0.9),
    epoch(1, 2, 0.5),
    JSON.stringify({ summary: { wall_s: 4 } }),
    JSON.stringify({
      run: "b",
      config: { task: "mf", ps: { mode: "classic" }, cluster: { nodes: 2 } },
    }),
    epoch(0, 4, 0.9),
    epoch(1, 4, 0.5),
    JSON.stringify({
      run: "c",
      config: { task: "mf", ps: { mode: "lapse" }, cluster: { nodes: 2 } },
    }),
    epoch(0, 1, 0.9),
    "",
  ].join("\n");
  const runs = parseMetrics("m.jsonl", text);
  assert.deepEqual(runs.map((r) => [r.source, r.mode, r.nodes, r.epochs.length]), [
    ["m.jsonl", "classic", 2, 2],
    ["m.jsonl#2", "classic", 2, 2],
    ["m.jsonl#3", "lapse", 2, 1],
  ]);
  // A file without a header line is one run, labelled by its name.
  const plain = parseMetrics("old.jsonl", epoch(0, 3, 0.7));
  assert.equal(plain.length, 1);
  const rows = rowsFromRuns([...runs, ...plain]);
  const classic = rows.find((r) => r.mode === "classic")!;
  assert.equal(classic.repeats, 2);
  assert.equal(classic.epoch_s_min, 2);
  assert.equal(classic.epoch_s_max, 4);
  assert.equal(classic.vs_lapse, 2, "the lower median (2 s) against lapse's 1 s");
  assert.equal(rows.find((r) => r.mode === "old.jsonl")?.quality, 0.7);
  assert.throws(
    () => parseMetrics("bad.jsonl", '{"epoch": 0}\nnot json'),
    /bad\.jsonl:2: not a JSON line/,
  );
});
