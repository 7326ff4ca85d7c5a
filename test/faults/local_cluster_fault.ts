/**
 * The embedded local cluster of `lapse train` leaves no token behind: its token file is mode
 * 0600; on SIGTERM of the driver the temporary directory is removed; after a SIGKILL of the
 * driver the next embedded cluster removes it. Real processes; TMPDIR is a private directory.
 */
import assert from "node:assert/strict";
import { MAIN } from "../integration/helpers.ts";
import { LOCAL_DIR_PREFIX, removeStaleLocalDirs } from "../../driver/local_cluster.ts";

const CONFIG = new URL("../../tasks/pscheck.yaml", import.meta.url).pathname;

function localDirs(root: string): string[] {
  return [...Deno.readDirSync(root)].filter((e) => e.name.startsWith(LOCAL_DIR_PREFIX))
    .map((e) => `${root}/${e.name}`);
}

/** Starts a long `lapse train` on an embedded cluster; resolves once its token file exists. */
async function startTrain(root: string): Promise<{ p: Deno.ChildProcess; dir: string }> {
  const p = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--quiet",
      MAIN,
      "train",
      "--config",
      CONFIG,
      "--set",
      "model.rounds=50000000",
    ],
    env: { TMPDIR: root },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 60_000;
  for (;;) {
    const dirs = localDirs(root).filter((d) => {
      try {
        return Deno.statSync(`${d}/token`).isFile;
      } catch {
        return false;
      }
    });
    if (dirs.length === 1) return { p, dir: dirs[0] };
    assert.ok(Date.now() < deadline, "the embedded cluster wrote its token within 60 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("embedded cluster: token 0600, removed on SIGTERM, and after SIGKILL at the next start", async () => {
  const root = await Deno.makeTempDir({ prefix: "lapse-tmp-" });
  try {
    let { p, dir } = await startTrain(root);
    assert.equal(Deno.statSync(`${dir}/token`).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(dir).mode! & 0o777, 0o700);
    await new Promise((r) => setTimeout(r, 1000)); // let the nodes start
    p.kill("SIGTERM");
    await p.status;
    assert.deepEqual(localDirs(root), [], "SIGTERM removed the directory");

    ({ p, dir } = await startTrain(root));
    p.kill("SIGKILL");
    await p.status;
    assert.deepEqual(localDirs(root), [dir], "SIGKILL leaves it");
    // Its nodes notice that stdin closed and exit; then the directory counts as stale.
    assert.deepEqual(await removeStaleLocalDirs(root), [dir]);
    assert.deepEqual(localDirs(root), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
