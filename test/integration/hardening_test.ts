/**
 * Issue 10 against a real `lapse serve` node (one process, 127.0.0.1): node 0 re-validates a
 * submitted config (a driver is not trusted to have checked it), and a job reads files only
 * under the node's --data-dir, symlinks and `..` resolved; the refusal names the allowed
 * directories and quotes nothing of the file.
 */
import assert from "node:assert/strict";
import { JobError, runJob } from "../../driver/driver.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as mf } from "../../tasks/mf.ts";
import type { JobConfig } from "../../core/types.ts";
import { freePorts, serveArgs } from "./helpers.ts";

const TOKEN = "hardening-test-token-0123456789";

async function withNode(
  fn: (address: string, data: string, outside: string) => Promise<void>,
): Promise<void> {
  const dir = Deno.realPathSync(await Deno.makeTempDir({ prefix: "lapse-harden-" }));
  const data = `${dir}/data`, outside = `${dir}/outside`;
  await Deno.mkdir(data);
  await Deno.mkdir(outside);
  const [port] = freePorts(1);
  await Deno.writeTextFile(`${dir}/cluster.yaml`, `nodes: ["127.0.0.1:${port}"]\n`);
  const child = new Deno.Command(Deno.execPath(), {
    args: serveArgs(`${dir}/cluster.yaml`, 0, "--quiet", "--data-dir", data),
    env: { LAPSE_TOKEN: TOKEN },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = new Response(child.stderr).text();
  try {
    await fn(`127.0.0.1:${port}`, data, outside);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    const text = await log;
    await Deno.remove(dir, { recursive: true });
    assert.doesNotMatch(text, /^\s+at /m, `a stack trace in the node's log:\n${text}`);
  }
}

function mfFile(file: string): JobConfig {
  return validateJobConfig({
    task: "mf",
    data: { file, rows: 4, cols: 4, test_fraction: 0 },
    model: { rank: 2, epochs: 1 },
    cluster: { nodes: 1, workers_per_node: 1 },
  }, mf.schema);
}

async function refused(address: string, config: unknown, pattern: RegExp): Promise<void> {
  await assert.rejects(
    runJob(address, TOKEN, config as JobConfig, {}, 20_000, AbortSignal.timeout(60_000)),
    (e: unknown) => {
      assert.ok(e instanceof JobError, String(e));
      assert.match(e.message, pattern);
      return true;
    },
  );
}

Deno.test("node 0 re-validates submitted configs; jobs read only under --data-dir", async () => {
  await withNode(async (address, data, outside) => {
    const good = mfFile(`${data}/r.csv`);
    // What lapse train would never send: node 0 refuses it with the schema's words.
    await refused(
      address,
      { ...good, cluster: { nodes: 1, workers_per_node: 0 } },
      /node 0 refused the job config: .*cluster\.workers_per_node/,
    );
    await refused(
      address,
      { ...good, data: { generate: { rows: 10, cols: 10, nnz: 200 } } },
      /node 0 refused the job config: mf: data\.generate\.nnz \(200\) exceeds rows x cols/,
    );
    await refused(address, { ...good, task: 7 }, /node 0 refused the job: it names no task/);

    // A file under the data dir is read; the job trains.
    await Deno.writeTextFile(`${data}/r.csv`, "0,0,1\n1,1,2\n2,2,3\n3,3,4\n0,1,1\n");
    const summary = await runJob(address, TOKEN, good, {}, 20_000, AbortSignal.timeout(60_000));
    assert.equal(summary.nodes.length, 1);

    // Outside: refused before it is opened, naming the allowed directory.
    const secret = `${outside}/secret.csv`;
    await Deno.writeTextFile(secret, "0,0,SECRET-LINE\n");
    const outsideError = new RegExp(
      `data\\.file ".*" is outside the data directories of node 0 \\(${data}\\)`,
    );
    for (const path of [secret, `${data}/../outside/secret.csv`, "/etc/passwd"]) {
      await assert.rejects(
        runJob(address, TOKEN, mfFile(path), {}, 20_000, AbortSignal.timeout(60_000)),
        (e: unknown) => {
          assert.ok(e instanceof JobError);
          assert.match(e.message, outsideError);
          assert.doesNotMatch(e.message, /SECRET|root:/);
          return true;
        },
      );
    }
    // A symlink inside the data dir that points outside is resolved and refused.
    await Deno.symlink(secret, `${data}/link.csv`);
    await refused(address, mfFile(`${data}/link.csv`), outsideError);
    await Deno.symlink(outside, `${data}/linkdir`);
    await refused(address, mfFile(`${data}/linkdir/secret.csv`), outsideError);

    // The node is still serving.
    await runJob(address, TOKEN, good, {}, 20_000, AbortSignal.timeout(60_000));
  });
});

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;

/** `lapse train --config FILE --quiet` in `dir`: exit code and stderr. */
async function train(dir: string, yaml: string): Promise<{ code: number; stderr: string }> {
  await Deno.writeTextFile(`${dir}/job.yaml`, yaml);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, "train", "--config", "job.yaml", "--quiet"],
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

function oneErrorLine(r: { code: number; stderr: string }, pattern: RegExp): void {
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  assert.equal(r.code, 2, r.stderr);
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0], pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, r.stderr);
}

Deno.test("lapse train: bad configs and bad data are one line and exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lapse-harden-cli-" });
  try {
    // Refused by the driver before any node starts: no node ever prints anything.
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 9; i++) {
      const n = "abcdefghi"[i], p = "abcdefghi"[i - 1];
      bomb.push(`${n}: &${n} [${Array(9).fill(`*${p}`).join(", ")}]`);
    }
    oneErrorLine(
      await train(dir, "task: mf\n" + bomb.join("\n") + "\n"),
      /job\.yaml: invalid YAML: its aliases expand to too many values/,
    );
    oneErrorLine(
      await train(dir, "task: mf\ndata: { generate: { rows: 3000000000, cols: 10, nnz: 5 } }\n"),
      /mf: data\.generate\.rows and cols must be < 2\^31/,
    );
    oneErrorLine(
      await train(dir, "task: pscheck\nmodel: { dim: 70000 }\n"),
      /model\.dim|floats per key/,
    );
    // Caught after the first epoch: an empty training set, a loss that is no longer a number.
    const file = (name: string) =>
      `task: mf\ndata: { file: ${name}, rows: 4, cols: 4, test_fraction: 0 }\n` +
      `model: { rank: 2, epochs: 3 }\ncluster: { nodes: 1 }\n`;
    await Deno.writeTextFile(`${dir}/empty.csv`, "");
    oneErrorLine(await train(dir, file("empty.csv")), /the training set is empty/);
    await Deno.writeTextFile(`${dir}/huge.csv`, "0,0,1e30\n1,1,1e30\n2,2,1\n3,3,1\n");
    oneErrorLine(await train(dir, file("huge.csv")), /train_loss became (NaN|Infinity)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
