/**
 * `host:port` addresses: one type and one parser for the cluster file, the CLI and the node.
 *
 * @module
 */

/** A node's address. `host` is a hostname, an IPv4 address or an IPv6 address (no brackets). */
export interface HostPort {
  /** Hostname or IP address. */
  host: string;
  /** TCP port, 1-65535. */
  port: number;
}

const HOSTNAME_LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** Why `host` is not a valid host, or `undefined` if it is. */
export function hostProblem(host: string): string | undefined {
  if (host === "") return "the host is empty";
  if (host.includes(":")) {
    return /^[0-9a-fA-F:.]+$/.test(host) && (host.match(/::/g)?.length ?? 0) <= 1
      ? undefined
      : `"${host}" is not a valid IPv6 address`;
  }
  if (/^[\d.]+$/.test(host)) {
    const parts = host.split(".");
    if (parts.length !== 4 || parts.some((p) => p === "" || Number(p) > 255)) {
      return `"${host}" is not a valid IPv4 address`;
    }
    return undefined;
  }
  if (host.length > 253 || !host.split(".").every((l) => HOSTNAME_LABEL.test(l))) {
    return `"${host}" is not a valid hostname`;
  }
  return undefined;
}

export function portProblem(port: number, allowPortZero: boolean): string | undefined {
  if (!Number.isInteger(port) || port < (allowPortZero ? 0 : 1) || port > 65535) {
    return `port ${port} is out of range (${allowPortZero ? 0 : 1}-65535)`;
  }
  return undefined;
}

/**
 * Splits and checks `host:port` (`[::1]:7000` for IPv6). Returns the address, or the problem
 * as a string (callers turn it into their own error type).
 *
 * @example
 * ```ts
 * splitHostPort("127.0.0.1:7000"); // { host: "127.0.0.1", port: 7000 }
 * splitHostPort("127.0.0.1"); // 'no port in "127.0.0.1"'
 * ```
 */
export function splitHostPort(
  text: string,
  options: { allowPortZero?: boolean } = {},
): HostPort | string {
  const t = text.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]*)\]:(.*)$/.exec(t);
  if (v6) {
    host = v6[1];
    portText = v6[2];
    if (!host.includes(":")) return `"${host}" in brackets is not an IPv6 address`;
  } else {
    const colon = t.lastIndexOf(":");
    if (colon < 0) return `no port in "${t}"`;
    host = t.slice(0, colon);
    portText = t.slice(colon + 1);
    if (host.includes(":")) return `IPv6 addresses need brackets, e.g. [::1]:7000, got "${t}"`;
  }
  if (!/^\d{1,5}$/.test(portText)) return `"${portText}" is not a port number in "${t}"`;
  const port = Number(portText);
  const problem = hostProblem(host) ?? portProblem(port, options.allowPortZero ?? false);
  return problem ?? { host, port };
}

/** `host:port`, with brackets around IPv6 addresses. */
export function formatHostPort(a: HostPort): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * Parses `host:port` (`[::1]:7000` for IPv6) or throws a `TypeError` naming the address.
 *
 * @example
 * ```ts
 * import { parseAddress } from "./host_port.ts";
 * const a = parseAddress("127.0.0.1:7000");
 * console.assert(a.host === "127.0.0.1" && a.port === 7000);
 * ```
 */
export function parseAddress(address: string, options: { allowPortZero?: boolean } = {}): HostPort {
  const r = splitHostPort(address, options);
  if (typeof r === "string") {
    throw new TypeError(
      `Invalid address "${address}": ${r} (expected host:port, e.g. 127.0.0.1:7000)`,
    );
  }
  return r;
}
