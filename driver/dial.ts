/**
 * The driver's side of the wire: dialing a node as a driver.
 *
 * @module
 */
import { userError } from "../core/errors.ts";
import { parseAddress } from "../core/host_port.ts";
import { Connection, type ConnectionOptions } from "../server/connection.ts";
import { describeWho, handshakeDial, HandshakeError } from "../server/handshake.ts";
import {
  connectErrorText,
  DIAL_BACKOFF_MS_MAX,
  DIAL_BACKOFF_MS_MIN,
  sleep,
} from "../server/peers.ts";

/**
 * Connects the driver to a node (normally node 0), retrying until `timeoutMs` while the node
 * is still starting. The returned connection is not started: set `onMessage`, then `start()`.
 *
 * @throws {Error} when the node rejects our token, or nothing answers in time.
 */
export async function dialDriver(
  address: string,
  token: string,
  timeoutMs: number,
  options: Partial<Omit<ConnectionOptions, "decoder">> = {},
): Promise<Connection> {
  const { host: hostname, port } = parseAddress(address);
  const deadline = Date.now() + timeoutMs;
  let backoffMs = DIAL_BACKOFF_MS_MIN;
  let lastError = "";
  const hint = "(check --token-file / LAPSE_TOKEN)";
  while (Date.now() < deadline) {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname, port });
    } catch (err) {
      lastError = connectErrorText(err);
      await sleep(Math.min(backoffMs, Math.max(0, deadline - Date.now())));
      backoffMs = Math.min(2 * backoffMs, DIAL_BACKOFF_MS_MAX);
      continue;
    }
    try {
      const result = await handshakeDial(
        conn,
        token,
        { role: "driver" },
        Math.max(1, deadline - Date.now()),
        { frameBytesMax: options.frameBytesMax },
      );
      const name = result.peer ? `${describeWho(result.peer)} (${address})` : address;
      return new Connection(conn, {
        ...options,
        name: options.name ?? name,
        decoder: result.decoder,
      });
    } catch (err) {
      if (!(err instanceof HandshakeError)) throw err;
      if (err.kind === "rejected") {
        throw userError(`the lapse node at ${address} rejected our cluster token ${hint}`);
      }
      if (err.kind === "wrong_token") {
        throw userError(`the lapse node at ${address} does not know our cluster token ${hint}`);
      }
      if (err.kind === "refused" || err.kind === "protocol") {
        throw userError(`the lapse node at ${address}: ${err.message}`, { cause: err });
      }
      lastError = err.message;
    }
  }
  throw userError(
    `no lapse node answered at ${address} within ${timeoutMs} ms` +
      (lastError ? ` (last error: ${lastError})` : "") + "; is `lapse serve` running there?",
  );
}
