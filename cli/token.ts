/**
 * `lapse token`: prints a fresh random cluster token (32 random bytes as 64 hex digits), to be
 * given to every node and driver of one cluster (`--token-file FILE` or `LAPSE_TOKEN`).
 *
 * @module
 */
import { randomToken } from "../config/cluster_file.ts";
import { HELP, parseCommandArgs } from "./args.ts";

const SPEC = {
  name: "token",
  summary: "Print a fresh random cluster token (32 random bytes, hex).",
  usage: "lapse token",
  options: {},
  details: `Example:
  lapse token > cluster.token && chmod 600 cluster.token
  lapse serve --cluster cluster.yaml --node 0 --token-file cluster.token`,
} as const;

/** Runs `lapse token`. */
export function token(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return Promise.resolve(0);
  console.log(randomToken());
  return Promise.resolve(0);
}
