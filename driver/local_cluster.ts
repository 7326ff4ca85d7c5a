/**
 * The embedded local cluster of `lapse train` without `--cluster`: `nodes` child processes of
 * this same program (`lapse serve`) on 127.0.0.1 and a random token. Each node listens on a
 * port the OS picks (port 0) and writes it to a file of the cluster's private directory; the
 * driver then writes the cluster file with all addresses, and from there on the nodes run the
 * very same code path as a real cluster.
 *
 * @module
 */

import { readLines } from "../core/lines.ts";
import { randomToken } from "../config/cluster_file.ts";

const STOP_GRACE_MS = 3000;

/** Prefix of the temporary directory (cluster file, token) of an embedded cluster. */
export const LOCAL_DIR_PREFIX = "lapse-local-";
/** The file in that directory naming the driver process that owns it. */
const OWNER_FILE = "driver.pid";

/** Where temporary directories go (what `Deno.makeTempDir` uses). */
function tempRoot(): string {
  return Deno.env.get("TMPDIR") || "/tmp";
}

/** False only when we can tell that process `pid` is gone (Linux: no /proc/PID). */
function processMayRun(pid: number): boolean {
  try {
    Deno.statSync("/proc/self");
  } catch {
    return true; // no /proc: we cannot tell
  }
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the temporary directories of embedded clusters whose driver was killed (SIGKILL
 * leaves no chance to clean up): those whose owner file names a process that no longer runs.
 * A directory without an owner file is left alone (its driver may be writing it right now).
 * Returns the directories removed.
 */
export async function removeStaleLocalDirs(root = tempRoot()): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(root)];
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!e.isDirectory || !e.name.startsWith(LOCAL_DIR_PREFIX)) continue;
    const dir = `${root}/${e.name}`;
    let pid: number;
    try {
      pid = Number((await Deno.readTextFile(`${dir}/${OWNER_FILE}`)).trim());
    } catch {
      continue;
    }
    if (!Number.isInteger(pid) || pid <= 0 || processMayRun(pid)) continue;
    try {
      await Deno.remove(dir, { recursive: true });
      removed.push(dir);
    } catch { /* another driver removed it first, or it is not ours to remove */ }
  }
  return removed;
}

/** A running local cluster. */
export interface LocalCluster {
  /** `host:port` of every node; node 0 first. */
  addresses: string[];
  token: string;
  /** The temporary directory with the cluster file and the token (removed by stop()). */
  dir: string;
  /** Stops every node and removes the temporary files; safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startLocalCluster}. */
export interface LocalClusterOptions {
  nodes: number;
  workersPerNode: number;
  /** Receives every line a node prints (prefixed with its id). Default: stderr. */
  onLine?: (node: number, line: string) => void;
  connectTimeoutMs?: number;
  /**
   * The nodes' `--data-dir`s: the directories jobs may read files from (default: the nodes'
   * working directory, which is ours).
   */
  data_dirs?: string[];
}

/** How to start this program again as a child: `deno run ... cli/main.ts` or the compiled binary. */
export function selfCommand(): { cmd: string; args: string[] } {
  const exec = Deno.execPath();
  const base = exec.split(/[\\/]/).pop() ?? "";
  if (/^deno(\.exe)?$/.test(base)) {
    const main = new URL("../cli/main.ts", import.meta.url);
    if (main.protocol !== "file:") {
      return { cmd: exec, args: ["run", "--allow-all", "--quiet", main.href] };
    }
    // The checkout's config and lock, whatever the working directory: the nodes resolve the
    // same npm versions as the driver (an installed `lapse` runs from anywhere).
    const root = new URL("..", import.meta.url).pathname;
    return {
      cmd: exec,
      args: [
        "run",
        "--allow-all",
        "--quiet",
        "--config",
        `${root}deno.json`,
        `--lock=${root}deno.lock`,
        main.href,
      ],
    };
  }
  return { cmd: exec, args: [] };
}

/** How often the driver looks for the nodes' address files. */
const ADDRESS_POLL_MS = 10;

/**
 * The address node `i` wrote to `file` (`lapse serve --address-file`), once it is there;
 * rejects when the node exits first or after `timeoutMs`.
 */
async function nodeAddress(
  i: number,
  file: string,
  exited: Promise<Deno.CommandStatus>,
  timeoutMs: number,
): Promise<string> {
  let status: Deno.CommandStatus | null = null;
  exited.then((s) => status = s, () => {});
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      // The node writes it under another name and renames it: it is complete when seen.
      const text = (await Deno.readTextFile(file)).trim();
      if (text.length > 0) return text;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (status !== null) {
      throw new Error(
        `node ${i} of the local cluster exited (code ${(status as Deno.CommandStatus).code}) ` +
          `before it listened; see its lines above`,
      );
    }
    if (performance.now() > deadline) {
      throw new Error(`node ${i} of the local cluster did not listen within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, ADDRESS_POLL_MS));
  }
}

/**
 * Starts `nodes` node processes on 127.0.0.1 and returns when every one listens (the cluster
 * file is written; the nodes may still be connecting to each other).
 */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const { nodes, workersPerNode } = opts;
  const onLine = opts.onLine ?? ((node, line) => console.error(`node ${node} | ${line}`));
  const token = randomToken();
  await removeStaleLocalDirs();
  // Mode 0700 (Deno's default for temporary directories): only this user can read the token.
  const dir = await Deno.makeTempDir({ dir: tempRoot(), prefix: LOCAL_DIR_PREFIX });
  await Deno.writeTextFile(`${dir}/${OWNER_FILE}`, `${Deno.pid}\n`);
  const clusterFile = `${dir}/cluster.yaml`;
  const tokenFile = `${dir}/token`;
  await Deno.writeTextFile(tokenFile, token, { mode: 0o600 });
  await Deno.chmod(tokenFile, 0o600); // also if the file existed (mode applies on creation only)
  const connectTimeoutMs = opts.connectTimeoutMs ?? 30000;
  const { cmd, args } = selfCommand();
  const children: Deno.ChildProcess[] = [];
  const pipes: Promise<void>[] = [];
  // Every node binds port 0 itself and writes the address it got to its file here; once all
  // have, the cluster file is written and the nodes go on as in a real cluster. A port is
  // never free between being picked and being listened on, so concurrent clusters (parallel
  // `lapse train` runs or tests) cannot take each other's ports.
  for (let i = 0; i < nodes; i++) {
    const child = new Deno.Command(cmd, {
      args: [
        ...args,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--address-file",
        `${dir}/node-${i}.address`,
        "--cluster",
        clusterFile,
        "--node",
        String(i),
        "--token-file",
        tokenFile,
        // The node exits when this process does: its stdin is our pipe.
        "--exit-on-stdin-close",
        // The driver shows the workers' log lines; the nodes print only errors.
        "--quiet",
        ...(opts.data_dirs ?? []).flatMap((d) => ["--data-dir", d]),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    pipes.push(readLines(child.stdout, (l) => onLine(i, l)));
    pipes.push(readLines(child.stderr, (l) => onLine(i, l)));
    children.push(child);
  }
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      for (const c of children) {
        try {
          await c.stdin.close();
        } catch { /* already closed */ }
        try {
          c.kill("SIGTERM");
        } catch { /* already exited */ }
      }
      // A node that does not stop within the grace period is killed: stop() always ends.
      const grace = setTimeout(() => {
        for (const c of children) {
          try {
            c.kill("SIGKILL");
          } catch { /* already exited */ }
        }
      }, STOP_GRACE_MS);
      await Promise.all(children.map((c) => c.status));
      clearTimeout(grace);
      await Promise.all(pipes);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
    return stopped;
  };
  let addresses: string[];
  try {
    addresses = await Promise.all(
      children.map((c, i) =>
        nodeAddress(i, `${dir}/node-${i}.address`, c.status, connectTimeoutMs)
      ),
    );
    const tmp = `${clusterFile}.tmp`;
    await Deno.writeTextFile(
      tmp,
      `# written by lapse train for its embedded local cluster\nnodes:\n${
        addresses.map((a) => `  - "${a}"`).join("\n")
      }\nworkers_per_node: ${workersPerNode}\nconnect_timeout_ms: ${connectTimeoutMs}\n`,
    );
    // The nodes wait for this name: they read the whole file or none.
    await Deno.rename(tmp, clusterFile);
  } catch (e) {
    await stop();
    throw e;
  }
  return { addresses, token, dir, stop };
}
