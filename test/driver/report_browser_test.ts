/**
 * The HTML report in a real browser: headless Chromium (Debian's `chromium` package) driven by
 * playwright-core. Asserts no console error, no failed (or any outside) request, and that every
 * chart drew each of its series as a visible path with its marks. Without Chromium it says so
 * in one line and is skipped (`apt-get install -y chromium`; .ci/run installs it when it can).
 */
import assert from "node:assert/strict";
import { renderReport } from "../../driver/report.ts";
import { sampleRows } from "./report_fixtures.ts";

const CHROMIUM = Deno.env.get("LAPSE_CHROMIUM") ?? "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

function haveChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

const have = haveChromium();
if (!have) {
  console.log(
    `report browser test skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`,
  );
}

Deno.test({
  name: "report in headless Chromium: no console error, no request, every chart drew its series",
  ignore: !have,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { chromium } = await import("playwright-core");
    const dir = await Deno.makeTempDir({ prefix: "lapse-report-browser-" });
    const file = `${dir}/report.html`;
    await Deno.writeTextFile(file, renderReport({ title: "t", header: ["h"], rows: sampleRows() }));
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: FLAGS,
      timeout: 120_000,
    });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      const requests: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") problems.push(`console: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("requestfailed", (r) => problems.push(`failed request: ${r.url()}`));
      page.on("request", (r) => requests.push(r.url()));
      const url = `file://${file}`;
      await page.goto(url, { waitUntil: "load", timeout: 120_000 });
      const charts = await page.$$eval("svg.chart", (svgs: any[]) =>
        svgs.map((svg) => {
          const paths: any[] = [...svg.querySelectorAll("path.series")];
          return {
            name: svg.getAttribute("data-chart"),
            declared: Number(svg.getAttribute("data-series")),
            // A series was drawn if its path has length and a box on the page.
            drawn: paths.filter((p: any) => {
              const b = p.getBoundingClientRect();
              return p.getTotalLength() > 0 && b.width > 0;
            }).length,
            marks: svg.querySelectorAll("circle.mark").length,
            width: svg.getBoundingClientRect().width,
          };
        }));
      assert.deepEqual(problems, [], "console errors or failed requests");
      assert.deepEqual(requests, [url], "the page loads nothing but itself");
      assert.deepEqual(
        charts.map((c) => [c.name, c.declared, c.drawn, c.marks]),
        [
          ["epoch_time", 4, 4, 12],
          ["speedup", 4, 4, 12],
          ["quality", 4, 4, 12],
          ["throughput", 3, 3, 9],
        ],
      );
      for (const c of charts) assert.ok(c.width > 100, `chart ${c.name} is ${c.width}px wide`);
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
