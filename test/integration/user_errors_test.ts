/**
 * Issue 8 as a user meets it: data files that are missing or malformed, flags that conflict with
 * `--cluster`. Every case: exit 2, one `error:` line naming the problem and the fix, no stack.
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function lapse(args: string[], cwd: string): Promise<CliResult> {
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

/** Exit 2, one `error:` line matching every pattern, no stack frame, no other stderr line. */
function assertOneLine(r: CliResult, ...patterns: RegExp[]): string {
  const show = `exit ${r.code}\n--- stderr:\n${r.stderr}--- stdout:\n${r.stdout}`;
  assert.equal(r.code, 2, show);
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `expected only the error line on stderr\n${show}`);
  assert.match(lines[0], /^error: /);
  assert.doesNotMatch(r.stdout + r.stderr, /^\s+at /m, show);
  for (const p of patterns) assert.match(lines[0], p);
  return lines[0];
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lapse-user-errors-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const JOB = "task: mf\ndata: { file: ratings.csv, rows: 10, cols: 10 }\n" +
  "model: { rank: 2, epochs: 1 }\ncluster: { nodes: 2 }\n";

Deno.test("a missing data file is one line naming the file, the node and the fix", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/cfg`);
    await Deno.writeTextFile(`${dir}/cfg/job.yaml`, JOB);
    const r = await lapse(["train", "--config", "cfg/job.yaml", "--quiet"], dir);
    // Relative to the config file's folder, not to the working directory; found missing by
    // the driver, which reads the file for its size and id kind.
    assertOneLine(
      r,
      new RegExp(`data.file "${dir}/cfg/ratings.csv" not found on this machine \\(the driver\\)`),
      /fix data.file/,
    );
    // With size and id kind given, only the nodes read the file: they say which node.
    const n = await lapse(
      ["train", "--config", "cfg/job.yaml", "--quiet", "--set", "data.ids=numbers"],
      dir,
    );
    assertOneLine(
      n,
      new RegExp(`data.file "${dir}/cfg/ratings.csv" not found on node \\d`),
      /fix data.file/,
    );
  });
});

Deno.test("a malformed data line is one line naming file:line", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/job.yaml`, JOB);
    await Deno.writeTextFile(`${dir}/ratings.csv`, "1,2,3\n1,x,3\n");
    const r = await lapse(["train", "--config", "job.yaml", "--quiet"], dir);
    assertOneLine(r, new RegExp(`${dir}/ratings.csv:2: .*integers`));
  });
});

Deno.test("--nodes and --set cluster.nodes next to --cluster are errors", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/job.yaml`, JOB);
    await Deno.writeTextFile(
      `${dir}/cluster.yaml`,
      'nodes: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]\nworkers_per_node: 2\n',
    );
    const a = await lapse(
      ["train", "--config", "job.yaml", "--cluster", "cluster.yaml", "--nodes", "2"],
      dir,
    );
    assertOneLine(a, /--nodes 2 conflicts with --cluster/, /\(3\)/);
    const b = await lapse(
      ["train", "--config", "job.yaml", "--cluster", "cluster.yaml", "--set", "cluster.nodes=4"],
      dir,
    );
    assertOneLine(b, /--set cluster.nodes=4 conflicts with --cluster/);
    const c = await lapse(["train", "--config", "job.yaml", "--token-file", "t"], dir);
    assertOneLine(c, /--token-file needs --cluster/);
  });
});

Deno.test("an unknown --config is one line naming every shipped config (from tasks/*.yaml)", async () => {
  const { builtinConfigs } = await import("../../tasks/registry.ts");
  const names = builtinConfigs();
  for (const n of ["mf", "mf_ratings", "kge", "w2v"]) assert.ok(names.includes(n), names.join());
  await withDir(async (dir) => {
    const line = assertOneLine(
      await lapse(["train", "--config", "nope"], dir),
      /config file "nope" not found/,
      /--config NAME/,
    );
    assert.ok(line.includes(`shipped configs: ${names.join(", ")}`), line);
    // A near miss also gets a suggestion.
    assertOneLine(await lapse(["train", "--config", "mff"], dir), /did you mean mf\?/);
  });
});

Deno.test("--model on a folder that is not a model names what mf and kge folders hold", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/empty`);
    for (const m of ["empty", "missing"]) {
      assertOneLine(
        await lapse(["predict", "--model", m, "--row", "1"], dir),
        new RegExp(`--model ${m}: not a model folder`),
        /mf model holds model\.json, W\.npy, H\.npy/,
        /kge model holds meta\.json, entities\.npy, relations\.npy/,
        /lapse train --config FILE --out DIR/,
      );
    }
  });
});

Deno.test("lapse bench TASK --help lists only the modes that task runs (manual: mf only)", async () => {
  const modesLine = async (task: string) => {
    const r = await lapse(["bench", task, "--help"], Deno.cwd());
    assert.equal(r.code, 0, r.stderr);
    const line = (r.stdout + r.stderr).split("\n").find((l) => l.includes("modes to run:"));
    assert.ok(line !== undefined, r.stdout);
    return line.slice(line.indexOf("modes to run:"));
  };
  assert.match(await modesLine("mf"), /modes to run: plain, manual, lapse,/);
  for (const task of ["kge", "w2v"]) {
    const line = await modesLine(task);
    assert.match(line, /modes to run: plain, lapse, lapse_nolocalize, classic/, line);
    assert.doesNotMatch(line, /manual/, `${task}: ${line}`);
  }
  // Asking for it anyway still says why.
  await withDir(async (dir) => {
    assertOneLine(
      await lapse(["bench", "kge", "--modes", "manual", "--nodes", "1"], dir),
      /task kge has no manual mode/,
    );
  });
});
