/**
 * The documented install (`deno task install`): a launcher in a temporary root that runs every
 * subcommand from any directory with the checkout's deno.lock, with a config outside the
 * checkout, and the shipped configs by name.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const TIMEOUT_MS = 180_000;

async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: { NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGINT");
    } catch { /* exited */ }
  }, TIMEOUT_MS);
  try {
    const o = await child.output();
    const dec = new TextDecoder();
    return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/** PATH without any directory holding a `deno` (what a Node-only machine has). */
function pathWithoutDeno(): string {
  return (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":").filter((d) => {
    try {
      Deno.statSync(`${d}/deno`);
      return false;
    } catch {
      return true;
    }
  }).join(":");
}

Deno.test("deno task install: lapse runs from any directory with deno.lock's versions", async () => {
  const root = await Deno.makeTempDir({ prefix: "lapse-install-root-" });
  const work = await Deno.makeTempDir({ prefix: "lapse-install-work-" });
  try {
    const inst = await run(Deno.execPath(), ["task", "install", "--root", root], { cwd: ROOT });
    assert.equal(inst.code, 0, inst.err + inst.out);
    const lapse = `${root}/bin/lapse`;
    const script = await Deno.readTextFile(lapse);
    assert.match(script, /--lock="\$LAPSE_HOME\/deno.lock" --frozen/);
    const env = { PATH: pathWithoutDeno() };

    const help = await run(lapse, ["serve", "--help"], { cwd: work, env });
    assert.equal(help.code, 0, help.err);
    assert.match(help.out, /^lapse serve: /);

    // A config outside the checkout, with a data file next to it (relative to the config).
    await Deno.mkdir(`${work}/job`);
    const lines = ["row,col,value"];
    for (let i = 0; i < 40; i++) {
      for (let j = 0; j < 40; j += 3) lines.push(`${i},${(j + i) % 40},${((i % 5) + (j % 3)) / 4}`);
    }
    await Deno.writeTextFile(`${work}/job/ratings.csv`, lines.join("\n") + "\n");
    await Deno.writeTextFile(
      `${work}/job/job.yaml`,
      "task: mf\ndata: { file: ratings.csv, rows: 40, cols: 40 }\n" +
        "model: { rank: 4, epochs: 2 }\ncluster: { nodes: 2 }\n",
    );
    const train = await run(lapse, ["train", "--config", "job/job.yaml", "--quiet"], {
      cwd: work,
      env,
    });
    assert.equal(train.code, 0, train.err + train.out);
    assert.match(train.out, /epoch 1 .*test_rmse/);

    // A shipped config by name, and lapse init writing one.
    const named = await run(lapse, [
      "train",
      "--config",
      "mf",
      "--epochs",
      "1",
      "--set",
      "data.generate.nnz=20000",
      "--quiet",
    ], { cwd: work, env });
    assert.equal(named.code, 0, named.err + named.out);
    assert.match(named.out, /task mf/);
    assert.match(named.out, /epoch 0 /);
    assert.doesNotMatch(named.out, /epoch 1 /);
    const init = await run(lapse, ["init", "mf"], { cwd: work, env });
    assert.equal(init.code, 0, init.err);
    assert.match(await Deno.readTextFile(`${work}/mf.yaml`), /^task: mf$/m);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test({
  name: "the launcher falls back to npx -y deno@2.9.6 when its Deno binary is gone",
  ignore: !(() => {
    try {
      return new Deno.Command("npx", { args: ["--version"] }).outputSync().success;
    } catch {
      return false;
    }
  })(),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "lapse-install-npx-" });
    try {
      const inst = await run(Deno.execPath(), [
        "run",
        "-A",
        "--quiet",
        "cli/install.ts",
        "--root",
        root,
        "--deno",
        "/nonexistent/deno",
      ], { cwd: ROOT });
      assert.equal(inst.code, 0, inst.err);
      const r = await run(`${root}/bin/lapse`, ["--version"], {
        cwd: root,
        env: { PATH: pathWithoutDeno() },
      });
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^lapse \d+\.\d+\.\d+/);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("deno task install -- --root DIR (the README's spelling) installs, usage names deno task", async () => {
  const root = await Deno.makeTempDir({ prefix: "lapse-install-dashdash-" });
  try {
    const inst = await run(Deno.execPath(), ["task", "install", "--", "--root", root], {
      cwd: ROOT,
    });
    assert.equal(inst.code, 0, inst.err + inst.out);
    assert.match(await Deno.readTextFile(`${root}/bin/lapse`), /--frozen/);
    const bad = await run(Deno.execPath(), ["task", "install", "--bogus"], { cwd: ROOT });
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /usage: deno task install \[--root DIR\]/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
