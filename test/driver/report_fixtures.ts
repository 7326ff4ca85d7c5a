/** Rows shared by the report tests. */
import type { ReportRow } from "../../driver/report.ts";

/** Bench-like rows: plain, and 3 modes on 1, 2 and 4 nodes, 3 epochs each. */
export function sampleRows(): ReportRow[] {
  const rows: ReportRow[] = [{
    task: "mf",
    mode: "plain",
    nodes: null,
    epoch_s: 0.05,
    quality: 0.2,
    quality_metric: "test_rmse",
    per_epoch_s: [0.06, 0.05, 0.05],
    per_epoch_quality: [0.8, 0.4, 0.2],
  }];
  const base: Record<string, number> = { lapse: 0.1, classic: 1, stale: 0.6 };
  for (const nodes of [1, 2, 4]) {
    for (const mode of ["classic", "stale", "lapse"]) {
      const t = base[mode] * (mode === "lapse" ? 1 / nodes : nodes);
      rows.push({
        task: "mf",
        mode,
        nodes,
        epoch_s: t,
        epoch_s_min: t * 0.9,
        epoch_s_max: t * 1.2,
        points_per_s: 1e5 / t,
        quality: 0.2,
        quality_metric: "test_rmse",
        per_epoch_s: [t, t, t],
        per_epoch_quality: [0.8, 0.4, 0.2],
        per_epoch_points_per_s: [1e5 / t, 1e5 / t, 1e5 / t],
      });
    }
  }
  return rows;
}
