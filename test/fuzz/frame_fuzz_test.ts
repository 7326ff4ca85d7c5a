/**
 * A seeded frame fuzzer against a real 2-node cluster (`lapse serve` processes on 127.0.0.1):
 * thousands of connections and frames of every kind a stranger or a token holder can send,
 * then the cluster must still be up, run a pscheck job that passes, have stayed within a
 * memory bound, and have logged a handful of lines, not one per connection.
 *
 * Kinds: random bytes; lying frame lengths (up to 4 GiB); handshakes cut short; wrong and
 * replayed proofs (answered slowly: see server/admission.ts); random CBOR and random messages
 * from an authenticated driver (including SUBMITs of random configs).
 *
 * Replay a failure: `FUZZ_SEED=<seed> deno test -A test/fuzz/frame_fuzz_test.ts`.
 */
import assert from "node:assert/strict";
import { encode } from "cbor-x";
import { Rng } from "../../core/rng.ts";
import { handshakeDial, HandshakeType } from "../../server/handshake.ts";
import { encodeFrame } from "../../server/wire.ts";
import { Msg } from "../../server/messages.ts";
import { runJob } from "../../driver/driver.ts";
import { validateJobConfig } from "../../config/job_config.ts";
import { task as pscheck } from "../../tasks/pscheck.ts";
import { freePorts, serveArgs } from "../integration/helpers.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261130);
const TOKEN = "frame-fuzz-token-0123456789abcdef";
/** Frames (or connections) per kind; wrong tokens are slowed down, so fewer of those. */
const PER_KIND = 2000;
const WRONG_TOKENS = 96;
/** Node 0 may grow by at most this much over its idle size while being fuzzed. */
const RSS_GROWTH_MB_MAX = 150;
const PARALLEL = 24;

function memMb(pid: number): { rss: number; hwm: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

function bytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 255;
  return b;
}

/** A random JS value of bounded size: what an attacker's CBOR decodes to. */
function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.nextInt(depth > 2 ? 6 : 9)) {
    case 0:
      return rng.nextInt(2 ** 32) - 2 ** 31;
    case 1:
      return [NaN, Infinity, -0, 1e308, 0.5][rng.nextInt(5)];
    case 2:
      return "s".repeat(rng.nextInt(64));
    case 3:
      return rng.nextInt(2) === 0;
    case 4:
      return null;
    case 5:
      return [
        new Uint32Array(rng.nextInt(64)),
        new Float32Array(rng.nextInt(64)),
        new Int32Array(rng.nextInt(8)),
        new Float64Array(rng.nextInt(8)),
        bytes(rng, rng.nextInt(64)),
      ][rng.nextInt(5)];
    case 6:
      return Array.from({ length: rng.nextInt(6) }, () => randomValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const keys = ["t", "job", "id", "tb", "keys", "vals", "config", "node", "epoch", "x"];
      for (let i = rng.nextInt(6); i > 0; i--) {
        o[keys[rng.nextInt(keys.length)]] = randomValue(rng, depth + 1);
      }
      return o;
    }
  }
}

/** A random message: a known or unknown type with random fields, or a random SUBMIT. */
function randomMessage(rng: Rng): Record<string, unknown> {
  const msg = randomValue(rng, 1);
  const o = (typeof msg === "object" && msg !== null && !Array.isArray(msg) &&
      !ArrayBuffer.isView(msg))
    ? msg as Record<string, unknown>
    : { x: msg };
  const types = Object.values(Msg).filter((v) => typeof v === "number") as number[];
  const r = rng.nextInt(4);
  if (r === 0) o.t = rng.nextInt(256);
  else if (r === 1) o.t = types[rng.nextInt(types.length)];
  else if (r === 2) {
    o.t = Msg.SUBMIT;
    o.config = {
      task: ["pscheck", "mf", "nope", 7][rng.nextInt(4)],
      model: randomValue(rng, 1),
      data: randomValue(rng, 1),
      cluster: { nodes: rng.nextInt(70), workers_per_node: rng.nextInt(3) },
      ps: randomValue(rng, 2),
    };
  } else o.t = [HandshakeType.hello, HandshakeType.reject, HandshakeType.proof][rng.nextInt(3)];
  return o;
}

function frameOf(body: Uint8Array): Uint8Array {
  const f = new Uint8Array(4 + body.length);
  new DataView(f.buffer).setUint32(0, body.length, true);
  f.set(body, 4);
  return f;
}

async function tryWrite(c: Deno.Conn, b: Uint8Array): Promise<void> {
  try {
    let done = 0;
    while (done < b.length) done += await c.write(b.subarray(done));
  } catch {
    // The node closed it: that is one of the allowed answers.
  }
}

function close(c: Deno.Conn): void {
  try {
    c.close();
  } catch {
    // Already closed.
  }
}

/** Runs `fn(i)` for i < n with at most PARALLEL at once. */
async function pool(n: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < n) await fn(next++);
  }));
}

Deno.test({
  name: `frame fuzzer: a real node survives thousands of hostile frames (seed ${SEED})`,
  sanitizeResources: false, // connections the node closes under us are closed in the loop
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "lapse-fuzz-" });
    const [p0, p1] = freePorts(2);
    await Deno.writeTextFile(
      `${dir}/cluster.yaml`,
      `nodes: ["127.0.0.1:${p0}", "127.0.0.1:${p1}"]\nconnect_timeout_ms: 30000\n`,
    );
    const start = (i: number) =>
      new Deno.Command(Deno.execPath(), {
        args: serveArgs(`${dir}/cluster.yaml`, i, "--data-dir", dir),
        env: { LAPSE_TOKEN: TOKEN },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    const nodes = [start(0), start(1)];
    const logs = nodes.map((n) => new Response(n.stderr).text());
    const hostname = "127.0.0.1", port = p0;
    const rng = new Rng(SEED);
    const counts: Record<string, number> = {};
    const count = (k: string) => counts[k] = (counts[k] ?? 0) + 1;
    const config = validateJobConfig({
      task: "pscheck",
      model: { keys: 256, rounds: 200 },
      cluster: { nodes: 2, workers_per_node: 1 },
    }, pscheck.schema);
    try {
      // The cluster is up once a job runs (it also warms node 0 up: its idle size is honest).
      await runJob(`${hostname}:${port}`, TOKEN, config, {}, 30_000, AbortSignal.timeout(60_000));
      const idle = memMb(nodes[0].pid);

      // 1. Random bytes, 2. lying lengths, 3. handshakes cut short.
      await pool(PER_KIND * 3, async (i) => {
        const kind = i % 3;
        const r = new Rng(SEED + i);
        let c: Deno.Conn;
        try {
          c = await Deno.connect({ hostname, port });
        } catch {
          count("connect_failed");
          return;
        }
        if (kind === 0) {
          await tryWrite(c, bytes(r, r.nextInt(8192)));
        } else if (kind === 1) {
          const head = new Uint8Array(4 + r.nextInt(64));
          const lie = [2 ** 32 - 1, 4096, 4097, 64 * 1024 * 1024, r.nextU32()][r.nextInt(5)];
          new DataView(head.buffer).setUint32(0, lie, true);
          await tryWrite(c, head);
        } else {
          const hello = encodeFrame({
            t: HandshakeType.hello,
            v: 1,
            nonce: bytes(r, 32),
            role: r.nextInt(2) ? "driver" : "node",
            id: r.nextInt(4),
          });
          await tryWrite(c, hello.subarray(0, r.nextInt(hello.length + 1)));
        }
        count(["random", "lying", "cut_short"][kind]);
        close(c);
      });

      // 4. Wrong tokens and a replayed proof (each answered after a growing delay). The node
      // first works off its backlog of the connections above (a burst of them can fill the
      // per-address cap for a moment, and then closes new ones at once).
      await new Promise((r) => setTimeout(r, 1000));
      let rejected = 0;
      const guessing_since = performance.now();
      await pool(WRONG_TOKENS, async (i) => {
        const c = await Deno.connect({ hostname, port });
        try {
          const token = i % 2 === 0 ? `wrong-token-${i}-0123456789` : TOKEN.slice(0, -1) + "X";
          await handshakeDial(c, token, { role: "driver" }, 30_000);
        } catch (e) {
          if (/rejected our cluster token/.test((e as Error).message)) rejected++;
          else count(`other: ${(e as Error).message.replace(/\d+/g, "N")}`);
        }
        close(c);
      });
      const guesses_per_s = WRONG_TOKENS / ((performance.now() - guessing_since) / 1000);
      {
        // A proof recorded from a good handshake does not verify against a fresh challenge.
        const c = await Deno.connect({ hostname, port });
        await tryWrite(
          c,
          encodeFrame({ t: HandshakeType.hello, v: 1, nonce: bytes(rng, 32), role: "driver" }),
        );
        await tryWrite(c, encodeFrame({ t: HandshakeType.proof, mac: bytes(rng, 32) }));
        await new Promise((r) => setTimeout(r, 100));
        close(c);
      }

      // 5. Random CBOR and random messages from authenticated drivers.
      let sent = 0;
      for (let conn_i = 0; sent < PER_KIND * 2; conn_i++) {
        const c = await Deno.connect({ hostname, port });
        const hs = await handshakeDial(c, TOKEN, { role: "driver" }, 30_000);
        void hs;
        // Drain whatever the node answers, so that its send queue never blocks on us.
        const reader = (async () => {
          const buf = new Uint8Array(64 * 1024);
          try {
            while ((await c.read(buf)) !== null) { /* drop */ }
          } catch { /* closed */ }
        })();
        // Messages with a numeric type are handled (answered or dropped) and the connection
        // stays open; the last frame is malformed CBOR or CBOR of another shape, which closes it.
        for (let k = 0; k < 40 && sent < PER_KIND * 2; k++, sent++) {
          await tryWrite(c, encodeFrame(randomMessage(rng)));
        }
        const last = rng.nextInt(2) === 0
          ? frameOf(bytes(rng, rng.nextInt(512)))
          : frameOf(encode(randomValue(rng)) as Uint8Array);
        await tryWrite(c, last);
        sent++;
        close(c);
        await reader;
      }
      counts.driver_frames = sent;
      const after = memMb(nodes[0].pid);

      // Still serving: a pscheck job runs and passes.
      let last: Record<string, number> = {};
      await runJob(
        `${hostname}:${port}`,
        TOKEN,
        config,
        {
          onEpoch: (_e, m) => last = m,
        },
        30_000,
        AbortSignal.timeout(60_000),
      );
      assert.equal(pscheck.verdict!(last), null, `seed ${SEED}: ${JSON.stringify(last)}`);
      // Closed at once (over the cap) also counts as refused; most get their REJECT.
      assert.ok(
        rejected >= WRONG_TOKENS / 2,
        `seed ${SEED}: ${rejected} wrong tokens rejected; ${JSON.stringify(counts)}`,
      );
      // 1,700 per second before the guesses were slowed down.
      assert.ok(guesses_per_s < 50, `seed ${SEED}: ${guesses_per_s.toFixed(0)} guesses/s`);
      assert.ok(
        after.hwm - idle.rss < RSS_GROWTH_MB_MAX,
        `seed ${SEED}: node 0 peaked at ${after.hwm.toFixed(0)} MB (idle ${
          idle.rss.toFixed(0)
        } MB)`,
      );
      console.log(
        `seed ${SEED}: ${JSON.stringify(counts)}; node 0 idle ${idle.rss.toFixed(0)} MB, ` +
          `peak ${after.hwm.toFixed(0)} MB; ${guesses_per_s.toFixed(1)} wrong tokens answered/s`,
      );
    } finally {
      for (const n of nodes) {
        try {
          n.kill("SIGTERM");
        } catch { /* gone */ }
      }
      const codes = await Promise.all(nodes.map((n) => n.status));
      const [log0] = await Promise.all(logs);
      await Deno.remove(dir, { recursive: true });
      // Every node was up until we stopped it; node 0's log stayed short.
      for (const s of codes) assert.equal(s.signal ?? "SIGTERM", "SIGTERM", log0);
      const lines = log0.split("\n").filter((l) => l !== "");
      assert.ok(lines.length < 100, `seed ${SEED}: ${lines.length} log lines:\n${log0}`);
      assert.doesNotMatch(log0, /internal error|^\s+at /m, `seed ${SEED}:\n${log0}`);
      if (Deno.env.get("FUZZ_LOG")) console.log(log0);
    }
  },
});
