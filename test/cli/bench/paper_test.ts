import assert from "node:assert/strict";
import { compactTable, headline, machineLine, markdownTable } from "../../../cli/bench/paper.ts";

const rows = [
  { mode: "plain", nodes: 1, in_process: true, epoch_s: 0.1, status: "ok", quality: 0.2 },
  { mode: "classic", nodes: 4, epoch_s: 4, status: "ok", vs_lapse: 8, quality_metric: "test_rmse" },
  { mode: "stale", nodes: 4, epoch_s: 2, status: "ok", repeats: 3, epoch_s_min: 1, epoch_s_max: 3 },
  { mode: "lapse", nodes: 4, epoch_s: 0.5, status: "ok", local_fraction: 0.999, bytes: 2e6 },
  { mode: "classic_remote", nodes: 4, epoch_s: NaN, status: "timeout 300s (0/3 epochs)" },
];

Deno.test("bench:paper summary: one markdown row per bench row; the headline compares lapse on the most nodes", () => {
  const md = markdownTable(rows).split("\n");
  assert.equal(md.length, 2 + rows.length);
  assert.match(md[2], /^\| plain \| 1 process \| 0\.1 \|/);
  assert.match(md[4], /\| stale \| 4 \| 2 \(1-3\) \|/);
  assert.match(md[5], /\| 99\.9% \|/);
  assert.match(md[5], /\| 2 \|/, "bytes in MB");
  assert.match(md[6], /\| classic_remote \| 4 \| timeout \|/);
  assert.equal(
    headline(rows),
    "On 4 nodes lapse is 8x vs classic, 4x vs stale (epoch time ratio).",
  );
  assert.match(machineLine(), /UTC; .* cores, load average [\d.]+ [\d.]+ [\d.]+; Deno \d/);
});

Deno.test("bench:paper compact table: one line per task and mode, epoch time per node count", () => {
  const t = compactTable({ mf: rows }).split("\n");
  assert.match(t[0], /\| task \| mode \| epoch s, 4 nodes \| vs lapse \(4\) \|/);
  assert.equal(t.length, 2 + 5);
  assert.match(t[2], /^\| mf \| plain \(1 process\) \|/);
  assert.match(t[3], /^\| mf \| classic \| 4 \| 8x \|/);
  assert.match(t[6], /^\| mf \| classic_remote \| timeout \|/);
});
