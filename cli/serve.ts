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
import { UsageError } from "../core/errors.ts";
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
    "data-dir": {
      type: "string",
      multiple: true,
      arg: "DIR",
      doc: "jobs may read files only under DIR (repeatable; default: the working directory)",
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
  const cluster = await loadClusterFile(v.cluster);
  const self = parseIntArg("--node", v.node, { min: 0, max: cluster.nodes.length - 1 });
  const token = await readToken({ tokenFile: v["token-file"] });
  const dataDirs = resolveDataDirs(v["data-dir"].length > 0 ? v["data-dir"] : [Deno.cwd()]);
  const own = cluster.nodes[self];
  // Bind to loopback unless told otherwise: a node is not exposed by accident.
  const listen = v.listen !== undefined
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

/** The local time of a log line, e.g. `2026-11-30 02:41:07.123`. */
export function timestamp(d = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:` +
    `${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
