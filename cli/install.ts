/**
 * Installs the `lapse` command: writes a small POSIX launcher `ROOT/bin/lapse` that runs this
 * checkout's `cli/main.ts` from source with exactly the versions of its `deno.lock`
 * (`--lock ... --frozen`) and its `deno.json`, from any directory.
 *
 *     npx -y deno@2.9.6 task install                 # ~/.local/bin/lapse
 *     npx -y deno@2.9.6 task install --root /opt/lapse
 *
 * Why not `deno install -g`: its shim calls `deno` from PATH (absent on a machine with only
 * Node/npm) and resolves npm versions afresh in a lockfile of its own (so cbor-x's optional
 * `cbor-extract` moved to a version whose platform packages are missing). The launcher runs the
 * Deno binary that ran the install (the npx cache's one, when installed through npx); if that
 * binary is gone, it falls back to `npx -y deno@2.9.6`, so it keeps working on a Node-only
 * machine. The checkout must stay where it is (the launcher points into it).
 *
 * @module
 */
import { HELP, parseCommandArgs } from "./args.ts";
import { UsageError } from "../core/errors.ts";
import { runMain } from "./errors.ts";

/** The Deno version the launcher falls back to through npx. */
export const DENO_VERSION = "2.9.6";

const SPEC = {
  name: "install",
  summary: "install the `lapse` command (a launcher that runs this checkout with deno.lock)",
  usage: "deno task install [--root DIR] [--name NAME] [--deno PATH|npx]",
  options: {
    root: {
      type: "string",
      arg: "DIR",
      doc: "installation root; the command goes to DIR/bin (default: ~/.local)",
    },
    name: { type: "string", arg: "NAME", default: "lapse", doc: "command name" },
    deno: {
      type: "string",
      arg: "PATH",
      doc:
        `Deno binary the launcher runs (default: this one); "npx" always uses npx -y deno@${DENO_VERSION}`,
    },
  },
} as const;

/** Quotes `s` for a POSIX shell. */
function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The launcher script for the checkout at `checkout`, running `deno` (a path or "npx"). */
export function launcherScript(checkout: string, deno: string): string {
  const run = [
    "run",
    "--allow-all",
    "--quiet",
    "--config",
    '"$LAPSE_HOME/deno.json"',
    '--lock="$LAPSE_HOME/deno.lock"',
    "--frozen",
    '"$LAPSE_HOME/cli/main.ts"',
    '"$@"',
  ].join(" ");
  return [
    "#!/bin/sh",
    "# The lapse command, written by `deno task install` (cli/install.ts) of this checkout: runs",
    "# it from source with the versions of its deno.lock. Reinstall if the checkout moves.",
    `LAPSE_HOME=${shQuote(checkout)}`,
    `DENO=${shQuote(deno)}`,
    'if [ "$DENO" != npx ] && [ -x "$DENO" ]; then',
    `  exec "$DENO" ${run}`,
    "fi",
    "# The Deno binary of the install is gone (e.g. a cleaned npx cache): Node/npm is enough.",
    `exec npx -y deno@${DENO_VERSION} ${run}`,
    "",
  ].join("\n");
}

/** Writes the launcher; returns its path. Atomic: a temp file renamed over the old one. */
export async function install(
  opts: { root: string; name: string; deno: string; checkout: string },
): Promise<string> {
  for (const f of ["deno.json", "deno.lock", "cli/main.ts"]) {
    try {
      await Deno.stat(`${opts.checkout}/${f}`);
    } catch {
      throw new UsageError(`${opts.checkout}/${f} is missing: run the install from a checkout`);
    }
  }
  if (!/^[\w.-]+$/.test(opts.name)) {
    throw new UsageError(`--name "${opts.name}": use letters, digits, ".", "_" or "-"`);
  }
  const bin = `${opts.root}/bin`;
  await Deno.mkdir(bin, { recursive: true });
  const path = `${bin}/${opts.name}`;
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, launcherScript(opts.checkout, opts.deno), { mode: 0o755 });
  await Deno.chmod(tmp, 0o755);
  await Deno.rename(tmp, path);
  return path;
}

async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(SPEC, args);
  if (parsed === HELP) return 0;
  const v = parsed.values;
  const home = Deno.env.get("HOME");
  const root = v.root ?? (home ? `${home}/.local` : undefined);
  if (root === undefined) throw new UsageError("no HOME: give --root DIR");
  const checkout = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const deno = v.deno ?? Deno.execPath();
  const path = await install({ root, name: v.name, deno, checkout });
  const bin = path.slice(0, path.lastIndexOf("/"));
  console.log(`installed ${path} (runs ${checkout} with its deno.lock)`);
  const onPath = (Deno.env.get("PATH") ?? "").split(":").includes(bin);
  if (!onPath) console.log(`add it to your PATH:  export PATH="${bin}:$PATH"`);
  console.log(`try:  ${v.name} train --config mf`);
  return 0;
}

// `deno task install -- --root DIR` passes the `--` on: skip it, as npm users type it.
if (import.meta.main) runMain(() => main(Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args));
