import assert from "node:assert/strict";
import {
  EpochProgress,
  formatBytes,
  formatCount,
  formatDuration,
  formatMetrics,
  formatNumber,
  formatRate,
  formatTable,
  MetricsWriter,
} from "../../cli/progress.ts";

Deno.test("formatMetrics: fixed order and formatting", () => {
  const line = formatMetrics(3, {
    bytes: 3.4e6,
    messages: 1200,
    local_fraction: 0.998,
    points_per_s: 1.1e6,
    epoch_s: 1.82,
    test_rmse: 0.10412,
    zeta: 2,
    alpha: 0.5,
    loss: 0.01234,
  });
  assert.equal(
    line,
    "epoch 3  loss 0.01234  test_rmse 0.1041  alpha 0.5  zeta 2  time 1.82s  points/s 1.10M" +
      "  local 99.8%  msgs 1.2k  bytes 3.4MB",
  );
  assert.equal(formatMetrics(1, {}), "epoch 1");
  assert.equal(formatMetrics(2, { local_fraction: 0.99996 }), "epoch 2  local >99.9%");
  assert.equal(formatMetrics(2, { local_fraction: 1 }), "epoch 2  local 100.0%");
  assert.equal(
    formatMetrics(4, { "hits@10": 0.9, mrr: 0.5, "hits@1": 0.3 }),
    "epoch 4  mrr 0.5  hits@1 0.3  hits@10 0.9",
  );
});

Deno.test("number formats", () => {
  assert.equal(formatNumber(0.0123), "0.0123");
  assert.equal(formatNumber(0.104123), "0.1041");
  assert.equal(formatNumber(12.5), "12.5");
  assert.equal(formatNumber(0.000012345), "1.23e-5");
  assert.equal(formatNumber(123456.7), "123457");
  assert.equal(formatNumber(42), "42");
  assert.equal(formatNumber(0), "0");
  assert.equal(formatNumber(NaN), "nan");
  assert.equal(formatRate(1.1e6), "1.10M");
  assert.equal(formatRate(999.6), "1.00k");
  assert.equal(formatRate(12.34), "12.3");
  assert.equal(formatCount(1234), "1.2k");
  assert.equal(formatCount(34_000), "34k");
  assert.equal(formatCount(950), "950");
  assert.equal(formatCount(2.5e9), "2.5G");
  assert.equal(formatBytes(3.4e6), "3.4MB");
  assert.equal(formatBytes(512), "512B");
  assert.equal(formatDuration(1.823), "1.82s");
  assert.equal(formatDuration(12.34), "12.3s");
  assert.equal(formatDuration(125), "2m05s");
  assert.equal(formatDuration(3725), "1h02m");
});

function fakeProgress(terminal: boolean) {
  let t = 0;
  const out: string[] = [];
  const p = new EpochProgress({
    terminal,
    write: (s) => void out.push(s),
    now: () => t,
    columns: 100,
  });
  return { p, out, advance: (ms: number) => t += ms };
}

Deno.test("EpochProgress on a terminal: one redrawn line, throttled, cleared at the end", () => {
  const { p, out, advance } = fakeProgress(true);
  p.start(3, 1_000_000);
  assert.equal(out.length, 1);
  assert.ok(out[0].endsWith("\x1b[K"), "clears the rest of the line");
  assert.match(out[0].slice(0, -3), /^\repoch 3 \[> +\] +0% {2}0\/1\.0M points$/);
  advance(50);
  p.add(100_000);
  assert.equal(out.length, 1, "no redraw within 100 ms");
  advance(950);
  p.add(150_000); // 250k points after 1 s
  assert.equal(out.length, 2);
  const line = out[1];
  assert.ok(line.startsWith("\r") && !line.includes("\n"));
  assert.match(line, /epoch 3 \[=+> +\] +25% {2}250k\/1\.0M points {2}250k points\/s {2}ETA 0:03/);
  assert.ok(line.length - "\r\x1b[K".length <= 99, "fits the terminal");
  p.log("node 1: hello");
  assert.equal(out[2], "\r\x1b[Knode 1: hello\n");
  assert.match(out[3], /^\repoch 3 /, "the bar is redrawn after a log line");
  p.end();
  assert.equal(out.at(-1), "\r\x1b[K");
});

Deno.test("EpochProgress without a terminal: a line per 5 s at most", () => {
  const { p, out, advance } = fakeProgress(false);
  p.start(1);
  assert.equal(out.length, 0);
  for (let i = 0; i < 40; i++) {
    advance(250); // 10 s in all
    p.add(1000);
  }
  assert.equal(out.length, 2);
  assert.equal(out[0], "epoch 1: (20k points, 4.00k points/s)\n");
  p.setTotal(80_000);
  advance(5000);
  p.add(0);
  assert.equal(out[2], "epoch 1: 50% (40k/80k points, 2.67k points/s, ETA 0:15)\n");
  p.end();
  assert.equal(out.length, 3, "end() prints nothing without a terminal: the metrics line follows");
  p.log("plain log");
  assert.equal(out[3], "plain log\n");
});

Deno.test("MetricsWriter appends one JSON object per line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/run.jsonl`;
    const w = await MetricsWriter.open(path);
    w.writeEpoch(1, { loss: 0.5, time: 1.25 });
    // Each line is on disk as soon as it is written.
    assert.equal(await Deno.readTextFile(path), '{"epoch":1,"loss":0.5,"time":1.25}\n');
    w.writeEpoch(2, { loss: NaN });
    w.close();
    const again = await MetricsWriter.open(path);
    again.write({ final: true });
    again.close();
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines, [{ epoch: 1, loss: 0.5, time: 1.25 }, { epoch: 2, loss: null }, {
      final: true,
    }]);
    assert.throws(() => again.write({}), /closed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MetricsWriter.open on an unwritable path is a user error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    await assert.rejects(
      () => MetricsWriter.open(`${dir}/file/run.jsonl`),
      (e: Error) => {
        assert.match(e.message, /^cannot write metrics file ".*\/file\/run\.jsonl"/);
        assert.equal((e as any)[Symbol.for("lapse.userError")], true);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("formatTable aligns columns, numbers to the right", () => {
  const t = formatTable(
    [
      { mode: "lapse", nodes: 4, time: 1.5, speedup: 20.8 },
      { mode: "classic", nodes: 4, time: 31.25 },
    ],
    ["mode", "nodes", { key: "time", label: "time (s)" }, {
      key: "speedup",
      format: (v) => (v === undefined ? "" : `${v}x`),
      align: "right",
    }],
  );
  assert.equal(
    t,
    [
      "mode     nodes  time (s)  speedup",
      "-------  -----  --------  -------",
      "lapse        4       1.5    20.8x",
      "classic      4     31.25",
    ].join("\n"),
  );
  assert.equal(formatTable([{ a: null }], ["a", "b"]), "a  b\n-  -\n-  -");
});
