/**
 * `lapse train`: submits a job to a cluster (or an embedded local one) and shows its progress.
 *
 * @module
 */
import { launchJob } from "../driver/launch.ts";
import { type ClusterFile, loadClusterFile } from "../config/cluster_file.ts";
import { closestMatch } from "../config/schema.ts";
import { ConfigError } from "../core/errors.ts";
import { type JobConfig } from "../core/types.ts";
import { loadJobConfig } from "../config/job_config.ts";
import { builtinConfigPath, builtinConfigs, loadTask, TASK_NAMES } from "../tasks/registry.ts";
import { HELP, parseCommandArgs, parseIntArg } from "./args.ts";
import { EpochProgress, formatDuration, formatMetrics, MetricsWriter } from "./progress.ts";
import { UsageError } from "../core/errors.ts";
import { writeTextAtomic } from "../data/npy.ts";

const SPEC = {
  name: "train",
  summary: "Train a model: run a task config on a cluster, or on an embedded local cluster.",
  usage:
    "lapse train --config FILE [--cluster FILE] [--nodes N] [--workers W] [--set PATH=VALUE ...]",
  options: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      doc: "task config (YAML), or a shipped one by name: mf, pscheck (see lapse init)",
    },
    cluster: {
      type: "string",
      arg: "FILE",
      doc: "cluster file of running `lapse serve` nodes (default: start a local cluster)",
    },
    nodes: {
      type: "string",
      short: "n",
      arg: "N",
      doc: "nodes of the local cluster (sets cluster.nodes)",
    },
    epochs: {
      type: "string",
      short: "e",
      arg: "N",
      doc: "epochs (sets model.epochs)",
    },
    workers: {
      type: "string",
      short: "w",
      arg: "W",
      doc: "worker threads per node (sets cluster.workers_per_node)",
    },
    set: {
      type: "string",
      multiple: true,
      arg: "PATH=VALUE",
      doc: "override a config key, e.g. ps.mode=classic, localize=none",
    },
    metrics: { type: "string", arg: "FILE", doc: "append per-epoch metrics as JSON lines" },
    checkpoint: {
      type: "string",
      arg: "DIR",
      doc: "write checkpoints to DIR (sets checkpoint.dir; every checkpoint.every_epochs epochs; " +
        "tasks mf, kge, w2v)",
    },
    resume: {
      type: "string",
      arg: "DIR",
      doc: "resume from the last complete checkpoint in DIR, at the epoch after it (same config; " +
        "another cluster size reads every node's file); goes on checkpointing there unless " +
        "--checkpoint says otherwise",
    },
    out: {
      type: "string",
      arg: "FILE",
      doc:
        "write the trained model (mf, kge: a folder, see lapse predict; w2v: word vectors, .bin " +
        "binary, else text)",
    },
    "token-file": {
      type: "string",
      arg: "FILE",
      doc: "cluster token file for --cluster (else LAPSE_TOKEN)",
    },
    quiet: { type: "boolean", short: "q", doc: "no progress bar, only the epoch lines" },
  },
  details: `Output: one line per epoch. mf: train_loss = mean squared error on the training
ratings during the epoch (train_rmse its root), test_rmse = RMSE on held-out ratings after it
(the floor is the data's noise: 0.1 for tasks/mf.yaml), time/eval = seconds training/testing,
points/s = training ratings per second, local = share of parameter accesses on the worker's own
node, msgs and bytes = traffic between nodes in that epoch.
Examples:
  lapse train --config mf                       # the shipped tasks/mf.yaml
  lapse train --config tasks/mf.yaml --epochs 3
  lapse train --config tasks/mf.yaml --nodes 4 --set ps.mode=classic
  lapse train --config tasks/mf.yaml --set localize=none --metrics out/run.jsonl
  lapse train --config mf --checkpoint ckpt/     # then, after a crash:
  lapse train --config mf --resume ckpt/`,
} as const;

/**
 * The config file `--config` names: an existing file, else a shipped config by name (`mf` is
 * `tasks/mf.yaml` of this installation), else the path as given (reported as not found).
 */
export async function resolveConfigPath(arg: string): Promise<string> {
  try {
    await Deno.stat(arg);
    return arg;
  } catch {
    return builtinConfigPath(arg) ?? arg;
  }
}

/** More flags of `lapse train` that shape the job (all optional). */
export interface TrainFlags {
  epochs?: string;
  /** `--cluster FILE`: its `workers_per_node` is the default; `--nodes` is an error with it. */
  cluster?: ClusterFile;
}

/** Loads a job config with the CLI's overrides; every problem is a user error. */
export async function loadConfigFromArgs(
  configPath: string | undefined,
  sets: string[],
  nodes?: string,
  workers?: string,
  flags: TrainFlags = {},
): Promise<JobConfig> {
  if (configPath === undefined) {
    throw new UsageError("missing --config FILE (e.g. --config tasks/mf.yaml, or --config mf)");
  }
  const { epochs, cluster } = flags;
  if (cluster !== undefined) {
    // A real cluster runs a job on all of its nodes: a node count would be silently ignored.
    if (nodes !== undefined) {
      throw new UsageError(
        `--nodes ${nodes} conflicts with --cluster: a job runs on every node of the cluster ` +
          `file (${cluster.nodes.length}); drop --nodes or edit the cluster file`,
      );
    }
    const s = sets.find((x) => /^\s*cluster\.nodes\s*=/.test(x));
    if (s !== undefined) {
      throw new UsageError(
        `--set ${s} conflicts with --cluster: a job runs on every node of the cluster file ` +
          `(${cluster.nodes.length}); drop the --set`,
      );
    }
  }
  const all = [...sets];
  if (nodes !== undefined) {
    all.push(`cluster.nodes=${parseIntArg("--nodes", nodes, { min: 1, max: 64 })}`);
  }
  if (workers !== undefined) {
    all.push(`cluster.workers_per_node=${parseIntArg("--workers", workers, { min: 1, max: 64 })}`);
  }
  if (epochs !== undefined) {
    all.push(`model.epochs=${parseIntArg("--epochs", epochs, { min: 0, max: 1_000_000 })}`);
  }
  const fallbacks = cluster !== undefined
    ? { "cluster.workers_per_node": cluster.workers_per_node }
    : {};
  const path = await resolveConfigPath(configPath);
  return await loadJobConfig(path, all, async (name) => {
    // An unknown task is a config mistake (located at the task: line), not a bug.
    if (!TASK_NAMES.includes(name)) {
      const near = closestMatch(name, TASK_NAMES);
      throw new ConfigError(`unknown task "${name}"`, {
        path: "task",
        hint: `${near !== undefined ? `did you mean ${near}? ` : ""}known tasks: ${
          TASK_NAMES.join(", ")
        }`,
      });
    }
    return (await loadTask(name)).schema;
  }, { fallbacks, notFoundHint: configNotFoundHint(configPath) });
}

/**
 * The hint for a `--config` that is neither a file nor a shipped config: the names `--config
 * NAME` takes (read from tasks/*.yaml, so a new shipped config shows up by itself).
 */
function configNotFoundHint(configPath: string): string {
  const names = builtinConfigs();
  if (names.length === 0) return "check the path";
  const near = closestMatch(configPath, names);
  return `${near !== undefined ? `did you mean ${near}? ` : ""}check the path, or give ` +
    `--config NAME; shipped configs: ${names.join(", ")}`;
}

/**
 * `--out FILE`: tasks that can write their model declare `model.out` in their schema; the path
 * is made absolute here (node 0 writes it; on a local cluster, that is this machine).
 */
async function setOutput(config: JobConfig, out: string): Promise<void> {
  const schema = (await loadTask(config.task)).schema;
  if (schema.model.fields?.out === undefined) {
    throw new UsageError(`--out: task ${config.task} cannot write its model yet`);
  }
  // A trailing slash names the model folder itself (`--out kge/`): its parent must exist.
  const abs = (out.startsWith("/") ? out : `${Deno.cwd()}/${out}`).replace(/(.)\/+$/, "$1");
  const dir = abs.slice(0, abs.lastIndexOf("/")) || "/";
  try {
    if (!(await Deno.stat(dir)).isDirectory) throw new Error("not a folder");
  } catch (e) {
    throw new UsageError(`--out: cannot write "${out}": folder "${dir}": ${(e as Error).message}`);
  }
  config.model.out = abs;
}

/** Runs `lapse train`: 0 when the job ends (and passes the task's verdict, if it has one). */
export async function train(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  if (v["token-file"] !== undefined && v.cluster === undefined) {
    throw new UsageError(
      "--token-file needs --cluster FILE (a local cluster makes its own token); drop it or add --cluster",
    );
  }
  const cluster = v.cluster !== undefined ? await loadClusterFile(v.cluster) : undefined;
  const sets = [...v.set];
  if (v.checkpoint !== undefined) sets.push(`checkpoint.dir=${JSON.stringify(v.checkpoint)}`);
  if (v.resume !== undefined) sets.push(`resume.dir=${JSON.stringify(v.resume)}`);
  const config = await loadConfigFromArgs(v.config, sets, v.nodes, v.workers, {
    epochs: v.epochs,
    cluster,
  });
  if (config.resume !== undefined && config.checkpoint === undefined) {
    config.checkpoint = { dir: config.resume.dir, every_epochs: 1 };
  }
  if (v.out !== undefined) await setOutput(config, v.out);
  const metrics = v.metrics !== undefined ? await MetricsWriter.open(v.metrics) : null;
  const progress = new EpochProgress(v.quiet ? { terminal: false, plainEveryMs: Infinity } : {});
  let epoch = 0;
  let epochStartPoints = 0;
  let epochPoints = 0;
  let started = false;
  let lastMetrics: Record<string, number> | null = null;
  const where = v.cluster ?? `a local cluster of ${config.cluster.nodes} node(s)`;
  // A real cluster runs the job on all of its nodes, whatever the config says.
  const nodes = cluster !== undefined ? cluster.nodes.length : config.cluster.nodes;
  // Classic modes ignore localize directives: showing them would suggest they act.
  const localize = config.ps.mode !== "lapse"
    ? ""
    : `, localize ${
      config.localize.length === 0
        ? "none"
        : config.localize.map((d) => `${d.table}@${d.when}`).join(",")
    }`;
  console.log(
    `lapse train: task ${config.task}, ps.mode ${config.ps.mode}, ${nodes} node(s) x ` +
      `${config.cluster.workers_per_node} worker(s)${localize}, on ${where}`,
  );
  const task = await loadTask(config.task);
  if (task.columns !== undefined && !v.quiet) console.log(task.columns);
  // Each run in a metrics file starts with a header and ends with a summary line, so that
  // several runs appended to one file can be told apart (lapse report reads them).
  const runId = crypto.randomUUID();
  const startedAt = Date.now();
  metrics?.write({
    type: "header",
    run_id: runId,
    time: new Date(startedAt).toISOString(),
    task: config.task,
    cluster: {
      nodes,
      workers_per_node: config.cluster.workers_per_node,
      file: v.cluster ?? null,
    },
    config,
  });
  let status = "failed";
  try {
    const summary = await launchJob(config, {
      onNodeLine: (node, line) => progress.log(`node ${node} | ${line}`),
      clusterFile: v.cluster,
      tokenFile: v["token-file"],
      events: {
        onProgress(points, epoch_points) {
          // The total grows while nodes declare their share: the bar follows it (the sum over
          // all workers, never one node's part).
          const grew = epoch_points !== epochPoints;
          epochPoints = epoch_points;
          if (epoch_points <= 0) return;
          if (!started) {
            started = true;
            progress.start(epoch, epoch_points);
          } else if (grew) progress.setTotal(epoch_points);
          progress.update(points - epochStartPoints);
        },
        onEpoch(e, m) {
          if (started) {
            progress.update(epochPoints);
            progress.end();
          }
          started = false;
          epoch = e + 1;
          epochStartPoints += epochPoints;
          console.log(formatMetrics(e, m));
          lastMetrics = m;
          metrics?.writeEpoch(e, m);
        },
        onLog(node, message) {
          progress.log(`node ${node}: ${message}`);
        },
      },
    });
    console.log(`done in ${formatDuration(summary.wallSeconds)}`);
    status = "done";
    const out = config.model.out;
    if (typeof out === "string" && (await Deno.stat(out).catch(() => null))?.isDirectory) {
      // A folder model gets what only the driver knows: the config and the final metrics.
      await writeTextAtomic(
        `${out}/run.json`,
        JSON.stringify(
          {
            task: config.task,
            finished_at: new Date().toISOString(),
            wall_s: summary.wallSeconds,
            epochs: epoch,
            metrics: lastMetrics,
            config,
          },
          null,
          2,
        ) + "\n",
      );
      console.log(`model written to ${out} (lapse predict --model ${v.out})`);
    }
    if (task.verdict !== undefined) {
      // Self-tests end with one line that says it all.
      const failed = lastMetrics === null ? "no epoch finished" : task.verdict(lastMetrics);
      if (failed) {
        status = "fail";
        console.error(`FAIL: ${failed}`);
        return 1;
      }
      status = "pass";
      console.log(`PASS: ${config.task} found nothing wrong`);
    }
    return 0;
  } finally {
    metrics?.write({
      type: "summary",
      run_id: runId,
      status,
      epochs: epoch,
      wall_s: (Date.now() - startedAt) / 1000,
      metrics: lastMetrics,
    });
    metrics?.close();
  }
}
