/**
 * `lapse serve`: runs one node of a cluster until it is stopped. A node stays up between jobs.
 *
 * @module
 */
import { LapseNode, type NodeTransport } from "../server/node.ts";
import { msgName } from "../server/messages.ts";
import { loadTask } from "../tasks/registry.ts";
import { Peers } from "../server/peers.ts";
import { formatHostPort } from "../core/host_port.ts";
import { loadClusterFile, readToken } from "../config/cluster_file.ts";
import { HELP, parseCommandArgs, parseHostPort, parseIntArg } from "./args.ts";
import { UsageError, userError } from "../core/errors.ts";
import type { HostPort } from "../core/host_port.ts";
import { resolveDataDirs } from "../config/data_dirs.ts";

const SPEC = {
  name: "serve",
  summary: "Run one node of a Lapse cluster (one per machine); it serves jobs until stopped.",
  usage: "lapse serve --cluster FILE --node I [--listen HOST:PORT] [options]",
  options: {
    cluster: {
      type: "string",
      arg: "FILE",
      doc: "cluster file: the nodes' addresses, workers_per_node",
    },
    node: { type: "string", arg: "I", doc: "this node's rank in the cluster file (0 coordinates)" },
    listen: {
      type: "string",
      arg: "HOST:PORT",
      doc:
        "address to listen on (default: this node's address in the cluster file, on 127.0.0.1 unless given)",
    },
    "token-file": {
      type: "string",
      arg: "FILE",
      doc: "file with the cluster token (else LAPSE_TOKEN)",
    },
    "exit-on-stdin-close": {
      type: "boolean",
      doc: "exit when standard input closes (embedded clusters)",
    },
    quiet: {
      type: "boolean",
      doc: "log only errors (embedded clusters: the driver shows the rest)",
    },
    "address-file": {
      type: "string",
      arg: "FILE",
      doc: "write the address listened on to FILE, then wait for the --cluster file to appear " +
        "(embedded clusters: every node listens on port 0, the driver writes the cluster file)",
    },
    "data-dir": {
      type: "string",
      multiple: true,
      arg: "DIR",
      doc: "jobs may read files only under DIR (default: the working directory)",
    },
  },
  details: `Example, a 2-node cluster on two machines:
  cluster.yaml:  nodes: ["10.0.0.1:7000", "10.0.0.2:7000"]
  machine 1:     LAPSE_TOKEN=secret lapse serve --cluster cluster.yaml --node 0 --listen 0.0.0.0:7000
  machine 2:     LAPSE_TOKEN=secret lapse serve --cluster cluster.yaml --node 1 --listen 0.0.0.0:7000
  then anywhere: LAPSE_TOKEN=secret lapse train --config task.yaml --cluster cluster.yaml`,
} as const;

/** Runs `lapse serve`; resolves when the node stops. */
export async function serve(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  if (v.cluster === undefined) {
    throw new UsageError("lapse serve needs --cluster FILE (the nodes' addresses)");
  }
  if (v.node === undefined) {
    throw new UsageError("lapse serve needs --node I (this node's rank in the cluster file)");
  }
  // With --address-file the node binds first (port 0: a port nobody else can take from now
  // on), says where, and then reads the cluster file, which is written once all nodes said it.
  let listener: Deno.TcpListener | undefined;
  if (v["address-file"] !== undefined) {
    if (v.listen === undefined) {
      throw new UsageError("lapse serve --address-file needs --listen HOST:PORT (e.g. port 0)");
    }
    const at = parseHostPort(v.listen, { flag: "--listen", allowPortZero: true });
    listener = bindListener(at);
    const a = listener.addr as Deno.NetAddr;
    await writeAtomically(
      v["address-file"],
      `${formatHostPort({ host: a.hostname, port: a.port })}\n`,
    );
    await waitForFile(v.cluster, CLUSTER_FILE_WAIT_MS);
  }
  const cluster = await loadClusterFile(v.cluster);
  const self = parseIntArg("--node", v.node, { min: 0, max: cluster.nodes.length - 1 });
  const token = await readToken({ tokenFile: v["token-file"] });
  const dataDirs = resolveDataDirs(v["data-dir"].length > 0 ? v["data-dir"] : [Deno.cwd()]);
  const own = cluster.nodes[self];
  // Bind to loopback unless told otherwise: a node is not exposed by accident.
  const listen = listener !== undefined
    ? { host: (listener.addr as Deno.NetAddr).hostname, port: (listener.addr as Deno.NetAddr).port }
    : v.listen !== undefined
    ? parseHostPort(v.listen, { flag: "--listen", allowPortZero: true })
    : { host: "127.0.0.1", port: own.port };
  // Every line of a node's log carries the time: a node runs for days.
  const log = v.quiet ? () => {} : (line: string) => console.error(`${timestamp()} ${line}`);
  // A rejection nobody handles is a bug of the node; it must not take the node (and with node 0
  // the whole cluster) down. It is logged loudly; the fault tests fail on such a line.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    const r = e.reason as Error;
    console.error(`node ${self}: bug: unhandled rejection: ${r?.stack ?? r}`);
  });
  // The node and its transport refer to each other: the node is made first, with a transport
  // that forwards to `peers`; messages reach the node only once peers.listen() runs.
  const transport: NodeTransport = {
    send: (n, msg) => peers.send(n, msg),
    stats: () => peers.stats(),
    isConnected: (n) => peers.isConnected(n),
    setPeerTimeout: (ms) => peers.setPeerTimeout(ms),
    setFrameLimit: (bytes) => peers.setFrameLimit(bytes),
  };
  const node = new LapseNode({
    self,
    nodes: cluster.nodes.length,
    transport,
    workerUrl: new URL("../client/worker_entry.ts", import.meta.url),
    loadTask,
    info: log,
    dataDirs,
  });
  const peers = new Peers({
    self,
    addresses: cluster.nodes.map(formatHostPort),
    token,
    listen,
    listener,
    connectTimeoutMs: cluster.connect_timeout_ms,
    messageName: msgName,
    onNodeClose: (n, reason) => node.onPeerLost(n, reason),
    onNodeOpen: (n) => node.onPeerJoined(n),
    onNodeMessage: (from, msg) => node.onNodeMessage(from, msg),
    onDriver: (conn) => node.acceptDriver(conn),
  });
  peers.listen();
  log(
    `node ${self}: listening on ${formatHostPort(listen)}, waiting for ${
      cluster.nodes.length - 1
    } peers`,
  );
  await peers.connectAll();
  node.meshReady();
  const stop = new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.addSignalListener(sig, () => resolve());
      } catch { /* not on this platform */ }
    }
    if (v["exit-on-stdin-close"]) {
      (async () => {
        const buf = new Uint8Array(64);
        try {
          while ((await Deno.stdin.read(buf)) !== null) { /* ignore input */ }
        } catch { /* closed */ }
        resolve();
      })();
    }
  });
  // After the signal handlers: a node that says it is ready can be stopped cleanly.
  log(`node ${self}: cluster of ${cluster.nodes.length} nodes is up, ready for jobs`);
  await stop;
  log(`node ${self}: stopping`);
  node.close();
  await peers.close();
  log(`node ${self}: stopped`);
  return 0;
}

/** How long a node started with --address-file waits for the cluster file. */
const CLUSTER_FILE_WAIT_MS = 120_000;
const CLUSTER_FILE_POLL_MS = 10;

/** Binds `at` now (the same messages as a node's listener; see Peers.listen). */
function bindListener(at: HostPort): Deno.TcpListener {
  const where = formatHostPort(at);
  try {
    return Deno.listen({ hostname: at.host, port: at.port, transport: "tcp" });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw userError(
        `cannot listen on ${where}: address already in use (pick another --listen port)`,
      );
    }
    throw userError(`cannot listen on ${where}: ${(err as Error).message}`, { cause: err });
  }
}

/** Writes `text` to `path` so that a reader sees all of it or no file (write, then rename). */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Resolves when `path` exists; throws after `timeoutMs`. */
async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await Deno.stat(path);
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (performance.now() > deadline) {
      throw userError(
        `cluster file "${path}" did not appear within ${timeoutMs} ms (--address-file: ` +
          `the program that started this node writes it once every node listens)`,
      );
    }
    await new Promise((r) => setTimeout(r, CLUSTER_FILE_POLL_MS));
  }
}

/** The local time of a log line, e.g. `2026-11-30 02:41:07.123`. */
export function timestamp(d = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:` +
    `${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
