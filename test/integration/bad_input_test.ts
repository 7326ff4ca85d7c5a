/**
 * The CLI on bad input, as a user meets it: the real `lapse` command as a subprocess. Every
 * mistake of the user or of the surroundings (a flag, a config, a port in use, a wrong token, a
 * node that is down) must end with exit status 2 and one `error:` line that names the problem,
 * never a stack trace (a stack trace means a bug in lapse).
 */
import assert from "node:assert/strict";
import { freePorts, serveArgs } from "./helpers.ts";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const PSCHECK_YAML = new URL("../../tasks/pscheck.yaml", import.meta.url).pathname;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `lapse ARGS` (cli/main.ts) to its end; `env` adds to the environment. */
async function lapse(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Exit status 2; exactly one `error:` line, matching every pattern; no stack frame anywhere.
 * Returns the error line.
 */
function assertUserError(r: CliResult, ...patterns: (RegExp | string)[]): string {
  const all = `${r.stdout}\n${r.stderr}`;
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  const show = `exit ${r.code}\n--- stderr:\n${r.stderr}--- stdout:\n${r.stdout}`;
  assert.equal(r.code, 2, `expected exit status 2\n${show}`);
  assert.equal(errors.length, 1, `expected one error: line\n${show}`);
  assert.doesNotMatch(all, /^\s+at /m, `a stack trace\n${show}`);
  assert.doesNotMatch(all, /internal error/, show);
  for (const p of patterns) {
    if (typeof p === "string") assert.ok(errors[0].includes(p), `"${p}" not in: ${errors[0]}`);
    else assert.match(errors[0], p);
  }
  return errors[0];
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lapse-bad-input-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Starts `lapse serve` (its stderr is collected; `stop()` ends it and returns what it printed).
 * `listening` resolves once it listens (drivers and nodes also retry until connect_timeout_ms).
 */
function startNode(
  clusterFile: string,
  node: number,
  token: string,
): { child: Deno.ChildProcess; listening: Promise<void>; stop(): Promise<string> } {
  const child = new Deno.Command(Deno.execPath(), {
    args: serveArgs(clusterFile, node),
    cwd: ROOT,
    env: { NO_COLOR: "1", LAPSE_TOKEN: token },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let listened = () => {};
  const listening = new Promise<void>((resolve) => listened = resolve);
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      if (text.includes("listening on")) listened();
    }
    listened(); // it exited: whoever waits finds out from its status
  })();
  return {
    child,
    listening,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited already */ }
      await child.status;
      await rest;
      return text;
    },
  };
}

// --- lapse train: flags and configs -----------------------------------------------------------

Deno.test("train --help exits 0 and lists the options", async () => {
  const r = await lapse(["train", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  for (const opt of ["--config", "--cluster", "--set", "--nodes", "--workers", "--metrics"]) {
    assert.ok(r.stdout.includes(opt), `${opt} missing from:\n${r.stdout}`);
  }
  assert.equal(r.stderr, "");
});

Deno.test("train: an unknown flag", async () => {
  const r = await lapse(["train", "--config", PSCHECK_YAML, "--nodez", "2"]);
  assertUserError(r, "unknown option --nodez", "did you mean --nodes?");
});

Deno.test("train: a config with an unknown key names the key path and the line", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/bad.yaml`;
    await Deno.writeTextFile(file, "task: pscheck\ndata: {}\nmodel:\n  keys: 8\n  roundz: 3\n");
    const r = await lapse(["train", "--config", file]);
    assertUserError(r, `${file}:5:`, "unknown key model.roundz", "did you mean model.rounds?");
  });
});

Deno.test("train: a config value of the wrong type", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/bad.yaml`;
    await Deno.writeTextFile(file, "task: pscheck\ndata: {}\nmodel:\n  keys: many\n");
    const r = await lapse(["train", "--config", file]);
    assertUserError(r, `${file}:4:`, "model.keys", "expected an integer", '"many"');
  });
});

Deno.test("train: a missing config file", async () => {
  const r = await lapse(["train", "--config", "no/such/config.yaml"]);
  assertUserError(r, 'config file "no/such/config.yaml" not found');
});

Deno.test("train: --set without =", async () => {
  const r = await lapse(["train", "--config", PSCHECK_YAML, "--set", "model.keys"]);
  assertUserError(r, "--set model.keys", 'missing "="');
});

Deno.test("train: a --set of the wrong type names the flag", async () => {
  const r = await lapse(["train", "--config", PSCHECK_YAML, "--set", "model.rounds=lots"]);
  assertUserError(r, "model.rounds", "--set model.rounds=lots");
});

Deno.test("train: an unknown task names the task and the known ones", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/bad.yaml`;
    await Deno.writeTextFile(file, "task: pschek\ndata: {}\n");
    const r = await lapse(["train", "--config", file]);
    assertUserError(r, `${file}:1:`, 'unknown task "pschek"', "did you mean pscheck?", "mf");
  });
});

// --- kge: data and model mistakes (one line, exit 2) ----------------------------------------

const KGE_YAML = new URL("../../tasks/kge.yaml", import.meta.url).pathname;

Deno.test("kge: an unknown algorithm, an odd ComplEx dim, a missing data dir", async () => {
  const kge = (set: string) => lapse(["train", "--config", KGE_YAML, "--nodes", "1", "--set", set]);
  const [alg, dim, dir] = await Promise.all([
    kge("model.algorithm=transe"),
    kge("model.dim=7"),
    kge("data.dir=no/such/graph"),
  ]);
  assertUserError(alg, "model.algorithm", '"transe"', "complex, distmult, rescal");
  assertUserError(dim, "model.dim 7 does not fit ComplEx");
  assertUserError(dir, /data directory "\S*no\/such\/graph" not found/, "lapse data wordnet");
});

Deno.test("kge: a malformed triple line and an unknown test entity name the file and line", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/a`);
    await Deno.writeTextFile(`${dir}/a/train.txt`, "x\tr\ty\nx r y\n");
    await Deno.mkdir(`${dir}/b`);
    await Deno.writeTextFile(`${dir}/b/train.txt`, "x\tr\ty\n");
    await Deno.writeTextFile(`${dir}/b/test.txt`, "x\tr\ty\ny\tr\tz\n");
    const run = (d: string) =>
      lapse(["train", "--config", KGE_YAML, "--nodes", "1", "--set", `data.dir=${d}`]);
    const [a, b] = await Promise.all([run(`${dir}/a`), run(`${dir}/b`)]);
    assertUserError(a, `${dir}/a/train.txt:2:`, "expected 3 tab-separated fields");
    assertUserError(b, `${dir}/b/test.txt:2:`, 'unknown entity "z"');
  });
});

Deno.test("data: a missing --out and an unknown dataset", async () => {
  const [out, name] = await Promise.all([
    lapse(["data", "wordnet"]),
    lapse(["data", "wordnte"]),
  ]);
  assertUserError(out, "missing --out DIR");
  assertUserError(name, 'unknown dataset "wordnte"', "wordnet");
});

// --- lapse serve and lapse train --cluster: the surroundings --------------------------------

Deno.test("serve: a port already in use is one clear line", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    await withTempDir(async (dir) => {
      const cluster = `${dir}/cluster.yaml`;
      await Deno.writeTextFile(cluster, `nodes: ["127.0.0.1:${port}"]\n`);
      const r = await lapse(["serve", "--cluster", cluster, "--node", "0"], {
        LAPSE_TOKEN: "secret-0123456789abcdef",
      });
      assertUserError(r, `127.0.0.1:${port}`, "address already in use");
    });
  } finally {
    listener.close();
  }
});

Deno.test("train --cluster: the wrong token is refused with a clear line", async () => {
  await withTempDir(async (dir) => {
    const cluster = `${dir}/cluster.yaml`;
    const [port] = freePorts(1);
    await Deno.writeTextFile(
      cluster,
      `nodes: ["127.0.0.1:${port}"]\nworkers_per_node: 1\nconnect_timeout_ms: 5000\n`,
    );
    const node = startNode(cluster, 0, "token-A-0123456789abcdef");
    let log = "";
    try {
      await node.listening;
      const r = await lapse(
        ["train", "--config", PSCHECK_YAML, "--cluster", cluster, "--quiet"],
        { LAPSE_TOKEN: "token-B-0123456789abcdef" },
      );
      assertUserError(r, `127.0.0.1:${port}`, "cluster token", "LAPSE_TOKEN");
    } finally {
      log = await node.stop();
    }
    // The node says why it refused the driver, and it was serving (not crashed) meanwhile.
    assert.match(log, /refused a connection from 127\.0\.0\.1:\d+: wrong cluster token/);
    assert.doesNotMatch(log, /^\s+at /m);
  });
});

Deno.test("serve: a node with the wrong token is refused; its peer names it", async () => {
  await withTempDir(async (dir) => {
    const cluster = `${dir}/cluster.yaml`;
    const [p0, p1] = freePorts(2);
    await Deno.writeTextFile(
      cluster,
      `nodes: ["127.0.0.1:${p0}", "127.0.0.1:${p1}"]\nconnect_timeout_ms: 4000\n`,
    );
    // Node 0 (token A) waits for node 1; node 1 (token B) dials it and is turned away.
    const node0 = startNode(cluster, 0, "token-A-0123456789abcdef");
    let log0 = "";
    try {
      await node0.listening;
      const r1 = await lapse(["serve", "--cluster", cluster, "--node", "1"], {
        LAPSE_TOKEN: "token-B-0123456789abcdef",
      });
      assertUserError(r1, `node 0 (127.0.0.1:${p0})`, "rejected our cluster token");
      const status = await node0.child.status;
      log0 = await node0.stop();
      // Node 0 gives up after connect_timeout_ms: exit 2, naming node 1 and the refusal.
      assert.equal(status.code, 2, log0);
    } finally {
      log0 ||= await node0.stop();
    }
    const errors = log0.split("\n").filter((l) => l.startsWith("error:"));
    assert.equal(errors.length, 1, log0);
    assert.match(errors[0], new RegExp(`node 1 \\(127\\.0\\.0\\.1:${p1}\\) did not answer`));
    assert.match(errors[0], /wrong cluster token/);
    assert.doesNotMatch(log0, /^\s+at /m);
  });
});

Deno.test("train --cluster: a node that is not running is named in one line", async () => {
  await withTempDir(async (dir) => {
    const cluster = `${dir}/cluster.yaml`;
    const [port] = freePorts(1);
    await Deno.writeTextFile(
      cluster,
      `nodes: ["127.0.0.1:${port}"]\nworkers_per_node: 1\nconnect_timeout_ms: 300\n`,
    );
    const t0 = Date.now();
    const r = await lapse(["train", "--config", PSCHECK_YAML, "--cluster", cluster], {
      LAPSE_TOKEN: "secret-0123456789abcdef",
    });
    assertUserError(r, `127.0.0.1:${port}`, "within 300 ms", "connection refused");
    assert.ok(Date.now() - t0 < 20_000, "it gave up after connect_timeout_ms");
  });
});
