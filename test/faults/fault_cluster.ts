/**
 * A cluster of real `lapse serve` processes for the fault tests: nodes can be killed
 * (SIGKILL), stopped (SIGSTOP/SIGCONT) and restarted with their id, and every node's stderr is
 * kept, so that a test can fail on a line that shows a bug (an unhandled rejection).
 *
 * @module
 */
import assert from "node:assert/strict";
import { runJob } from "../../driver/driver.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as pscheck } from "../../tasks/pscheck.ts";
import type { JobConfig } from "../../core/types.ts";
import { freePorts, serveArgs } from "../integration/helpers.ts";

export const TOKEN = "fault-test-token";

/** A pscheck job for `nodes` nodes (pattern all: exact expected values). */
export function pscheckConfig(
  nodes: number,
  rounds: number,
  ps: Record<string, unknown> = {},
): JobConfig {
  return validateJobConfig({
    task: "pscheck",
    data: {},
    model: { keys: 64, rounds, pattern: "all" },
    cluster: { nodes, workers_per_node: 1 },
    ps: { mode: "lapse", ...ps },
  }, pscheck.schema);
}

/** Lines that only a bug of the node prints. */
const BUG_LINE = /unhandled rejection|Uncaught/i;

/** Real node processes on loopback. */
export class FaultCluster {
  readonly dir: string;
  readonly clusterFile: string;
  readonly address: string;
  readonly procs: (Deno.ChildProcess | null)[];
  /** Everything each node printed on stderr, over all its incarnations. */
  readonly logs: string[];
  readonly #pipes: Promise<void>[] = [];

  private constructor(dir: string, clusterFile: string, ports: number[]) {
    this.dir = dir;
    this.clusterFile = clusterFile;
    this.address = `127.0.0.1:${ports[0]}`;
    this.procs = ports.map(() => null);
    this.logs = ports.map(() => "");
  }

  /** Writes a cluster file for `nodes` nodes; `start` says which nodes to start now. */
  static async create(nodes: number, start = true): Promise<FaultCluster> {
    const dir = await Deno.makeTempDir({ prefix: "lapse-fault-" });
    const ports = freePorts(nodes);
    const clusterFile = `${dir}/cluster.yaml`;
    await Deno.writeTextFile(
      clusterFile,
      `nodes: [${ports.map((p) => `"127.0.0.1:${p}"`).join(", ")}]\n` +
        `connect_timeout_ms: 60000\n`,
    );
    const c = new FaultCluster(dir, clusterFile, ports);
    if (start) { for (let i = 0; i < nodes; i++) c.start(i); }
    return c;
  }

  /** Starts node `i` (again), with extra environment variables (e.g. LAPSE_FAILPOINT). */
  start(i: number, env: Record<string, string> = {}): void {
    assert.equal(this.procs[i], null, `node ${i} is running`);
    const p = new Deno.Command(Deno.execPath(), {
      args: serveArgs(this.clusterFile, i, "--data-dir", this.dir),
      env: { LAPSE_TOKEN: TOKEN, ...env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.procs[i] = p;
    this.#pipes.push((async () => {
      for await (const s of p.stderr.pipeThrough(new TextDecoderStream())) this.logs[i] += s;
    })());
  }

  /** kill -9 of node `i`; resolves once it is gone. */
  async kill(i: number): Promise<void> {
    const p = this.procs[i]!;
    try {
      p.kill("SIGKILL");
    } catch { /* it is gone already (killed by a test, or by itself) */ }
    await p.status;
    this.procs[i] = null;
  }

  signal(i: number, sig: Deno.Signal): void {
    this.procs[i]!.kill(sig);
  }

  /** True while node `i`'s process runs. */
  async alive(i: number): Promise<boolean> {
    const p = this.procs[i];
    if (p === null) return false;
    const exited = await Promise.race([
      p.status.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 50)),
    ]);
    return !exited;
  }

  /** Submits pscheck jobs until one passes (or `timeoutMs` ends); returns the seconds taken. */
  async untilJobPasses(timeoutMs: number, ps: Record<string, unknown> = {}): Promise<number> {
    const start = performance.now();
    let last = "";
    while (performance.now() - start < timeoutMs) {
      try {
        const left = timeoutMs - (performance.now() - start);
        await runJob(
          this.address,
          TOKEN,
          pscheckConfig(this.procs.length, 20, ps),
          {},
          Math.max(1000, Math.min(10_000, left)),
          AbortSignal.timeout(Math.max(1000, left)),
        );
        return (performance.now() - start) / 1000;
      } catch (e) {
        last = (e as Error).message;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw new Error(`no pscheck job passed within ${timeoutMs} ms; last error: ${last}`);
  }

  /** Fails if a node printed a line that shows a bug. */
  assertNoBugLines(): void {
    for (let i = 0; i < this.logs.length; i++) {
      const m = this.logs[i].match(BUG_LINE);
      assert.equal(m, null, `node ${i} printed a bug line:\n${this.logs[i]}`);
    }
  }

  /** Kills every node and removes the directory. */
  async stop(): Promise<void> {
    for (const p of this.procs) {
      if (p === null) continue;
      try {
        p.kill("SIGCONT");
        p.kill("SIGKILL");
      } catch { /* gone */ }
      await p.status;
    }
    await Promise.all(this.#pipes);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
