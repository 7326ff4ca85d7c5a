/**
 * The `manual` mode of `lapse bench mf`: DSGD matrix factorization with hand-coded parameter
 * management and no parameter server (cli/bench/manual_mf_worker.ts), run as one `deno run`
 * child process per node (1 worker each) on 127.0.0.1, started and timed from here.
 *
 * Timing: the workers have no barriers, so one worker may evaluate epoch e while another still
 * trains it, and a cluster run's "wall time between epoch ends minus the evaluation" could go
 * negative. Instead every worker times its own training phase of each epoch (from the end of
 * its previous evaluation, or the "go" sent once every worker has loaded its data and
 * connected, to the end of its last subepoch: waiting for blocks included, loading and
 * evaluation not), and an epoch takes as long as its slowest worker's phase; eval_s is the
 * slowest evaluation (which includes waiting for the blocks of the evaluation round). So the
 * epochs add up to the slowest worker's wall time minus its evaluations. Messages and bytes are the frames every worker sent to another during the epoch
 * (evaluation included, as for the PS), summed. The per-epoch sums go through the mf task's
 * own `summarize`, so train_loss, test_rmse and lr mean exactly what they mean for the task.
 *
 * @module
 */
import { readLines } from "../../core/lines.ts";
import { addSums } from "../../core/stats.ts";
import { randomToken } from "../../config/cluster_file.ts";
import type { JobConfig } from "../../core/types.ts";
import { UsageError } from "../../core/errors.ts";
import { task as mfTask } from "../../tasks/mf.ts";
import type { ClusterRun } from "./harness.ts";

/** Options of {@linkcode runManualMf}. */
export interface ManualMfOptions {
  /** Stop the run after this many seconds (status `timeout`). */
  timeout_s: number;
  /** Every line a worker prints on stderr (default: kept for the error report only). */
  onLine?: (worker: number, line: string) => void;
  /** Called with each epoch's metrics as they complete. */
  onEpoch?: (m: Record<string, number>) => void;
  /** Extra `deno run` flags for the workers (e.g. `--v8-flags=--prof`). */
  denoArgs?: string[];
}

/** What a manual run produced: a cluster run's fields plus each worker's time breakdown. */
export interface ManualMfRun extends ClusterRun {
  /** Per worker: seconds of training (shuffle + SGD), of waiting for blocks, of evaluation. */
  workers: { train_s: number; wait_s: number; eval_s: number }[];
}

const WORKER_URL = new URL("./manual_mf_worker.ts", import.meta.url).href;
const ROOT = new URL("../../", import.meta.url).pathname;
// How long stopped workers get before SIGKILL.
const STOP_GRACE_MS = 5_000;

/** The `deno` binary to run workers with; a compiled lapse cannot run a module. */
function denoPath(): string {
  const exec = Deno.execPath();
  const base = exec.split(/[\\/]/).pop() ?? "";
  if (!/^deno(\.exe)?$/.test(base) || !WORKER_URL.startsWith("file:")) {
    throw new UsageError(
      `the manual mode starts "deno run" children and needs lapse run from source ` +
        `(deno task lapse bench mf --modes manual), not ${exec}`,
    );
  }
  return exec;
}

/**
 * Runs the mf job of `config` the manual way on `config.cluster.nodes` worker processes
 * (workers_per_node must be 1) and returns per-epoch metrics like a cluster run's.
 */
export async function runManualMf(config: JobConfig, opts: ManualMfOptions): Promise<ManualMfRun> {
  if (config.task !== "mf") {
    throw new UsageError(`the manual mode is for task mf, got task "${config.task}"`);
  }
  if (config.cluster.workers_per_node !== 1) {
    throw new UsageError(
      `the manual mode runs one worker per node process: workers_per_node must be 1, got ` +
        `${config.cluster.workers_per_node} (--workers 1)`,
    );
  }
  // What the driver does before submitting (e.g. the matrix size of a rating file).
  await mfTask.prepare?.(config);
  const N = config.cluster.nodes;
  const deno = denoPath();
  const token = randomToken();
  const tail: string[] = [];
  const onLine = (w: number, line: string) => {
    opts.onLine?.(w, line);
    tail.push(`worker ${w} | ${line}`);
    if (tail.length > 30) tail.shift();
  };

  const encoder = new TextEncoder();
  const children: Deno.ChildProcess[] = [];
  const writers: WritableStreamDefaultWriter<Uint8Array>[] = [];
  const pipes: Promise<void>[] = [];
  // Messages from the workers by type, in arrival order, and who waits for them.
  const inbox: { worker: number; msg: Record<string, any> }[] = [];
  let wake: (() => void) | null = null;
  const t0 = performance.now();
  for (let w = 0; w < N; w++) {
    const child = new Deno.Command(deno, {
      args: [
        "run",
        "--quiet",
        // The checkout's config and lock, whatever the working directory (as the nodes).
        "--config",
        `${ROOT}deno.json`,
        `--lock=${ROOT}deno.lock`,
        "--allow-net=127.0.0.1",
        "--allow-read",
        ...(opts.denoArgs ?? []),
        WORKER_URL,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    children.push(child);
    writers.push(child.stdin.getWriter());
    pipes.push(readLines(child.stderr, (l) => onLine(w, l)));
    pipes.push(readLines(child.stdout, (l) => {
      let msg: Record<string, any>;
      try {
        msg = JSON.parse(l);
      } catch {
        onLine(w, l);
        return;
      }
      inbox.push({ worker: w, msg });
      wake?.();
    }));
  }
  const exited = children.map((c, w) =>
    c.status.then((st) => {
      inbox.push({ worker: w, msg: { t: "exit", code: st.code } });
      wake?.();
    })
  );
  const tell = (w: number, msg: Record<string, unknown>) =>
    writers[w].write(encoder.encode(JSON.stringify(msg) + "\n"));
  const tellAll = (msg: Record<string, unknown>) =>
    Promise.all(writers.map((_, w) => tell(w, msg)));

  const finished = new Set<number>();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    wake?.();
  }, opts.timeout_s * 1000);
  /** The next message from any worker; throws for an error, an early exit or the timeout. */
  const next = async (): Promise<{ worker: number; msg: Record<string, any> }> => {
    while (inbox.length === 0) {
      if (timedOut) throw new Error("timeout");
      await new Promise<void>((resolve) => wake = resolve);
      wake = null;
    }
    const m = inbox.shift()!;
    if (m.msg.t === "error") throw new Error(`worker ${m.worker}: ${m.msg.message}`);
    if (m.msg.t === "exit") {
      if (m.msg.code === 0 && finished.has(m.worker)) return next();
      throw new Error(`worker ${m.worker} exited with code ${m.msg.code} before the end`);
    }
    if (m.msg.t === "done") finished.add(m.worker);
    return m;
  };
  /** One message of type `t` from every worker. */
  const fromAll = async (t: string): Promise<Record<string, any>[]> => {
    const got: Record<string, any>[] = new Array(N);
    for (let n = 0; n < N;) {
      const { worker, msg } = await next();
      if (msg.t !== t) throw new Error(`worker ${worker}: expected "${t}", got "${msg.t}"`);
      if (got[worker] === undefined) n++;
      got[worker] = msg;
    }
    return got;
  };

  const epochs: Record<string, number>[] = [];
  const workers: ManualMfRun["workers"] = [];
  let status: ClusterRun["status"] = "ok";
  let error: string | undefined;
  const expected = Number(config.model?.epochs ?? 0);
  try {
    for (let w = 0; w < N; w++) {
      await tell(w, { t: "start", config, worker: w, workers: N, token });
    }
    const ports = (await fromAll("listening")).map((m) => m.port);
    await tellAll({ t: "peers", ports });
    const ready = await fromAll("ready");
    const points = ready.reduce((a, m) => a + m.train_n, 0);
    // The standardization sums, added as the mf task's Float32 table G adds them.
    let sum = 0, sumSq = 0, n = 0;
    for (const m of ready) {
      sum = Math.fround(sum + m.sum);
      sumSq = Math.fround(sumSq + m.sum_sq);
      n = Math.fround(n + m.train_n);
    }
    await tellAll({ t: "go", sum, sum_sq: sumSq, n });
    // Epoch reports of different epochs may interleave (no barriers): gather by epoch.
    const open = new Map<
      number,
      { n: number; sums: Record<string, number>; msgs: number; bytes: number }
    >();
    let done = 0;
    while (done < N) {
      const { msg } = await next();
      if (msg.t === "done") {
        workers.push({ train_s: msg.train_s, wait_s: msg.wait_s, eval_s: msg.eval_s });
        done++;
        continue;
      }
      if (msg.t !== "epoch") throw new Error(`unexpected message "${msg.t}" during training`);
      let e = open.get(msg.epoch);
      if (e === undefined) open.set(msg.epoch, e = { n: 0, sums: {}, msgs: 0, bytes: 0 });
      e.n++;
      addSums(e.sums, msg.sums);
      e.msgs += msg.messages;
      e.bytes += msg.bytes;
      if (e.n < N) continue;
      open.delete(msg.epoch);
      const epoch_s = e.sums.epoch_s_max, eval_s = e.sums.eval_s_max;
      delete e.sums.epoch_s_max;
      delete e.sums.eval_s_max;
      const m: Record<string, number> = {
        epoch: msg.epoch,
        ...mfTask.summarize(e.sums),
        epoch_s,
        eval_s,
        points_per_s: points / epoch_s,
        local_fraction: 1,
        messages: e.msgs,
        bytes: e.bytes,
      };
      epochs.push(m);
      opts.onEpoch?.(m);
    }
    if (epochs.length !== expected) {
      throw new Error(`${epochs.length} of ${expected} epochs were reported`);
    }
  } catch (e) {
    const message = (e as Error)?.message ?? String(e);
    if (message === "timeout") status = "timeout";
    else {
      status = "failed";
      error = message;
      if (opts.onLine === undefined) { for (const l of tail) console.error(l); }
    }
  } finally {
    clearTimeout(timer);
  }
  const wall_s = (performance.now() - t0) / 1000;
  // Stop: workers that are done exit by themselves; the others are killed.
  for (const wr of writers) wr.close().catch(() => {});
  if (status !== "ok") {
    for (const c of children) {
      try {
        c.kill("SIGTERM");
      } catch { /* already exited */ }
    }
  }
  const grace = setTimeout(() => {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* already exited */ }
    }
  }, STOP_GRACE_MS);
  await Promise.all(exited);
  clearTimeout(grace);
  await Promise.all(pipes);
  return { epochs, status, error, wall_s, workers };
}
