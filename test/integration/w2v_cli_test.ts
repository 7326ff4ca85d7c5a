/**
 * The word-vector commands as a user runs them: `lapse data brown`, `lapse train` of
 * tasks/w2v.yaml with `--out`, `lapse similar` and `lapse analogy` on the written file, and the
 * corpus mistakes (empty, binary, empty vocabulary): exit status 2 and one `error:` line.
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const W2V_YAML = new URL("../../tasks/w2v.yaml", import.meta.url).pathname;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function lapse(args: string[]): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function assertUserError(r: CliResult, pattern: RegExp): void {
  const show = `exit ${r.code}\n--- stderr:\n${r.stderr}--- stdout:\n${r.stdout}`;
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  assert.equal(r.code, 2, show);
  assert.equal(errors.length, 1, show);
  assert.doesNotMatch(`${r.stdout}\n${r.stderr}`, /^\s+at /m, show);
  assert.match(errors[0], pattern);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lapse-w2v-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const QUICK = ["--nodes", "1", "--quiet", "--set", "model.epochs=1", "--set", "model.dim=16"];

Deno.test("w2v: lapse data brown, train --out (text and binary), similar, analogy", async () => {
  await withTempDir(async (dir) => {
    const d = await lapse(["data", "brown", "--out", `${dir}/b.txt`, "--max-sentences", "40"]);
    assert.equal(d.code, 0, d.stderr);
    const lines = (await Deno.readTextFile(`${dir}/b.txt`)).trim().split("\n");
    assert.equal(lines.length, 40);
    assert.ok(lines[0].startsWith("The Fulton County Grand Jury said Friday"), lines[0]);
    assert.doesNotMatch(lines.join("\n"), /\/(at|nn|vbd)\b/, "tags are stripped");

    for (const file of ["v.txt", "v.bin"]) {
      const t = await lapse(["train", "--config", W2V_YAML, ...QUICK, "--out", `${dir}/${file}`]);
      assert.equal(t.code, 0, t.stderr + t.stdout);
      assert.match(t.stdout, /epoch 0 .*loss/);
      const s = await lapse(["similar", "said", "city", "--vectors", `${dir}/${file}`, "-k", "3"]);
      assert.equal(s.code, 0, s.stderr);
      assert.match(s.stdout, /^said:/m);
      assert.match(s.stdout, /^city:/m);
      assert.equal(s.stdout.split("\n").filter((l) => /^\S+\s+-?\d\.\d{3}$/.test(l)).length, 6);
    }
    const a = await lapse(["analogy", "man", "king", "woman", "--vectors", `${dir}/v.bin`]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /man : king = woman : \?/);
    assertUserError(
      await lapse(["similar", "xyzzy", "--vectors", `${dir}/v.txt`]),
      /"xyzzy" is not in the vocabulary/,
    );
    assertUserError(await lapse(["similar", "the", "--vectors", `${dir}/none.txt`]), /not found/);
  });
});

Deno.test("w2v: bad corpora end with one clear line and exit 2", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/empty.txt`, "");
    await Deno.writeFile(`${dir}/bin.txt`, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 0, 0, 10));
    await Deno.writeTextFile(`${dir}/few.txt`, "one two three\nfour five\n");
    const train = (file: string) =>
      lapse(["train", "--config", W2V_YAML, ...QUICK, "--set", `data.file=${dir}/${file}`]);
    assertUserError(await train("empty.txt"), /corpus ".*empty.txt" is empty/);
    assertUserError(await train("bin.txt"), /NUL byte: a binary file/);
    assertUserError(await train("few.txt"), /vocabulary .* is empty.*lower model.min_count/);
    assertUserError(
      await lapse(["train", "--config", W2V_YAML, "--out", `${dir}/no/such/dir/v.txt`]),
      /--out: cannot write/,
    );
  });
});

Deno.test("w2v commands answer --help", async () => {
  for (
    const args of [["data", "--help"], ["data", "brown", "--help"], ["similar", "--help"], [
      "analogy",
      "--help",
    ]]
  ) {
    const r = await lapse(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /Usage|usage/);
  }
});
