/**
 * `lapse bench localize`: localize latency and batched remote pull/push throughput between two
 * nodes (task `pingpong`), next to raw loopback TCP measured in this process.
 *
 * @module
 */
import { quantile } from "../../core/stats.ts";
import { applySets } from "../../config/set_flags.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { PINGPONG_DEFAULTS } from "../../tasks/pingpong.ts";
import { loadTask } from "../../tasks/registry.ts";
import { HELP, parseCommandArgs, parseIntArg } from "../args.ts";
import { formatBytes, formatDuration, formatNumber, formatTable } from "../progress.ts";
import { fmt, positiveNumber, printJson, runOnLocalCluster } from "./harness.ts";
import { rawTcpBandwidth, rawTcpRequestReply, rawTcpRtt } from "./raw_tcp.ts";
const LOCALIZE_SPEC = {
  name: "bench localize",
  summary: "localize latency and batched remote pull/push throughput between two nodes",
  usage: "lapse bench localize [--set model.PARAM=VALUE ...] [--tcp-mib N] [--json]",
  options: {
    set: {
      type: "string",
      multiple: true,
      arg: "PATH=VALUE",
      doc: "override a pingpong parameter, e.g. model.batch=1000, model.pull_keys=10000",
    },
    "tcp-mib": {
      type: "string",
      arg: "N",
      default: "64",
      doc: "MiB pushed through the raw TCP baseline (in 1 MiB writes)",
    },
    "timeout-s": {
      type: "string",
      arg: "S",
      default: "300",
      doc: "stop the cluster run after S seconds",
    },
    json: { type: "boolean", doc: "print the rows as a JSON array (no table)" },
    verbose: { type: "boolean", short: "v", doc: "show the nodes' output" },
  },
  details: `Runs task pingpong (tasks/pingpong.ts) on a local cluster of 2 nodes x 1 worker in mode
lapse. Worker 1 localizes keys owned by node 0 and awaits each call (one key, then a batch of
model.batch keys); worker 0 localizes them back. Then worker 1 pulls and pushes model.pull_keys
remote keys of model.pull_dim floats in one call each, awaited one after the other. Latencies
are per call, from the worker's call to its completion (median p50 and p90 over the timed reps).

The raw TCP baseline runs in this process after the cluster has stopped: a loopback connection
between this thread and a worker thread, streaming --tcp-mib MiB in 1 MiB writes (MB/s), a
64-byte ping-pong (round-trip time), and 16-byte requests answered with as many bytes as one
batched pull moves (the shape of a pull with nothing but TCP in it; both sides reuse their
buffers). "vs raw" is PS / raw streaming: for latencies how many raw round trips one call
costs; for throughput the fraction of raw bandwidth reached (the budget is >= 0.5 for large
batches). "vs raw req/reply" compares with the request/reply figure instead.

Parameters (model.*, see tasks/pingpong.ts): ${
    Object.entries(PINGPONG_DEFAULTS).map(([k, x]) => `${k} ${x}`).join(", ")
  }.`,
} as const;

/** Runs `lapse bench localize`. */
export async function benchLocalize(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(LOCALIZE_SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  const mib = parseIntArg("--tcp-mib", v["tcp-mib"], { min: 1, max: 4096 });
  const timeout_s = positiveNumber("--timeout-s", v["timeout-s"]);
  const task = await loadTask("pingpong");
  const raw = applySets(
    { task: "pingpong", cluster: { nodes: 2, workers_per_node: 1 }, ps: { mode: "lapse" } },
    v.set,
  );
  const config = validateJobConfig(raw, task.schema);
  const m = config.model;
  const head = `lapse bench localize: 2 nodes x 1 worker, ps.mode ${config.ps.mode}, placement ` +
    `${config.ps.placement}; L: ${2 * m.batch} keys x ${m.dim} floats, P: ${2 * m.pull_keys} ` +
    `keys x ${m.pull_dim} floats; reps ${m.reps_one} (1 key) / ${m.reps_batch} (batch) after ` +
    `${m.warmup} warmup, ${m.pull_reps} (pull, push) after ${m.pull_warmup} warmup; ` +
    `throughput of the median call; raw TCP: ${mib} MiB in 1 MiB writes` +
    (v.set.length > 0 ? `; overrides: ${v.set.join(" ")}` : "");
  if (v.json) console.error(head);
  else console.log(head);

  console.error("[1/2] pingpong on a local cluster of 2 nodes ...");
  const run = await runOnLocalCluster(config, timeout_s, { verbose: v.verbose });
  if (run.status !== "ok") {
    console.error(
      `lapse bench localize: the cluster run ${
        run.status === "timeout" ? `timed out after ${timeout_s}s` : `failed: ${run.error}`
      }`,
    );
    return 1;
  }
  const r = run.epochs[0] ?? {};
  console.error("[2/2] raw TCP on loopback ...");
  const raw_mb_s = await rawTcpBandwidth(mib);
  const rtts = await rawTcpRtt(500);
  const rtt50 = quantile(rtts, 0.5), rtt90 = quantile(rtts, 0.9);
  const replyBytes = (r.pull_keys ?? m.pull_keys) * (r.pull_dim ?? m.pull_dim) * 4;
  const rr = await rawTcpRequestReply(replyBytes, 30);
  const rr50 = quantile(rr, 0.5);
  const rr_mb_s = (replyBytes * rr.length) / (rr.reduce((a, b) => a + b, 0) / 1000) / 1e6;

  const pullMb = (r.pull_keys ?? m.pull_keys) * (r.pull_dim ?? m.pull_dim) * 4 / 1e6;
  const rows: Record<string, unknown>[] = [];
  const lat = (what: string, key: string, keys: number) => {
    if (r[`${key}_p50_ms`] === undefined) return;
    const p50 = r[`${key}_p50_ms`];
    rows.push({
      measurement: what,
      p50_ms: p50,
      p90_ms: r[`${key}_p90_ms`],
      us_per_key: keys > 1 ? (p50 * 1000) / keys : undefined,
      raw_tcp: `rtt ${formatNumber(Number(rtt50.toPrecision(3)))}ms`,
      raw_tcp_rtt_p50_ms: rtt50,
      vs_raw: p50 / rtt50,
    });
  };
  lat("localize 1 key (node 0 -> 1)", "loc1", 1);
  lat("localize 1 key back (1 -> 0)", "back1", 1);
  lat("localize 1 key, back to back (0 -> 1)", "loc1nb", 1);
  lat(`localize ${m.batch} keys (0 -> 1)`, "locb", m.batch);
  lat(`localize ${m.batch} keys back (1 -> 0)`, "backb", m.batch);
  lat("pull 1 key (round trip)", "pull1", 1);
  const tput = (what: string, key: "pull" | "push") => {
    const mb_s = r[`${key}_mb_s`];
    if (mb_s === undefined) return;
    rows.push({
      measurement: what,
      p50_ms: r[`${key}_p50_ms`],
      p90_ms: r[`${key}_p90_ms`],
      us_per_key: (r[`${key}_p50_ms`] * 1000) / r.pull_keys,
      mb_s,
      raw_tcp: `${formatBytes(raw_mb_s * 1e6)}/s`,
      raw_tcp_mb_s: raw_mb_s,
      vs_raw: mb_s / raw_mb_s,
      raw_request_reply_mb_s: rr_mb_s,
      vs_request_reply: mb_s / rr_mb_s,
    });
  };
  const shape = `${r.pull_keys} keys x ${r.pull_dim} (${
    formatNumber(Number(pullMb.toPrecision(3)))
  } MB)`;
  tput(`pull ${shape}`, "pull");
  tput(`push ${shape}`, "push");
  for (const key of ["pull", "push"]) {
    const cold = r[`${key}_cold_p50_ms`];
    if (cold === undefined || !Number.isFinite(cold)) continue;
    const mb_s = replyBytes / (cold / 1000) / 1e6;
    rows.push({
      measurement: `  ${key}, first ${Math.min(10, m.pull_warmup)} calls (cold)`,
      p50_ms: cold,
      us_per_key: (cold * 1000) / r.pull_keys,
      mb_s,
      raw_tcp: `${formatBytes(raw_mb_s * 1e6)}/s`,
      vs_raw: mb_s / raw_mb_s,
      vs_request_reply: mb_s / rr_mb_s,
    });
  }
  rows.push({
    measurement: `raw TCP: 16 B request, ${
      formatNumber(Number((replyBytes / 1e6).toPrecision(3)))
    } MB reply`,
    p50_ms: rr50,
    p90_ms: quantile(rr, 0.9),
    mb_s: rr_mb_s,
    raw_tcp: `${formatBytes(raw_mb_s * 1e6)}/s`,
    raw_tcp_mb_s: raw_mb_s,
    vs_raw: rr_mb_s / raw_mb_s,
  });
  if (v.json) {
    printJson(rows.map((row) => ({ ...row, raw_tcp_rtt_p90_ms: rtt90 })));
    return 0;
  }
  const ms = fmt((x) => `${formatNumber(Number(x.toPrecision(3)))}ms`);
  console.log("");
  console.log(formatTable(rows, [
    "measurement",
    { key: "p50_ms", label: "p50", format: ms, align: "right" },
    { key: "p90_ms", label: "p90", format: ms, align: "right" },
    {
      key: "us_per_key",
      label: "per key",
      format: fmt((x) => `${formatNumber(Number(x.toPrecision(3)))}us`),
      align: "right",
    },
    {
      key: "mb_s",
      label: "throughput",
      format: fmt((x) => `${formatBytes(x * 1e6)}/s`),
      align: "right",
    },
    { key: "raw_tcp", label: "raw TCP", align: "right" },
    {
      key: "vs_raw",
      label: "vs raw",
      format: (x: unknown, row: Record<string, unknown>) =>
        typeof x !== "number" || !Number.isFinite(x)
          ? "-"
          : row.mb_s !== undefined
          ? `${x.toFixed(2)} of raw`
          : `${formatNumber(Number(x.toPrecision(3)))} rtts`,
      align: "right",
    },
    {
      key: "vs_request_reply",
      label: "vs raw req/reply",
      format: fmt((x) => x.toFixed(2)),
      align: "right",
    },
  ]));
  console.log(
    `\nraw TCP loopback (this process and a worker thread, buffers reused): ${
      formatBytes(raw_mb_s * 1e6)
    }/s streaming ${mib} MiB in 1 MiB writes, 64-byte round trip p50 ${
      formatNumber(Number(rtt50.toPrecision(3)))
    }ms p90 ${formatNumber(Number(rtt90.toPrecision(3)))}ms; cluster run ${
      formatDuration(run.wall_s)
    }`,
  );
  return 0;
}
