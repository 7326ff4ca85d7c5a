/**
 * Cluster files and tokens: which nodes form a cluster, and the secret they share.
 *
 * ```yaml
 * # cluster.yaml: node i is the i-th entry; node 0 coordinates.
 * nodes:
 *   - 127.0.0.1:7000
 *   - 10.0.0.2:7000
 *   - { host: 10.0.0.3, port: 7000 }
 * workers_per_node: 1
 * connect_timeout_ms: 30000   # optional
 * ```
 *
 * @module
 */
import { ConfigError } from "../core/errors.ts";
import type { FieldSchema } from "../core/types.ts";
import {
  formatHostPort,
  type HostPort,
  hostProblem,
  portProblem,
  splitHostPort,
} from "../core/host_port.ts";
import { parseYamlWithLines } from "./yaml.ts";
import { validateValue } from "./schema.ts";

/** A validated cluster file. */
export interface ClusterFile {
  /** The nodes in rank order: node `i` is `nodes[i]`; node 0 coordinates. */
  nodes: HostPort[];
  /** Worker threads per node. */
  workers_per_node: number;
  /** How long a node waits for its peers when the cluster starts. */
  connect_timeout_ms: number;
}

const CLUSTER_SCHEMA: FieldSchema = {
  type: "object",
  doc: "cluster file",
  fields: {
    nodes: {
      type: "array",
      required: true,
      min: 1,
      max: 64,
      doc: 'list of the nodes, as "host:port" or { host, port }; node 0 coordinates',
    },
    workers_per_node: {
      type: "integer",
      default: 1,
      min: 1,
      max: 64,
      doc: "worker threads per node",
    },
    connect_timeout_ms: {
      type: "integer",
      default: 30_000,
      min: 100,
      max: 3_600_000,
      doc: "how long to wait for the other nodes at startup, in milliseconds",
    },
  },
};

/**
 * Reads and validates a cluster file. Errors are {@linkcode ConfigError}s naming the file and
 * the line: bad YAML, unknown keys, a node that is not `host:port`, a port out of range, the
 * same node listed twice.
 *
 * @example
 * ```ts
 * import { loadClusterFile } from "./cluster_file.ts";
 * import { formatHostPort } from "../core/host_port.ts";
 * const cluster = await loadClusterFile("cluster.yaml");
 * console.log(cluster.nodes.map(formatHostPort), cluster.workers_per_node);
 * ```
 */
export async function loadClusterFile(path: string): Promise<ClusterFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`cluster file "${path}" not found`, {
        hint: "write one with nodes: [host:port, ...]; see README",
      });
    }
    throw new ConfigError(`cannot read cluster file "${path}": ${(e as Error).message}`);
  }
  const parsed = parseYamlWithLines(text, path);
  if (parsed.value === null) {
    throw new ConfigError("the cluster file is empty", {
      file: path,
      hint: "write nodes: [host:port, ...] and workers_per_node: N",
    });
  }
  const v = validateValue(parsed.value, CLUSTER_SCHEMA, parsed) as {
    nodes: unknown[];
    workers_per_node: number;
    connect_timeout_ms: number;
  };
  const at = (p: string) => ({ path: p, file: path, line: parsed.lines.get(p) });
  const seen = new Map<string, number>();
  const nodes = v.nodes.map((entry, i): HostPort => {
    const p = `nodes[${i}]`;
    let a: HostPort | string;
    if (typeof entry === "string") {
      a = splitHostPort(entry);
    } else if (typeof entry === "object" && entry !== null && !Array.isArray(entry)) {
      const o = entry as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        if (k !== "host" && k !== "port") {
          throw new ConfigError(`unknown key ${p}.${k}`, {
            ...at(`${p}.${k}`),
            hint: "a node is { host, port } or a string host:port",
          });
        }
      }
      if (typeof o.host !== "string") {
        throw new ConfigError(`${p}.host: expected a hostname or IP address, got ${show(o.host)}`, {
          ...at(o.host === undefined ? p : `${p}.host`),
          hint: "write e.g. { host: 10.0.0.2, port: 7000 }",
        });
      }
      if (typeof o.port !== "number") {
        throw new ConfigError(`${p}.port: expected a port number, got ${show(o.port)}`, {
          ...at(o.port === undefined ? p : `${p}.port`),
          hint: "write e.g. { host: 10.0.0.2, port: 7000 }",
        });
      }
      const problem = hostProblem(o.host) ?? portProblem(o.port, false);
      a = problem ?? { host: o.host, port: o.port };
    } else {
      a = `expected "host:port" or { host, port }, got ${show(entry)}`;
    }
    if (typeof a === "string") {
      throw new ConfigError(`${p}: ${a}`, {
        ...at(p),
        hint: "write each node as host:port, e.g. 10.0.0.2:7000",
      });
    }
    const id = formatHostPort({ host: a.host.toLowerCase(), port: a.port });
    const first = seen.get(id);
    if (first !== undefined) {
      const firstLine = parsed.lines.get(`nodes[${first}]`);
      throw new ConfigError(
        `${p}: ${id} is listed twice (also nodes[${first}]${
          firstLine !== undefined ? ` on line ${firstLine}` : ""
        })`,
        { ...at(p), hint: "every node needs its own host:port" },
      );
    }
    seen.set(id, i);
    return a;
  });
  return {
    nodes,
    workers_per_node: v.workers_per_node,
    connect_timeout_ms: v.connect_timeout_ms,
  };
}

function show(v: unknown): string {
  if (v === undefined || v === null) return "nothing";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

/** Shortest accepted cluster token, in bytes (UTF-8). */
export const TOKEN_BYTES_MIN = 16;

/** Refuses a token that is too short to resist guessing; `from` names where it came from. */
function checkTokenLength(token: string, from: string): string {
  const bytes = new TextEncoder().encode(token).length;
  if (bytes < TOKEN_BYTES_MIN) {
    throw new ConfigError(
      `the cluster token from ${from} is ${bytes} byte${bytes === 1 ? "" : "s"} long; ` +
        `at least ${TOKEN_BYTES_MIN} are needed`,
      { hint: "make a fresh random one with `lapse token`, and give every node the same" },
    );
  }
  return token;
}

/** Where {@linkcode readToken} looks. */
export interface TokenSource {
  /** `--token-file FILE`; wins over the environment. */
  tokenFile?: string;
  /** The environment (default `Deno.env`); `LAPSE_TOKEN` is read from it. */
  env?: { get(name: string): string | undefined };
}

/**
 * The cluster token: the trimmed contents of `--token-file`, else `LAPSE_TOKEN`. A missing or
 * empty file, an empty variable, neither given, or a token shorter than
 * {@linkcode TOKEN_BYTES_MIN} bytes is a {@linkcode ConfigError}.
 *
 * @example
 * ```ts
 * import { readToken } from "./cluster_file.ts";
 * const flags: Record<string, string | undefined> = { "token-file": "lapse.token" };
 * const token = await readToken({ tokenFile: flags["token-file"], env: Deno.env });
 * ```
 */
export async function readToken(source: TokenSource): Promise<string> {
  if (source.tokenFile !== undefined) {
    const file = source.tokenFile;
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new ConfigError(`token file "${file}" not found`, {
          hint: "check --token-file, or set LAPSE_TOKEN instead",
        });
      }
      throw new ConfigError(`cannot read token file "${file}": ${(e as Error).message}`);
    }
    const token = text.trim();
    if (token === "") {
      throw new ConfigError(`token file "${file}" is empty`, {
        hint: `write a secret into it, e.g. lapse token > ${file}`,
      });
    }
    return checkTokenLength(token, `token file "${file}"`);
  }
  const value = (source.env ?? Deno.env).get("LAPSE_TOKEN");
  if (value !== undefined) {
    const token = value.trim();
    if (token === "") {
      throw new ConfigError("LAPSE_TOKEN is set but empty", {
        hint: "set it to a secret shared by all nodes, e.g. LAPSE_TOKEN=$(lapse token)",
      });
    }
    return checkTokenLength(token, "LAPSE_TOKEN");
  }
  throw new ConfigError("no cluster token: pass --token-file FILE or set LAPSE_TOKEN");
}

/** A fresh random token (32 bytes, hex), e.g. for an embedded local cluster. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
