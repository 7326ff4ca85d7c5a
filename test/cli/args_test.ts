import assert from "node:assert/strict";
import {
  type CommandSpec,
  HELP,
  helpText,
  parseCommandArgs,
  parseHostPort,
  parseIntArg,
  parseIntListArg,
} from "../../cli/args.ts";
import { isUserError, UsageError, userError } from "../../core/errors.ts";
import { reportError } from "../../cli/errors.ts";
import { ConfigError } from "../../core/errors.ts";

const TRAIN = {
  name: "train",
  summary: "train a model",
  usage: "lapse train --config FILE [options]",
  options: {
    config: { type: "string", short: "c", arg: "FILE", doc: "job config (YAML)" },
    set: { type: "string", multiple: true, arg: "PATH=VALUE", doc: "override a config key" },
    metrics: { type: "string", arg: "FILE", doc: "append per-epoch metrics (JSON lines)" },
    quiet: { type: "boolean", short: "q", doc: "no progress bar" },
    nodes: { type: "string", default: "2", doc: "number of nodes" },
  },
} as const satisfies CommandSpec;

function usageFails(fn: () => unknown, pattern: RegExp): UsageError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
    assert.match(e.message, pattern);
    return e;
  }
  assert.fail(`expected a UsageError matching ${pattern}`);
}

Deno.test("parseCommandArgs: values, defaults, repeated flags", () => {
  const r = parseCommandArgs(TRAIN, ["-c", "mf.yaml", "--set", "a=1", "--set=b=2", "-q"]);
  assert.notEqual(r, HELP);
  if (r === HELP) return;
  assert.equal(r.values.config, "mf.yaml");
  assert.deepEqual(r.values.set, ["a=1", "b=2"]);
  assert.equal(r.values.quiet, true);
  assert.equal(r.values.metrics, undefined);
  assert.equal(r.values.nodes, "2");
  // The value types follow the option specs.
  const typed: { c: string | undefined; s: string[]; q: boolean; n: string } = {
    c: r.values.config,
    s: r.values.set,
    q: r.values.quiet,
    n: r.values.nodes,
  };
  assert.equal(typed.n, "2");
  const inline = parseCommandArgs({
    name: "serve",
    summary: "run a node",
    usage: "[options]",
    options: { listen: { type: "string", doc: "address" }, verbose: { type: "boolean", doc: "v" } },
  }, ["--verbose"]);
  if (inline === HELP) return assert.fail("no help expected");
  const v: boolean = inline.values.verbose;
  const l: string | undefined = inline.values.listen;
  assert.deepEqual([v, l], [true, undefined]);
  const d = parseCommandArgs(TRAIN, []);
  if (d === HELP) return assert.fail("no help expected");
  assert.deepEqual(d.values.set, []);
  assert.equal(d.values.quiet, false);
});

Deno.test("parseCommandArgs: an unknown flag is a UsageError with usage line and help hint", () => {
  const e = usageFails(
    () => parseCommandArgs(TRAIN, ["--confg", "x.yaml"]),
    /^unknown option --confg \(did you mean --config\?\)\n/,
  );
  assert.match(e.message, /\nusage: lapse train --config FILE \[options\]\n/);
  assert.match(e.message, /run "lapse train --help" for all options$/);
  usageFails(() => parseCommandArgs(TRAIN, ["-x"]), /^unknown option -x\n/);
});

Deno.test("parseCommandArgs: missing values, values on booleans, positionals", () => {
  usageFails(
    () => parseCommandArgs(TRAIN, ["--config"]),
    /^option --config needs a value \(--config FILE\)/,
  );
  usageFails(
    () => parseCommandArgs(TRAIN, ["--config", "--quiet"]),
    /^option --config needs a value/,
  );
  usageFails(
    () => parseCommandArgs(TRAIN, ["--quiet=yes"]),
    /^option --quiet does not take a value/,
  );
  usageFails(() => parseCommandArgs(TRAIN, ["extra"]), /^unexpected argument "extra"/);
});

Deno.test("parseCommandArgs: positional limits", () => {
  const bench = {
    name: "bench",
    summary: "benchmark",
    usage: "TASK [options]",
    positionals: { min: 1, max: 1 },
    options: {},
  } satisfies CommandSpec;
  const r = parseCommandArgs(bench, ["mf"]);
  assert.ok(r !== HELP && r.positionals[0] === "mf");
  const e = usageFails(() => parseCommandArgs(bench, []), /needs 1 argument, got 0/);
  assert.match(e.message, /usage: lapse bench TASK \[options\]/);
  usageFails(() => parseCommandArgs(bench, ["mf", "kge"]), /unexpected argument "kge"/);
});

Deno.test("--help and -h print the help text and return HELP", () => {
  for (const args of [["--help"], ["-h"], ["--bogus", "--help"]]) {
    let printed = "";
    const r = parseCommandArgs(TRAIN, args, (t) => printed += t);
    assert.equal(r, HELP);
    assert.equal(printed, helpText(TRAIN));
  }
});

Deno.test("help text lists usage, summary and every option with its doc", () => {
  const h = helpText(TRAIN);
  assert.match(h, /^lapse train: train a model\n/);
  assert.match(h, /\nusage: lapse train --config FILE \[options\]\n/);
  assert.match(h, /\n {2}-c, --config FILE {2,}job config \(YAML\)\n/);
  assert.match(h, /\n {6}--set PATH=VALUE {2,}override a config key \(repeatable\)\n/);
  assert.match(h, /--nodes VALUE {2,}number of nodes \(default: 2\)/);
  assert.match(h, /-q, --quiet {2,}no progress bar/);
  assert.match(h, /-h, --help {2,}show this help$/);
});

Deno.test("parseHostPort", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:7000"), { host: "127.0.0.1", port: 7000 });
  assert.deepEqual(parseHostPort("[::1]:80"), { host: "::1", port: 80 });
  assert.deepEqual(parseHostPort("0.0.0.0:0", { allowPortZero: true }), {
    host: "0.0.0.0",
    port: 0,
  });
  usageFails(
    () => parseHostPort("127.0.0.1", { flag: "--listen" }),
    /^--listen: no port in "127\.0\.0\.1" \(expected host:port, e\.g\. 127\.0\.0\.1:7000\)$/,
  );
  usageFails(() => parseHostPort("host:99999"), /port 99999 is out of range/);
  usageFails(() => parseHostPort("127.0.0.1:0"), /port 0 is out of range/);
});

Deno.test("parseIntArg and parseIntListArg", () => {
  assert.equal(parseIntArg("--nodes", "4", { min: 1 }), 4);
  usageFails(() => parseIntArg("--nodes", "two"), /^--nodes: expected an integer, got "two"$/);
  usageFails(
    () => parseIntArg("--nodes", "0", { min: 1, max: 64 }),
    /expected an integer from 1 to 64, got "0"/,
  );
  usageFails(() => parseIntArg("--nodes", "1.5"), /expected an integer/);
  assert.deepEqual(parseIntListArg("--nodes", "1, 2,4"), [1, 2, 4]);
  usageFails(() => parseIntListArg("--nodes", "1,,2"), /comma-separated list/);
});

Deno.test("reportError: user errors are one red line and status 2; bugs print the stack, 1", () => {
  const out: string[] = [];
  const sink = (color: boolean) => ({ write: (t: string) => void out.push(t), color });
  assert.equal(reportError(new UsageError("bad flag\nusage: lapse x"), sink(false)), 2);
  assert.equal(out.pop(), "error: bad flag\nusage: lapse x\n");
  assert.equal(reportError(new ConfigError("f.yaml:3: nope"), sink(true)), 2);
  assert.equal(out.pop(), "\x1b[31merror: f.yaml:3: nope\x1b[0m\n");
  assert.equal(reportError(userError("no data"), sink(false)), 2);
  assert.equal(out.pop(), "error: no data\n");
  const marked = Object.assign(new Error("marked"), { [Symbol.for("lapse.userError")]: true });
  assert.ok(isUserError(marked));
  assert.equal(reportError(new TypeError("oops"), sink(false)), 1);
  const bug = out.pop()!;
  assert.match(bug, /^error: internal error/);
  assert.match(bug, /TypeError: oops\n\s+at /);
  assert.ok(!isUserError(new Error("plain")));
});

async function runScript(body: string): Promise<{ code: number; stderr: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/main.ts`;
    const errors = new URL("../../cli/errors.ts", import.meta.url).href;
    const core = new URL("../../core/errors.ts", import.meta.url).href;
    await Deno.writeTextFile(
      file,
      `import { runMain } from "${errors}";\nimport { UsageError } from "${core}";\n${body}\n`,
    );
    const config = new URL("../../deno.json", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--config", config, file],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("runMain exits 0, the returned status, 2 on a user error, 1 on a bug", async () => {
  assert.equal((await runScript("runMain(async () => {});")).code, 0);
  assert.equal((await runScript("runMain(async () => 3);")).code, 3);
  const user = await runScript('runMain(async () => { throw new UsageError("bad flag"); });');
  assert.equal(user.code, 2);
  assert.equal(user.stderr, "error: bad flag\n");
  const bug = await runScript('runMain(async () => { throw new RangeError("boom"); });');
  assert.equal(bug.code, 1);
  assert.match(bug.stderr, /RangeError: boom\n\s+at /);
});
