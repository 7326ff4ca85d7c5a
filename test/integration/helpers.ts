/**
 * Helpers shared by the integration tests that start real `lapse serve` processes.
 *
 * @module
 */

/** The CLI entry, as a URL that `deno run` accepts. */
export const MAIN = new URL("../../cli/main.ts", import.meta.url).href;

/**
 * `n` distinct ports nothing listens on: all are bound at once, then released, so two calls in
 * a row cannot hand out the same port.
 */
export function freePorts(n: number): number[] {
  const ls = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = ls.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of ls) l.close();
  return ports;
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
