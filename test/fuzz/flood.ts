/**
 * Floods one real `lapse serve` node on 127.0.0.1 the way issue 10 did, and prints the node's
 * memory (VmRSS now, VmHWM peak, from /proc) after each phase. A measurement tool, not a test:
 * every loop is bounded and the node is stopped at the end. Loopback only.
 *
 * ```sh
 * deno run -A test/fuzz/flood.ts [--main PATH/cli/main.ts] [--pending 15000] [--frames 8]
 * ```
 *
 * Phases:
 * 1. `pending`: that many connections each send the first bytes of a handshake frame and hold.
 * 2. `frames`: that many authenticated driver connections each announce a 60 MiB frame and send
 *    59 MiB of it, then hold.
 * 3. `guesses`: wrong-token handshakes for 3 s, 16 in parallel; prints the rate.
 * The node's stderr lines are counted (the refused-connection log).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { handshakeDial } from "../../server/handshake.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    main: { type: "string", default: new URL("../../cli/main.ts", import.meta.url).pathname },
    pending: { type: "string", default: "15000" },
    frames: { type: "string", default: "8" },
    "guess-s": { type: "string", default: "3" },
  },
});
const PENDING = Number(values.pending);
const FRAMES = Number(values.frames);
const GUESS_MS = Number(values["guess-s"]) * 1000;
const TOKEN = "flood-test-token-0123456789abcdef";

function mem(pid: number): { rss_mb: number; hwm_mb: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss_mb: Math.round(kb("VmRSS") / 1024), hwm_mb: Math.round(kb("VmHWM") / 1024) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = Deno.makeTempDirSync({ prefix: "lapse-flood-" });
const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (probe.addr as Deno.NetAddr).port;
probe.close();
Deno.writeTextFileSync(`${dir}/cluster.yaml`, `nodes: ["127.0.0.1:${port}"]\n`);
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-all",
    "--quiet",
    values.main,
    "serve",
    "--cluster",
    `${dir}/cluster.yaml`,
    "--node",
    "0",
  ],
  env: { LAPSE_TOKEN: TOKEN },
  stdin: "null",
  stdout: "null",
  stderr: "piped",
}).spawn();
// Count the node's stderr lines (the refused-connection log).
let lines = 0;
const counting = (async () => {
  const dec = new TextDecoder();
  for await (const chunk of child.stderr) lines += dec.decode(chunk).split("\n").length - 1;
})();
void counting;

async function connectRetry(): Promise<Deno.TcpConn> {
  for (let i = 0;; i++) {
    try {
      return await Deno.connect({ hostname: "127.0.0.1", port });
    } catch (e) {
      if (i > 200) throw e;
      await sleep(100);
    }
  }
}

(await connectRetry()).close();
await sleep(500);
const pid = child.pid;
const report = (phase: string, extra = "") =>
  console.log(`${phase.padEnd(28)} ${JSON.stringify(mem(pid))} log_lines=${lines} ${extra}`);
report("idle");

// 1. Pending handshakes that never finish.
{
  const conns: Deno.TcpConn[] = [];
  const head = new Uint8Array(64);
  new DataView(head.buffer).setUint32(0, 4000, true); // a 4000-byte HELLO, never completed
  let refused = 0;
  for (let i = 0; i < PENDING; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(c);
      c.write(head).catch(() => {});
    } catch {
      refused++;
      await sleep(1);
    }
    if (i % 2000 === 1999) await sleep(50);
  }
  await sleep(2000);
  report(`pending x${PENDING}`, `connect_failed=${refused}`);
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed by the node */ }
  }
  await sleep(2000);
  report("after pending closed");
}

// 2. Authenticated drivers sending most of a 60 MiB frame.
{
  const conns: Deno.TcpConn[] = [];
  const frameBytes = 60 * 1024 * 1024;
  const chunk = new Uint8Array(1024 * 1024);
  let failed = 0;
  for (let i = 0; i < FRAMES; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await handshakeDial(c, TOKEN, { role: "driver" }, 10_000);
    } catch {
      failed++;
      continue;
    }
    conns.push(c);
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, frameBytes, true);
    try {
      await c.write(head);
      for (let sent = 0; sent < frameBytes - chunk.length; sent += chunk.length) {
        await c.write(chunk);
      }
    } catch {
      failed++; // the node closed it: the limit works
    }
  }
  await sleep(1500);
  report(`partial 60MiB frames x${FRAMES}`, `closed_by_node=${failed}`);
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
  await sleep(1500);
  report("after frames closed");
}

// 3. Wrong-token guesses.
{
  let guesses = 0;
  const end = Date.now() + GUESS_MS;
  const one = async () => {
    while (Date.now() < end) {
      let c: Deno.TcpConn;
      try {
        c = await Deno.connect({ hostname: "127.0.0.1", port });
      } catch {
        await sleep(5);
        continue;
      }
      try {
        await handshakeDial(c, "wrong-token-wrong-token-wrong", { role: "driver" }, 5000);
      } catch {
        // expected
      }
      guesses++;
    }
  };
  await Promise.all(Array.from({ length: 16 }, one));
  report("wrong-token guesses", `answered_per_s=${Math.round(guesses / (GUESS_MS / 1000))}`);
}

child.kill("SIGTERM");
await child.status;
await Deno.remove(dir, { recursive: true });
