/**
 * The message union and its validator (server/messages.ts), and the wire round trip of every
 * message type at and beyond the sizes the config schema allows: random messages are encoded
 * into frames, decoded as a receiving node does, validated, and compared field by field.
 */
import assert from "node:assert/strict";
import { Rng } from "../../core/rng.ts";
import {
  fromNamed,
  Msg,
  type NamedNumbers,
  OTHER_JOB,
  toNamed,
  validateMessage,
  type ValidationContext,
} from "../../server/messages.ts";
import {
  decodeMessage,
  encodeFrame,
  FRAME_BYTES_MAX_DEFAULT,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
} from "../../server/wire.ts";
import type { JobConfig } from "../../core/types.ts";

const NODES = 4;
const JOB = 12345;
/** Tables of the receiving job: a small one, and one with 1M keys (the batch limit). */
const TABLES = [{ keys: 100, dim: 3 }, { keys: 1_100_000, dim: 1 }];
const AT_NODE = (from: number): ValidationContext => ({
  from: { node: from, nodes: NODES },
  job: { id: JOB, tables: TABLES },
});

const CONFIG = {
  task: "pscheck",
  seed: 1,
  data: {},
  model: { keys: 10 },
  cluster: { nodes: 2, workers_per_node: 1 },
  ps: { mode: "lapse", location_caches: true, placement: "range" },
  localize: [],
} as unknown as JobConfig;

function u32(rng: Rng, n: number, below: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.nextInt(below);
  return a;
}

function f32(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.nextFloat() * 2 - 1;
  return a;
}

function named(rng: Rng, n: number): NamedNumbers {
  const names = Array.from({ length: n }, (_, i) => `name_${i}`);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = rng.nextFloat() * 1e6;
  return { names, values };
}

/** A random valid message of type `t` from node `from`, with `n` entries where that applies. */
function randomMessage(rng: Rng, t: number, from: number, n: number): Record<string, unknown> {
  const table = n > TABLES[0].keys ? 1 : rng.nextInt(2);
  const { keys, dim } = TABLES[table];
  const job = JOB;
  const k = () => u32(rng, n, keys);
  switch (t) {
    case Msg.PULL:
      return {
        t,
        job,
        table,
        origin: rng.nextInt(NODES),
        requests: u32(rng, n, 2 ** 32),
        keys: k(),
        positions: u32(rng, n, n),
        need: rng.nextInt(100),
        barriers: rng.nextInt(10),
      };
    case Msg.PUSH:
      return {
        t,
        job,
        table,
        origin: rng.nextInt(NODES),
        requests: u32(rng, n, 2 ** 32),
        keys: k(),
        positions: u32(rng, n, n),
        values: f32(rng, n * dim),
      };
    case Msg.PULL_R:
      return {
        t,
        job,
        table,
        holder: from,
        requests: u32(rng, n, 2 ** 32),
        keys: k(),
        positions: u32(rng, n, n),
        values: f32(rng, n * dim),
        clock: rng.nextInt(100),
      };
    case Msg.PUSH_R:
      return { t, job, table, holder: from, requests: u32(rng, n, 2 ** 32), keys: k() };
    case Msg.LOCALIZE:
      return { t, job, table, dest: from, keys: k() };
    case Msg.HANDOVER:
      return { t, job, table, dest: rng.nextInt(NODES), keys: k() };
    case Msg.TRANSFER:
      return { t, job, table, keys: k(), values: f32(rng, n * dim) };
    case Msg.CLOCK:
      return {
        t,
        job,
        worker: rng.nextInt(8),
        clock: rng.nextInt(1000),
        idleAt: rng.nextInt(3) - 1,
      };
    case Msg.PREPARE:
      return { t, job, config: CONFIG };
    case Msg.PREPARED:
    case Msg.RUN:
    case Msg.WORKERS_DONE:
    case Msg.FINISH:
      return { t, job };
    case Msg.BARRIER:
      return { t, job, clock: rng.nextInt(1000) };
    case Msg.BARRIER_GO:
      return { t, job, generation: rng.nextInt(1000), clock: rng.nextInt(1000) };
    case Msg.PROGRESS:
      return { t, job, points: rng.nextInt(1e9), epochPoints: rng.nextInt(1e9) };
    case Msg.EPOCH:
      return {
        t,
        job,
        epoch: rng.nextInt(100),
        sums: named(rng, n),
        local: n,
        remote: 2,
        messages: 3,
        bytes: 4e9,
      };
    case Msg.FINISHED:
      return { t, job, stats: named(rng, n) };
    case Msg.ABORT:
      return { t, job, reason: "the driver disconnected ✓" };
    case Msg.CHECKPOINT_READY:
    case Msg.CHECKPOINT_WRITE:
    case Msg.CHECKPOINT_GO:
      return { t, job, epoch: rng.nextInt(100) };
    case Msg.CHECKPOINT_DONE:
      return {
        t,
        job,
        epoch: 3,
        file: { node: from, path: "node-1.ckpt", bytes: 4e9, hash: rng.nextInt(2 ** 32) },
        writeSeconds: 0.25,
      };
    case Msg.FAILED:
    case Msg.LOG:
      return { t, job, node: rng.nextInt(NODES), message: "x".repeat(n % 5000) };
    case Msg.SUBMIT:
      return { t, config: CONFIG };
    case Msg.JOB_INFO:
      return { t, job, nodes: 3, workers: 6 };
    case Msg.JOB_PROGRESS:
      return { t, job, points: 1.5, epochPoints: 7 };
    case Msg.JOB_EPOCH:
      return { t, job, epoch: 2, metrics: named(rng, n) };
    case Msg.JOB_DONE:
      return {
        t,
        job,
        wallSeconds: 1.25,
        loadSeconds: 0.5,
        nodeStats: [named(rng, n), named(rng, 0)],
      };
    case Msg.JOB_ERROR:
    case Msg.JOB_LOG:
      return { t, job, node: 2, message: "no" };
    case Msg.ERROR:
      return { t, message: "bad" };
  }
  throw new Error(`no generator for type ${t}`);
}

/** Who receives a message of type `t` in the cluster (for the validator's context). */
function contextOf(t: number, from: number): ValidationContext {
  if (t === Msg.SUBMIT) return { from: "driver" };
  if (t >= Msg.JOB_INFO) return { from: "coordinator" };
  return AT_NODE(from);
}

/** Encodes, frames, decodes (reusing a receive buffer, as a connection does). */
function roundTrip(msg: Record<string, unknown>, decoder: FrameDecoder): Record<string, unknown> {
  decoder.push(encodeFrame(msg));
  const body = decoder.next();
  assert.ok(body !== null, "one whole frame");
  assert.equal(decoder.next(), null);
  return decodeMessage(body);
}

const ALL_TYPES = Object.values(Msg);

Deno.test("every message type round-trips the wire and passes the validator (random, seeded)", () => {
  const decoder = new FrameDecoder(FRAME_BYTES_MAX_DEFAULT, { reuse: true });
  for (let seed = 1; seed <= 40; seed++) {
    const rng = new Rng(seed);
    for (const t of ALL_TYPES) {
      const from = rng.nextInt(NODES);
      // Mostly small batches; sometimes large ones, across the CBOR length widths.
      const n = 1 + (seed % 4 === 0 ? rng.nextInt(70_000) : rng.nextInt(300));
      const msg = randomMessage(rng, t, from, n);
      const got = roundTrip(msg, decoder);
      assert.equal(validateMessage(got, contextOf(t, from)), null, `seed ${seed} type ${t}`);
      assert.deepEqual(got, msg, `seed ${seed} type ${t}`);
    }
  }
});

Deno.test("65,536+ names, 1M-key batches and empty arrays round-trip", () => {
  const decoder = new FrameDecoder(FRAME_BYTES_MAX_DEFAULT, { reuse: true });
  const rng = new Rng(7);
  // Per-name numbers beyond a 16-bit count (a task's sums for 33,000 keys had 66,000 names).
  for (const n of [65_535, 65_536, 70_000, 200_000]) {
    for (const t of [Msg.EPOCH, Msg.FINISHED, Msg.JOB_EPOCH, Msg.JOB_DONE]) {
      const msg = randomMessage(rng, t, 1, n);
      const got = roundTrip(msg, decoder);
      assert.equal(validateMessage(got, contextOf(t, 1)), null);
      assert.deepEqual(got, msg);
    }
  }
  // A batch of the most keys one call may have (ps.batch_keys_max), for every data type.
  for (const t of [Msg.PULL, Msg.PUSH, Msg.PULL_R, Msg.PUSH_R, Msg.LOCALIZE, Msg.HANDOVER]) {
    const msg = randomMessage(rng, t, 2, 1_000_000);
    const got = roundTrip(msg, decoder);
    assert.equal(validateMessage(got, AT_NODE(2)), null);
    assert.deepEqual(got, msg);
  }
  // Empty arrays survive the wire; a data message without keys is refused by the validator.
  const empty = {
    t: Msg.EPOCH,
    job: 1,
    epoch: 0,
    sums: { names: [], values: new Float64Array(0) },
    local: 0,
    remote: 0,
    messages: 0,
    bytes: 0,
  };
  assert.deepEqual(roundTrip(empty, decoder), empty);
  assert.equal(validateMessage(roundTrip(empty, decoder), AT_NODE(0)), null);
  const noKeys = {
    t: Msg.TRANSFER,
    job: JOB,
    table: 0,
    keys: new Uint32Array(0),
    values: new Float32Array(0),
  };
  assert.deepEqual(roundTrip(noKeys, decoder), noKeys);
  assert.match(validateMessage(noKeys, AT_NODE(0))!, /keys: not a non-empty/);
});

Deno.test("the largest frame is accepted; one byte more is refused", () => {
  // A TRANSFER whose body is exactly the frame limit: find the float count by the overhead.
  const probe = encodeFrame({
    t: Msg.TRANSFER,
    job: JOB,
    table: 1,
    keys: new Uint32Array(1),
    values: new Float32Array(1),
  });
  const overhead = new DataView(probe.buffer).getUint32(0, true) - 4;
  const floats = Math.floor((FRAME_BYTES_MAX_DEFAULT - overhead) / 4) - 16;
  const msg = {
    t: Msg.TRANSFER,
    job: JOB,
    table: 1,
    keys: new Uint32Array(1),
    values: new Float32Array(floats).fill(0.5),
  };
  const frame = encodeFrame(msg);
  const body = new DataView(frame.buffer).getUint32(0, true);
  assert.ok(body <= FRAME_BYTES_MAX_DEFAULT && body > FRAME_BYTES_MAX_DEFAULT - 128, `${body}`);
  const decoder = new FrameDecoder(body);
  decoder.push(frame);
  const got = decodeMessage(decoder.next()!);
  assert.equal((got.values as Float32Array).length, floats);
  assert.equal((got.values as Float32Array)[floats - 1], 0.5);
  // The validator checks values against the table's dim: dim 1 wants one float per key.
  assert.match(validateMessage(got, AT_NODE(0))!, /values: \d+ floats for 1 keys of dim 1/);
  const tight = new FrameDecoder(body - 1);
  assert.throws(() => {
    tight.push(frame.subarray(0, FRAME_HEADER_BYTES + 8));
    tight.next();
  }, FrameTooLargeError);
});

Deno.test("the validator refuses malformed messages with a reason, and never throws", () => {
  const ok = {
    t: Msg.PULL_R,
    job: JOB,
    table: 0,
    holder: 1,
    requests: Uint32Array.of(1, 1),
    keys: Uint32Array.of(3, 4),
    positions: Uint32Array.of(0, 1),
    values: new Float32Array(6),
    clock: 0,
  };
  assert.equal(validateMessage(ok, AT_NODE(1)), null);
  assert.match(validateMessage({ ...ok, clock: -1 }, AT_NODE(1))!, /clock is not a clock/);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...ok, holder: 2 }, /holder 2 is not the sender 1/],
    [{ ...ok, requests: Uint32Array.of(1) }, /requests: not a Uint32Array of 2/],
    [{ ...ok, positions: new Int32Array(2) }, /positions: not a Uint32Array of 2/],
    [{ ...ok, values: new Float32Array(5) }, /values: 5 floats for 2 keys of dim 3/],
    [{ ...ok, values: new Float64Array(6) }, /values: not a Float32Array/],
    [{ ...ok, keys: Uint32Array.of(3, 100) }, /key 100 of table 0 beyond its 100 keys/],
    [{ ...ok, table: 2 }, /table 2 is not one of the job's 2/],
    [{ ...ok, table: -1 }, /table is not a table id/],
    [{ ...ok, job: "x" }, /job is not a job id/],
    [{ ...ok, t: 99 }, /#99 is not a message between nodes/],
    [{ ...ok, t: Msg.SUBMIT }, /SUBMIT is not a message between nodes/],
    [
      { t: Msg.LOCALIZE, job: JOB, table: 0, dest: 3, keys: Uint32Array.of(1) },
      /dest 3 is not the requester 1/,
    ],
    [
      { t: Msg.HANDOVER, job: JOB, table: 0, dest: 4, keys: Uint32Array.of(1) },
      /dest 4 is not a node of 4/,
    ],
    [
      { t: Msg.PULL, job: JOB, table: 0, origin: 1.5, keys: Uint32Array.of(1) },
      /origin 1.5 is not a node/,
    ],
    [{ t: Msg.PREPARE, job: 1, config: { task: "mf" } }, /workers_per_node is not a count/],
    [{
      t: Msg.EPOCH,
      job: 1,
      epoch: 0,
      sums: { names: ["a"], values: new Float64Array(2) },
      local: 0,
      remote: 0,
      messages: 0,
      bytes: 0,
    }, /sums: 1 names for 2 values/],
    [
      {
        t: Msg.EPOCH,
        job: 1,
        epoch: 0,
        sums: { a: 1 },
        local: 0,
        remote: 0,
        messages: 0,
        bytes: 0,
      },
      /sums is not names and values/,
    ],
    [{ t: Msg.FAILED, job: 1, node: 9, message: "x" }, /node 9 is not a node of 4/],
    [{ t: Msg.BARRIER_GO, job: 1, clock: 0 }, /generation is not a count/],
    [{ t: Msg.CLOCK, job: 1, worker: 0, clock: 3, idleAt: -2 }, /idleAt -2 is not -1 or a count/],
  ];
  for (const [msg, why] of bad) {
    assert.match(validateMessage(msg, AT_NODE(1)) ?? "valid", why, JSON.stringify(msg.t));
  }
  for (const junk of [null, 3, "x", [], new Uint8Array(3), {}, { t: "1" }]) {
    assert.notEqual(validateMessage(junk, AT_NODE(0)), null);
  }
  // Roles: a driver may only submit; a driver only hears driver events.
  assert.match(
    validateMessage({ t: Msg.RUN, job: 1 }, { from: "driver" })!,
    /a driver may not send RUN/,
  );
  assert.match(
    validateMessage({ t: Msg.RUN, job: 1 }, { from: "coordinator" })!,
    /RUN is not a message for a driver/,
  );
  assert.equal(validateMessage({ t: Msg.SUBMIT, config: CONFIG }, { from: "driver" }), null);
});

Deno.test("a data message of another job, or with no job running, is OTHER_JOB", () => {
  const msg = {
    t: Msg.PUSH_R,
    job: JOB + 1,
    table: 0,
    holder: 1,
    requests: Uint32Array.of(1),
    keys: Uint32Array.of(1),
  };
  assert.equal(validateMessage(msg, AT_NODE(1)), OTHER_JOB);
  assert.equal(
    validateMessage({ ...msg, job: JOB }, { from: { node: 1, nodes: NODES }, job: null }),
    OTHER_JOB,
  );
  // A malformed one of another job is malformed (the shape is checked before the job).
  assert.match(validateMessage({ ...msg, holder: 0 }, AT_NODE(1))!, /holder 0/);
  assert.equal(validateMessage({ ...msg, job: JOB }, AT_NODE(1)), null);
});

Deno.test("toNamed and fromNamed are inverse", () => {
  const r = { a: 1, b_max: -2.5, "pushes_70000": 3 };
  assert.deepEqual(fromNamed(toNamed(r)), r);
  assert.deepEqual(toNamed({}), { names: [], values: new Float64Array(0) });
});
