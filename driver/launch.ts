/**
 * Runs a job on a cluster: a real one from a cluster file, or an embedded local cluster of
 * child processes that is started for the job and stopped after it (also on failure and on
 * Ctrl-C). `lapse train` and `lapse bench` both go through here.
 *
 * @module
 */
import { formatHostPort } from "../core/host_port.ts";
import { loadClusterFile, readToken } from "../config/cluster_file.ts";
import type { JobConfig } from "../core/types.ts";
import { type JobEvents, type JobSummary, runJob } from "./driver.ts";
import { startLocalCluster } from "./local_cluster.ts";
import { checkJob } from "../config/job_check.ts";
import { pathFields, realPathOf } from "../config/data_dirs.ts";
import { loadTask } from "../tasks/registry.ts";
import type { TaskDefinition } from "../core/task.ts";

/** Options of {@linkcode launchJob}. */
export interface LaunchOptions {
  /** A cluster file; without it an embedded local cluster of `config.cluster.nodes` nodes runs. */
  clusterFile?: string;
  tokenFile?: string;
  events?: JobEvents;
  /** Lines printed by the nodes of an embedded cluster (default: stderr). */
  onNodeLine?: (node: number, line: string) => void;
  /** Gives up on the job (e.g. `AbortSignal.timeout(ms)`): it is aborted on the cluster. */
  signal?: AbortSignal;
}

/** Runs `config` to its end and returns its summary; a failed job throws a `JobError`. */
export async function launchJob(config: JobConfig, opts: LaunchOptions = {}): Promise<JobSummary> {
  // Sizes that cannot work are one line now, before any node starts (node 0 checks again).
  const task = await loadTask(config.task);
  // What the data decides (mf: the matrix size of a file), filled in here once for all nodes.
  await task.prepare?.(config);
  checkJob(config, task);
  const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  if (opts.clusterFile !== undefined) {
    const cluster = await loadClusterFile(opts.clusterFile);
    const token = await readToken({ tokenFile: opts.tokenFile });
    // Ctrl-C: one line; closing the connection makes node 0 abort the job on every node.
    const onSignal = () => {
      interruptedLine("the job is aborted on the cluster");
      Deno.exit(130);
    };
    for (const sig of SIGNALS) {
      try {
        Deno.addSignalListener(sig, onSignal);
      } catch { /* no such signal here */ }
    }
    try {
      return await runJob(
        formatHostPort(cluster.nodes[0]),
        token,
        config,
        opts.events,
        cluster.connect_timeout_ms,
        opts.signal,
      );
    } finally {
      for (const sig of SIGNALS) {
        try {
          Deno.removeSignalListener(sig, onSignal);
        } catch { /* no such signal here */ }
      }
    }
  }
  let interrupted = false;
  const showLine = opts.onNodeLine ?? ((n: number, l: string) => console.error(`node ${n} | ${l}`));
  const local = await startLocalCluster({
    nodes: config.cluster.nodes,
    workersPerNode: config.cluster.workers_per_node,
    // After Ctrl-C the nodes' lines (lost connections, stopping) are noise: one line says it.
    onLine: (n, l) => {
      if (!interrupted) showLine(n, l);
    },
    data_dirs: localDataDirs(config, task),
  });
  // Ctrl-C or a SIGTERM: stop the nodes and remove the temporary directory (with the token)
  // before exiting. (After a SIGKILL the next embedded cluster removes it.)
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    interruptedLine("stopping the local cluster");
    local.stop().finally(() => Deno.exit(130));
  };
  for (const sig of SIGNALS) {
    try {
      Deno.addSignalListener(sig, onSignal);
    } catch { /* no such signal here */ }
  }
  try {
    return await runJob(local.addresses[0], local.token, config, opts.events, 30_000, opts.signal);
  } catch (e) {
    // Interrupted: the lost connection is no error of its own; the signal handler exits.
    if (interrupted) await new Promise(() => {});
    throw e;
  } finally {
    for (const sig of SIGNALS) {
      try {
        Deno.removeSignalListener(sig, onSignal);
      } catch { /* no such signal here */ }
    }
    await local.stop();
  }
}

/**
 * The data directories of an embedded local cluster: the user who runs `lapse train` on this
 * machine may read what they point at, so the nodes may read the working directory and the
 * folder of every file the config names (a real cluster's nodes use their own --data-dir).
 */
export function localDataDirs(config: JobConfig, task: TaskDefinition): string[] {
  const dirs = new Set<string>([Deno.cwd()]);
  for (const { key, value } of pathFields(config, task.schema)) {
    if (key === "checkpoint.dir" || key === "resume.dir") {
      // A folder the nodes write in (checkpoints) or read (resume): itself.
      try {
        if (key === "checkpoint.dir") Deno.mkdirSync(value, { recursive: true });
        dirs.add(Deno.realPathSync(value));
      } catch {
        // Missing (resume) or not creatable: the node says so, naming the folder.
      }
      continue;
    }
    const real = realPathOf(value);
    const dir = real.slice(0, Math.max(1, real.lastIndexOf("/")));
    try {
      if (Deno.statSync(dir).isDirectory) dirs.add(dir);
    } catch {
      // A missing folder: the task says "not found" for the file.
    }
  }
  return [...dirs];
}

/** The one line of an interrupted job (clearing a progress bar on the terminal first). */
function interruptedLine(what: string): void {
  const clear = Deno.stderr.isTerminal() ? "\r\x1b[K" : "";
  Deno.stderr.writeSync(new TextEncoder().encode(`${clear}interrupted: ${what}\n`));
}
