/**
 * Output a person can read (issue 8): pscheck's PASS line, one "interrupted" line on Ctrl-C,
 * timestamped node lifecycle lines, no localize directives in the banner of classic modes,
 * the column legend.
 */
import assert from "node:assert/strict";
import { freePorts } from "./helpers.ts";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const DEADLINE_MS = 120_000;

function spawn(args: string[], cwd?: string, env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, ...args],
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function run(args: string[]) {
  const child = spawn(args);
  const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
  const o = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

/** Reads lines of `stream` into `lines` until it ends; `onLine` sees each. */
async function collect(
  stream: ReadableStream<Uint8Array>,
  lines: string[],
  onLine: (l: string) => void = () => {},
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const l = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      lines.push(l);
      onLine(l);
    }
  }
  if (rest) lines.push(rest);
}

Deno.test("pscheck ends with a PASS line; classic banners show no localize directives", async () => {
  const r = await run(["train", "--config", "pscheck", "--quiet", "--set", "ps.mode=classic"]);
  assert.equal(r.code, 0, r.err + r.out);
  const lines = r.out.trim().split("\n");
  assert.match(lines[lines.length - 1], /^PASS: pscheck/);
  assert.match(lines[0], /ps\.mode classic, \d+ node\(s\) x \d+ worker\(s\), on /);
  assert.doesNotMatch(lines[0], /localize/);
});

Deno.test("the mf legend explains the columns once, before the first epoch", async () => {
  const r = await run([
    "train",
    "--config",
    "mf",
    "--epochs",
    "1",
    "--set",
    "data.generate.nnz=20000",
  ]);
  assert.equal(r.code, 0, r.err);
  const legend = r.out.split("\n").filter((l) => l.startsWith("columns: "));
  assert.equal(legend.length, 1);
  assert.match(legend[0], /train_loss = mean squared error/);
  assert.match(legend[0], /msgs, bytes = traffic between nodes in that epoch/);
});

Deno.test("Ctrl-C prints one interrupted line, exit 130", async () => {
  const child = spawn(["train", "--config", "mf", "--epochs", "500", "--quiet"]);
  const out: string[] = [], err: string[] = [];
  let sent = false;
  const outDone = collect(child.stdout, out, (l) => {
    if (!sent && l.startsWith("epoch 0 ")) {
      sent = true;
      child.kill("SIGINT");
    }
  });
  const errDone = collect(child.stderr, err);
  const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
  const status = await child.status;
  clearTimeout(timer);
  await Promise.all([outDone, errDone]);
  const show = `stdout:\n${out.join("\n")}\nstderr:\n${err.join("\n")}`;
  assert.ok(sent, show);
  assert.equal(status.code, 130, show);
  const after = err.filter((l) => !/^node \d+: mf worker/.test(l));
  assert.deepEqual(after, ["interrupted: stopping the local cluster"], show);
});

Deno.test("a node's log lines carry a timestamp and its lifecycle", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-output-" });
  try {
    const [port] = freePorts(1);
    await Deno.writeTextFile(`${dir}/c.yaml`, `nodes: ["127.0.0.1:${port}"]\n`);
    const child = spawn(["serve", "--cluster", "c.yaml", "--node", "0"], dir, {
      LAPSE_TOKEN: "t0ken-for-the-test",
    });
    const err: string[] = [];
    const errDone = collect(child.stderr, err, (l) => {
      if (l.includes("ready for jobs")) child.kill("SIGTERM");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
    const status = await child.status;
    clearTimeout(timer);
    await errDone;
    await child.stdout.cancel();
    assert.equal(status.code, 0, err.join("\n"));
    const stamp = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} node 0: /;
    for (const l of err) assert.match(l, stamp);
    const text = err.join("\n");
    for (const p of [/listening on/, /ready for jobs/, /stopping/, /stopped/]) {
      assert.match(text, p);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
