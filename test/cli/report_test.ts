/**
 * `lapse report` as a user runs it (the real CLI as a subprocess): metrics files in, one HTML
 * file out; bad input is one error line and exit status 2.
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;

async function lapse(args: string[], cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, ...args],
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("lapse report: metrics files of several runs make one self-contained HTML page", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-report-cli-" });
  try {
    const run = (mode: string, nodes: number, s: number) =>
      [
        JSON.stringify({
          run: `${mode}-${nodes}`,
          config: { task: "mf", ps: { mode }, cluster: { nodes } },
        }),
        ...[0, 1, 2].map((e) =>
          JSON.stringify({ epoch: e, epoch_s: s, test_rmse: 1 / (e + 1), points_per_s: 1e5 / s })
        ),
      ].join("\n") + "\n";
    for (const [mode, base] of [["classic", 1], ["lapse", 0.2]] as const) {
      for (const n of [1, 2]) {
        await Deno.writeTextFile(`${dir}/${mode}-${n}.jsonl`, run(mode, n, base * n));
      }
    }
    const files = ["classic-1", "classic-2", "lapse-1", "lapse-2"].map((f) => `${f}.jsonl`);
    const r = await lapse(["report", ...files, "-o", "out/report.html"], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /report: out\/report\.html \(4 series point\(s\) from 4 run\(s\)\)/);
    const html = await Deno.readTextFile(`${dir}/out/report.html`);
    assert.equal((html.match(/<svg class="chart"/g) ?? []).length, 4);
    assert.match(html, /data-chart="epoch_time" data-series="2"/);
    assert.match(html, /data-chart="speedup" data-series="3"/, "2 modes and the linear line");

    const missing = await lapse(["report", "nope.jsonl"], dir);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /error: cannot read metrics file "nope\.jsonl"/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /, "no stack trace");
    await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"epoch":0}\n{oops\n');
    const bad = await lapse(["report", "bad.jsonl"], dir);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error: bad\.jsonl:2: not a JSON line/);
    const none = await lapse(["report"], dir);
    assert.equal(none.code, 2, "a metrics file is required");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
