/**
 * Helpers shared by the integration tests that start real `lapse serve` processes.
 *
 * @module
 */

/** The CLI entry, as a URL that `deno run` accepts. */
export const MAIN = new URL("../../cli/main.ts", import.meta.url).href;

/** The kernel's range of ephemeral ports (what port 0 and outgoing connections get). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim()
      .split(/\s+/).map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch { /* not Linux */ }
  return [32768, 60999];
}

const FIXED_PORT_MIN = 20000;
const FIXED_PORT_TRIES_MAX = 1000;

/**
 * `n` distinct ports nothing listens on, for nodes that need a fixed port (restarted with the
 * same address). They are picked at random below the kernel's ephemeral range, so no port-0
 * listener (embedded clusters, other tests running in parallel) and no outgoing connection can
 * take one between this check and the node's bind; all are bound at once, then released, so
 * two calls in a row cannot hand out the same port. Two parallel tests picking the same port
 * remains possible, at a chance of about n / 10,000.
 */
export function freePorts(n: number): number[] {
  const [lo] = ephemeralRange();
  const max = Math.max(FIXED_PORT_MIN + 1000, lo - 1);
  const held: Deno.TcpListener[] = [];
  try {
    for (let tries = 0; held.length < n; tries++) {
      if (tries > FIXED_PORT_TRIES_MAX) {
        throw new Error(`no ${n} free ports in ${FIXED_PORT_MIN}..${max}`);
      }
      const port = FIXED_PORT_MIN + Math.floor(Math.random() * (max - FIXED_PORT_MIN));
      try {
        held.push(Deno.listen({ hostname: "127.0.0.1", port }));
      } catch (e) {
        if (!(e instanceof Deno.errors.AddrInUse)) throw e;
      }
    }
    return held.map((l) => (l.addr as Deno.NetAddr).port);
  } finally {
    for (const l of held) l.close();
  }
}

/** The arguments of `deno` that run `lapse serve` for node `node` of `clusterFile`. */
export function serveArgs(clusterFile: string, node: number, ...extra: string[]): string[] {
  return [
    "run",
    "--allow-all",
    "--quiet",
    MAIN,
    "serve",
    "--cluster",
    clusterFile,
    "--node",
    String(node),
    ...extra,
  ];
}
