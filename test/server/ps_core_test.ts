/**
 * Protocol tests of server/ps_core.ts in the simulated network of sim_network.ts: one scripted
 * test per path of DESIGN.md section 5 (exact messages, exact values, exact final placement),
 * then a randomized stress test over many seeds that checks the invariants of the protocol.
 */
import assert from "node:assert/strict";
import type { PsMode } from "../../core/types.ts";
import type { TableSpec } from "../../core/types.ts";
import {
  type DataMessage,
  Msg,
  type PullReplyMessage,
  validateMessage,
} from "../../server/messages.ts";
import { MESSAGE_BYTES_SPLIT } from "../../server/outbox.ts";
import { Placement } from "../../server/placement.ts";
import { PsCore, type PsCoreOptions } from "../../server/ps_core.ts";
import { Rng, SIM_JOB, SimCluster, type SimOptions, type Ticket } from "./sim_network.ts";

// 12 keys over 3 nodes, range placement: keys 0-3 at node 0, 4-7 at node 1, 8-11 at node 2.
// Over 4 nodes: 0-2 at 0, 3-5 at 1, 6-8 at 2, 9-11 at 3.
const T: TableSpec[] = [{ name: "t", keys: 12, dim: 2, init: { kind: "constant", value: 1.5 } }];
const INIT = 1.5;

function sim(opts: Partial<SimOptions> = {}): SimCluster {
  return new SimCluster({ nodes: 3, tables: T, record: true, ...opts });
}

/** Localizes `key` at `node` and drains the network. */
function moveTo(s: SimCluster, node: number, key: number): void {
  const t = s.localize(node, 9, 0, [key]);
  s.run(1000);
  assert.ok(t.done, `localize of ${key} at ${node} answered`);
  assert.deepEqual(s.holders(0, key), [node]);
}

function cores(s: SimCluster, f: (i: number) => number): number[] {
  return s.cores.map((_, i) => f(i));
}

// --- localize ---------------------------------------------------------------------------

Deno.test("localize: home holds the key and is not the requester (LOCALIZE, TRANSFER)", () => {
  const s = sim();
  s.push(0, 0, 0, [0], [1, 2]); // local at home: applied at once
  const t = s.localize(1, 0, 0, [0]);
  assert.deepEqual(s.flying(), ["LOCALIZE 1->0"]);
  assert.equal(s.cores[1].pendingTransfers, 1);
  assert.equal(t.done, false);
  const loc = s.deliver(1, 0, Msg.LOCALIZE).msg;
  assert.equal(loc.dest, 1);
  assert.deepEqual(Array.from(loc.keys), [0]);
  // The home gave the key up at once and names the requester.
  assert.deepEqual(s.flying(), ["TRANSFER 0->1"]);
  assert.deepEqual(s.holders(0, 0), []);
  assert.equal(s.owner(0, 0), 1);
  assert.equal(s.transfersInFlight(0, 0), 1);
  s.checkInvariants();
  s.deliver(0, 1, Msg.TRANSFER);
  assert.ok(t.done);
  assert.deepEqual(s.holders(0, 0), [1]);
  assert.deepEqual(s.value(0, 0), [INIT + 1, INIT + 2]);
  assert.equal(s.cores[0].stats.transfersOut, 1);
  assert.deepEqual(s.sent, { LOCALIZE: 1, TRANSFER: 1 });
  s.checkSettled();
});

Deno.test("localize: requester is the home, key held by another node (HANDOVER inline)", () => {
  const s = sim();
  moveTo(s, 2, 0);
  s.push(2, 0, 0, [0], [3, 4]); // local at node 2 now
  const before = { ...s.sent };
  const t = s.localize(0, 0, 0, [0]);
  // No LOCALIZE: the home updates its directory inline and hands over to the owner.
  assert.deepEqual(s.flying(), ["HANDOVER 0->2"]);
  assert.equal(s.owner(0, 0), 0);
  assert.equal(s.cores[0].pendingTransfers, 1);
  const h = s.deliver(0, 2, Msg.HANDOVER).msg;
  assert.equal(h.dest, 0);
  assert.deepEqual(s.flying(), ["TRANSFER 2->0"]);
  assert.deepEqual(s.holders(0, 0), []);
  assert.equal(t.done, false);
  s.deliver(2, 0, Msg.TRANSFER);
  assert.ok(t.done);
  assert.deepEqual(s.holders(0, 0), [0]);
  assert.deepEqual(s.value(0, 0), [INIT + 3, INIT + 4]);
  assert.equal(s.sent.LOCALIZE, before.LOCALIZE);
  assert.equal(s.sent.HANDOVER, 1);
  assert.equal(s.sent.TRANSFER, before.TRANSFER + 1);
  s.checkSettled();
});

Deno.test("localize: key owned by a third node (LOCALIZE, HANDOVER, TRANSFER)", () => {
  const s = sim();
  moveTo(s, 1, 0);
  s.push(1, 0, 0, [0], [5, 6]);
  const t = s.localize(2, 0, 0, [0]);
  assert.deepEqual(s.flying(), ["LOCALIZE 2->0"]);
  s.deliver(2, 0, Msg.LOCALIZE);
  assert.equal(s.owner(0, 0), 2);
  assert.deepEqual(s.holders(0, 0), [1], "the old owner holds the key until the HANDOVER");
  assert.deepEqual(s.flying(), ["HANDOVER 0->1"]);
  const h = s.deliver(0, 1, Msg.HANDOVER).msg;
  assert.equal(h.dest, 2);
  assert.deepEqual(Array.from(h.keys), [0]);
  assert.deepEqual(s.flying(), ["TRANSFER 1->2"]);
  assert.deepEqual(s.holders(0, 0), []);
  s.deliver(1, 2, Msg.TRANSFER);
  assert.ok(t.done);
  assert.deepEqual(s.holders(0, 0), [2]);
  assert.deepEqual(s.value(0, 0), [INIT + 5, INIT + 6]);
  assert.equal(s.cores[1].stats.transfersOut, 1);
  s.checkSettled();
});

Deno.test("localize: a key that is already local answers at once, without a message", () => {
  const s = sim();
  moveTo(s, 1, 0);
  const before = s.log.length;
  const a = s.localize(1, 0, 0, [0, 4, 5]); // 0 moved here, 4 and 5 are homed here
  const b = s.localize(0, 0, 0, [1, 2]);
  assert.ok(a.done && b.done);
  assert.equal(a.doneAt, a.issuedAt);
  assert.equal(s.log.length, before, "no message sent");
  assert.equal(s.inFlight, 0);
  assert.deepEqual(cores(s, (i) => s.cores[i].pendingTransfers), [0, 0, 0]);
  s.checkSettled();
});

Deno.test("localize: a key already in transfer joins its waiters (one LOCALIZE)", () => {
  const s = sim();
  const a = s.localize(1, 0, 0, [0]);
  const b = s.localize(1, 1, 0, [0, 4]); // 4 is local at node 1
  const c = s.localize(1, 1, 0, [0, 0]);
  assert.deepEqual(s.flying(), ["LOCALIZE 1->0"]);
  assert.equal(s.cores[1].pendingTransfers, 1);
  assert.equal(s.cores[1].pendingRequests, 3);
  assert.ok(!a.done && !b.done && !c.done);
  s.deliver(1, 0, Msg.LOCALIZE);
  s.deliver(0, 1, Msg.TRANSFER);
  assert.ok(a.done && b.done && c.done);
  assert.deepEqual(s.sent, { LOCALIZE: 1, TRANSFER: 1 });
  assert.deepEqual(s.holders(0, 0), [1]);
  s.checkSettled();
});

Deno.test("localize: an empty key list answers at once", () => {
  for (const mode of ["lapse", "classic", "classic_remote"] as const) {
    const s = sim({ mode });
    const t = s.localize(1, 0, 0, []);
    assert.ok(t.done, `${mode}: empty localize answered`);
    assert.equal(s.inFlight, 0);
    s.checkSettled();
  }
});

Deno.test("localize: several keys make one LOCALIZE per home and one TRANSFER per holder", () => {
  const s = sim();
  const t = s.localize(0, 0, 0, [4, 8, 5, 9, 1]);
  assert.deepEqual(s.flying(), ["LOCALIZE 0->1", "LOCALIZE 0->2"]);
  assert.deepEqual(Array.from(s.queue(0, 1)[0].msg.keys), [4, 5]);
  assert.deepEqual(Array.from(s.queue(0, 2)[0].msg.keys), [8, 9]);
  s.deliver(0, 1);
  s.deliver(0, 2);
  assert.deepEqual(s.flying(), ["TRANSFER 1->0", "TRANSFER 2->0"]);
  assert.deepEqual(Array.from(s.queue(2, 0)[0].msg.keys), [8, 9]);
  s.deliver(1, 0);
  assert.equal(t.done, false, "8 and 9 are still coming");
  s.deliver(2, 0);
  assert.ok(t.done);
  for (const k of [1, 4, 5, 8, 9]) assert.deepEqual(s.holders(0, k), [0]);
  s.checkSettled();
});

// --- passing a key on -------------------------------------------------------------------

Deno.test("pass it on: localized at B, then at C before B's TRANSFER arrived", () => {
  // 4 nodes; key 0 is homed at A=0 and held by D=3. B=1 localizes it, then C=2 does while the
  // TRANSFER D->B is still in flight: B must pass the value on when it arrives.
  const s = sim({ nodes: 4 });
  moveTo(s, 3, 0);
  const tb = s.localize(1, 0, 0, [0]);
  s.deliver(1, 0, Msg.LOCALIZE);
  s.deliver(0, 3, Msg.HANDOVER);
  assert.deepEqual(s.flying(), ["TRANSFER 3->1"]);
  // Operations at B while the key is in transfer to B: queued in arrival order.
  const bPush = s.push(1, 1, 0, [0], [2, 20]);
  const bPull = s.pull(1, 1, 0, [0]);
  const cPush = s.push(2, 0, 0, [0], [1, 10]); // C -> home -> owner B
  s.deliver(2, 0, Msg.PUSH);
  s.deliver(0, 1, Msg.PUSH);
  assert.equal(s.cores[1].stats.queued, 3);
  const tc = s.localize(2, 1, 0, [0]);
  s.deliver(2, 0, Msg.LOCALIZE);
  assert.equal(s.owner(0, 0), 2);
  const h = s.deliver(0, 1, Msg.HANDOVER).msg;
  assert.equal(h.dest, 2);
  assert.equal(s.cores[1].tables[0].transfers.get(0)?.passTo, 2);
  assert.deepEqual(s.flying(), ["TRANSFER 3->1"]);
  assert.ok(!tb.done && !bPush.done && !bPull.done && !cPush.done && !tc.done);
  // The value reaches B: queued operations first, then on to C; B's waiters are woken.
  s.deliver(3, 1, Msg.TRANSFER);
  assert.ok(tb.done, "B's localize answered when the key passed through");
  assert.ok(bPush.done && bPull.done);
  assert.deepEqual(bPull.row(0, 2), [INIT + 2, INIT + 20]);
  assert.deepEqual(s.holders(0, 0), [], "B did not keep it");
  assert.equal(s.cores[1].pendingTransfers, 0);
  assert.equal(s.cores[1].stats.transfersOut, 1);
  assert.deepEqual([...s.flying()].sort(), ["PUSH_R 1->2", "TRANSFER 1->2"]);
  s.run(100);
  assert.ok(tc.done && cPush.done);
  assert.deepEqual(s.holders(0, 0), [2]);
  assert.equal(s.owner(0, 0), 2);
  assert.deepEqual(s.value(0, 0), [INIT + 3, INIT + 30]);
  s.checkSettled();
});

Deno.test("pass it on: the home localizes a key that is still in transfer to B", () => {
  const s = sim();
  moveTo(s, 2, 0);
  const tb = s.localize(1, 0, 0, [0]);
  s.deliver(1, 0, Msg.LOCALIZE);
  s.deliver(0, 2, Msg.HANDOVER);
  const ta = s.localize(0, 0, 0, [0]); // home: owner B -> A, HANDOVER to B
  assert.deepEqual(s.flying(), ["TRANSFER 2->1", "HANDOVER 0->1"]);
  s.deliver(0, 1, Msg.HANDOVER);
  assert.equal(s.cores[1].tables[0].transfers.get(0)?.passTo, 0);
  s.deliver(2, 1, Msg.TRANSFER);
  assert.ok(tb.done);
  assert.deepEqual(s.flying(), ["TRANSFER 1->0"]);
  s.deliver(1, 0, Msg.TRANSFER);
  assert.ok(ta.done);
  assert.deepEqual(s.holders(0, 0), [0]);
  assert.deepEqual(s.value(0, 0), [INIT, INIT]);
  s.checkSettled();
});

Deno.test("pass it on: a localize issued after the pass was decided asks for the key again", () => {
  const s = sim({ nodes: 4 });
  moveTo(s, 3, 0);
  const first = s.localize(1, 0, 0, [0]);
  s.deliver(1, 0, Msg.LOCALIZE);
  s.deliver(0, 3, Msg.HANDOVER);
  const tc = s.localize(2, 0, 0, [0]);
  s.deliver(2, 0, Msg.LOCALIZE);
  s.deliver(0, 1, Msg.HANDOVER); // node 1 must pass key 0 on to node 2
  const again = s.localize(1, 1, 0, [0]);
  assert.deepEqual(s.flying(), ["TRANSFER 3->1"], "nothing to send yet");
  s.deliver(3, 1, Msg.TRANSFER);
  assert.ok(first.done, "the localize issued before the pass was decided is answered");
  assert.equal(again.done, false, "the later one is not: the key only passed through");
  assert.deepEqual([...s.flying()].sort(), ["LOCALIZE 1->0", "TRANSFER 1->2"]);
  assert.equal(s.cores[1].pendingTransfers, 1);
  s.run(100);
  assert.ok(tc.done && again.done);
  assert.deepEqual(s.holders(0, 0), [1], "the last localize wins");
  assert.equal(s.owner(0, 0), 1);
  // LOCALIZE by 3, 1, 2 and 1 again; HANDOVER to 3, 1, 2; TRANSFER 0->3, 3->1, 1->2, 2->1.
  assert.deepEqual(s.sent, { LOCALIZE: 4, HANDOVER: 3, TRANSFER: 4 });
  s.checkSettled();
});

Deno.test("pass it on: the home asks again inline for a key it had to pass on", () => {
  const s = sim();
  moveTo(s, 2, 0);
  const first = s.localize(0, 0, 0, [0]);
  s.deliver(0, 2, Msg.HANDOVER);
  const tb = s.localize(1, 0, 0, [0]);
  s.deliver(1, 0, Msg.LOCALIZE); // home: owner 0 -> 1, and node 0 still awaits the key
  assert.equal(s.cores[0].tables[0].transfers.get(0)?.passTo, 1);
  const again = s.localize(0, 1, 0, [0]);
  assert.deepEqual(s.flying(), ["TRANSFER 2->0"]);
  s.deliver(2, 0, Msg.TRANSFER);
  assert.ok(first.done && !again.done);
  assert.equal(s.owner(0, 0), 0, "the home took the key back in its directory at once");
  assert.deepEqual([...s.flying()].sort(), ["HANDOVER 0->1", "TRANSFER 0->1"]);
  s.run(100);
  assert.ok(tb.done && again.done);
  assert.deepEqual(s.holders(0, 0), [0]);
  s.checkSettled();
});

// --- operations during a transfer ---------------------------------------------------------

Deno.test("during a transfer, pulls and pushes are queued and applied in arrival order", () => {
  const s = sim();
  moveTo(s, 2, 0);
  moveTo(s, 2, 1);
  const t = s.localize(1, 0, 0, [0, 1]);
  s.deliver(1, 0, Msg.LOCALIZE);
  s.deliver(0, 2, Msg.HANDOVER);
  assert.deepEqual(s.flying(), ["TRANSFER 2->1"]);
  // Key 0: push then pull (local worker), a remote pull and a remote push in between.
  const push0 = s.push(1, 0, 0, [0], [1, 1]);
  const rPull0 = s.pull(2, 0, 0, [0]); // node 2 -> home 0 -> owner 1
  s.deliver(2, 0, Msg.PULL);
  s.deliver(0, 1, Msg.PULL);
  const rPush0 = s.push(2, 1, 0, [0], [10, 10]);
  s.deliver(2, 0, Msg.PUSH);
  s.deliver(0, 1, Msg.PUSH);
  const pull0 = s.pull(1, 0, 0, [0]);
  // Key 1: pull then push.
  const pull1 = s.pull(1, 1, 0, [1]);
  const push1 = s.push(1, 1, 0, [1], [7, 8]);
  assert.equal(s.cores[1].stats.queued, 6);
  for (const x of [push0, rPull0, rPush0, pull0, pull1, push1]) assert.equal(x.done, false);
  s.deliver(2, 1, Msg.TRANSFER);
  assert.ok(t.done && push0.done && pull0.done && pull1.done && push1.done);
  assert.deepEqual(pull0.row(0, 2), [INIT + 11, INIT + 11], "sees both earlier pushes");
  assert.deepEqual(pull1.row(0, 2), [INIT, INIT], "does not see the later push");
  s.run(100);
  assert.deepEqual(rPull0.row(0, 2), [INIT + 1, INIT + 1], "sees the push before, not after");
  assert.ok(rPush0.done);
  assert.deepEqual(s.value(0, 0), [INIT + 11, INIT + 11]);
  assert.deepEqual(s.value(0, 1), [INIT + 7, INIT + 8]);
  assert.deepEqual(s.holders(0, 0), [1]);
  s.checkSettled();
});

// --- routing and forwarding ---------------------------------------------------------------

Deno.test("forwarding: home forwards to the owner, which answers the requester directly", () => {
  const s = sim();
  moveTo(s, 1, 0);
  s.push(1, 0, 0, [0], [1, 2]);
  const p = s.pull(2, 0, 0, [0]);
  assert.deepEqual(s.flying(), ["PULL 2->0"]);
  s.deliver(2, 0, Msg.PULL);
  assert.deepEqual(s.flying(), ["PULL 0->1"]);
  assert.equal(s.queue(0, 1)[0].msg.origin, 2, "forward keeps the origin");
  s.deliver(0, 1, Msg.PULL);
  assert.deepEqual(s.flying(), ["PULL_R 1->2"], "answered directly, not through the home");
  s.deliver(1, 2, Msg.PULL_R);
  assert.deepEqual(p.row(0, 2), [INIT + 1, INIT + 2]);
  const u = s.push(2, 0, 0, [0], [4, 4]);
  s.deliver(2, 0, Msg.PUSH);
  s.deliver(0, 1, Msg.PUSH);
  assert.deepEqual(s.flying(), ["PUSH_R 1->2"]);
  s.deliver(1, 2, Msg.PUSH_R);
  assert.ok(u.done);
  // The home's own worker goes to the owner directly.
  const q = s.pull(0, 0, 0, [0]);
  assert.deepEqual(s.flying(), ["PULL 0->1"]);
  s.run(10);
  assert.deepEqual(q.row(0, 2), [INIT + 5, INIT + 6]);
  assert.equal(s.cores[0].stats.forwards, 2);
  assert.equal(s.cores[1].stats.forwards, 0);
  assert.equal(s.cores[2].stats.forwards, 0);
  assert.deepEqual(s.holders(0, 0), [1]);
  s.checkSettled();
});

Deno.test("forwarding: one message per destination, answers land in key order", () => {
  const s = sim();
  for (const k of [0, 4, 5, 8, 9]) s.push(s.home(0, k), 0, 0, [k], [k, -k]);
  const p = s.pull(0, 0, 0, [4, 8, 0, 5, 9, 4]);
  assert.deepEqual(s.flying(), ["PULL 0->1", "PULL 0->2"]);
  assert.deepEqual(Array.from(s.queue(0, 1)[0].msg.keys), [4, 5, 4]);
  s.run(10);
  const got = [0, 1, 2, 3, 4, 5].map((i) => p.row(i, 2));
  const want = [4, 8, 0, 5, 9, 4].map((k) => [INIT + k, INIT - k]);
  assert.deepEqual(got, want);
  s.checkSettled();
});

Deno.test("forwarding with location caches: a stale hint still converges", () => {
  const s = sim({ nodes: 4, locationCaches: true });
  moveTo(s, 1, 0);
  const p1 = s.pull(2, 0, 0, [0]);
  s.run(10);
  assert.deepEqual(p1.row(0, 2), [INIT, INIT]);
  assert.equal(s.cores[2].tables[0].cache![0], 1, "hint learned from the reply");
  moveTo(s, 3, 0); // the hint at node 2 is stale now
  assert.equal(s.cores[1].tables[0].cache![0], 3, "the old owner remembers where it went");
  s.push(3, 0, 0, [0], [1, 1]);
  const p2 = s.pull(2, 0, 0, [0]);
  assert.deepEqual(s.flying(), ["PULL 2->1"], "follows the hint");
  s.deliver(2, 1, Msg.PULL);
  assert.deepEqual(s.flying(), ["PULL 1->0"], "old owner forwards to the home");
  s.deliver(1, 0, Msg.PULL);
  assert.deepEqual(s.flying(), ["PULL 0->3"], "home forwards to the owner");
  s.deliver(0, 3, Msg.PULL);
  assert.deepEqual(s.flying(), ["PULL_R 3->2"]);
  s.deliver(3, 2, Msg.PULL_R);
  assert.deepEqual(p2.row(0, 2), [INIT + 1, INIT + 1]);
  assert.equal(s.cores[2].tables[0].cache![0], 3, "hint updated");
  assert.equal(s.cores[1].stats.forwards, 1);
  // The fresh hint goes straight to the owner.
  const u = s.push(2, 0, 0, [0], [1, 1]);
  assert.deepEqual(s.flying(), ["PUSH 2->3"]);
  s.run(10);
  assert.ok(u.done);
  assert.deepEqual(s.value(0, 0), [INIT + 2, INIT + 2]);
  s.checkSettled();
});

Deno.test("forwarding with location caches: a stale hint during a transfer is queued", () => {
  const s = sim({ nodes: 4, locationCaches: true });
  moveTo(s, 1, 0);
  s.run(10);
  s.pull(2, 0, 0, [0]);
  s.run(10);
  assert.equal(s.cores[2].tables[0].cache![0], 1);
  // Key 0 leaves node 1 for node 3; the TRANSFER is slow.
  const t3 = s.localize(3, 0, 0, [0]);
  s.deliver(3, 0, Msg.LOCALIZE);
  s.deliver(0, 1, Msg.HANDOVER);
  assert.deepEqual(s.flying(), ["TRANSFER 1->3"]);
  const u = s.push(2, 0, 0, [0], [2, 3]);
  const p = s.pull(2, 1, 0, [0]);
  s.deliver(2, 1, Msg.PUSH);
  s.deliver(2, 1, Msg.PULL);
  s.deliver(1, 0, Msg.PUSH);
  s.deliver(1, 0, Msg.PULL);
  s.deliver(0, 3, Msg.PUSH);
  s.deliver(0, 3, Msg.PULL);
  assert.equal(s.cores[3].stats.queued, 2);
  assert.ok(!u.done && !p.done);
  s.deliver(1, 3, Msg.TRANSFER);
  assert.ok(t3.done);
  s.run(10);
  assert.ok(u.done);
  assert.deepEqual(p.row(0, 2), [INIT + 2, INIT + 3]);
  assert.deepEqual(s.holders(0, 0), [3]);
  assert.equal(s.cores[2].tables[0].cache![0], 3);
  s.checkSettled();
});

// --- classic modes ------------------------------------------------------------------------

for (const mode of ["classic", "classic_remote"] as const) {
  Deno.test(`${mode}: localize is a no-op and every key stays at its home`, () => {
    const s = sim({ mode, placement: "random", seed: 3, locationCaches: true });
    const pl = new Placement("random", 12, 3, 3);
    const homes = Array.from({ length: 12 }, (_, k) => pl.home(k));
    assert.notDeepEqual(homes, Array.from({ length: 12 }, (_, k) => Math.floor(k / 4)));
    for (let k = 0; k < 12; k++) {
      assert.equal(s.home(0, k), homes[k]);
      assert.deepEqual(s.holders(0, k), [homes[k]]);
    }
    for (const c of s.cores) assert.equal(c.tables[0].cache, null, "no location cache");
    const notHome = (n: number) => homes.findIndex((h) => h !== n);
    const k1 = notHome(1);
    const l = s.localize(1, 0, 0, [k1, 0, 1, 2, 3]);
    assert.ok(l.done);
    assert.equal(s.inFlight, 0, "no LOCALIZE");
    // Pulls and pushes of a remote key go to its home and back.
    const u = s.push(1, 0, 0, [k1], [1, 2]);
    assert.deepEqual(s.flying(), [`PUSH 1->${homes[k1]}`]);
    s.run(10);
    const p = s.pull(1, 0, 0, [k1]);
    assert.deepEqual(s.flying(), [`PULL 1->${homes[k1]}`]);
    s.run(10);
    assert.ok(u.done);
    assert.deepEqual(p.row(0, 2), [INIT + 1, INIT + 2]);
    // Many localizes and pushes from everywhere: nothing moves.
    const rng = new Rng(5);
    for (let i = 0; i < 60; i++) {
      const n = rng.int(3), k = rng.int(12);
      if (i % 2 === 0) s.localize(n, 0, 0, [k]);
      else s.push(n, 0, 0, [k], [1, 0]);
      if (rng.chance(0.5)) s.step();
    }
    s.run(1000);
    assert.equal(s.sent.LOCALIZE, undefined);
    assert.equal(s.sent.HANDOVER, undefined);
    assert.equal(s.sent.TRANSFER, undefined);
    for (let k = 0; k < 12; k++) assert.deepEqual(s.holders(0, k), [homes[k]]);
    assert.equal(s.cores[0].stats.forwards + s.cores[1].stats.forwards, 0);
    s.checkSettled();
  });
}

// --- randomized stress ----------------------------------------------------------------------

interface StressConfig {
  seed: number;
  nodes: number;
  workersPerNode: number;
  opsPerWorker: number;
  mode: PsMode;
  caches: boolean;
  placement: "range" | "random";
  /** Probability that a worker op first tries the shared-memory fast path (like client/). */
  fastPath: number;
}

const STRESS_TABLES: TableSpec[] = [
  { name: "small", keys: 16, dim: 2, init: { kind: "zero" } },
  { name: "big", keys: 48, dim: 3, init: { kind: "constant", value: 1.5 } },
];
const stressInit = (tb: number) => (tb === 0 ? 0 : 1.5);
/** Push deltas: key-dependent, so that a value of the wrong key or row cannot pass. */
const stressDelta = (key: number, j: number) => (j === 0 ? 1 : j === 1 ? key + 1 : 64 - key);

interface PushRec {
  worker: string;
  issue: number;
  /** Completion time of a fast-path push, else taken from the ticket. */
  at: number;
  t: Ticket | null;
}
interface PullRec {
  worker: string;
  sync: boolean;
  issue: number;
  at: number;
  t: Ticket | null;
  pos: number;
  /** Value of a fast-path pull. */
  vals: Float32Array | null;
}

function stress(cfg: StressConfig): { steps: number; ops: number; moves: number } {
  const s = new SimCluster({
    nodes: cfg.nodes,
    tables: STRESS_TABLES,
    mode: cfg.mode,
    locationCaches: cfg.caches,
    placement: cfg.placement,
    seed: cfg.seed,
    schedSeed: cfg.seed * 7919 + 1,
  });
  const rng = new Rng(cfg.seed * 104729 + (cfg.caches ? 1 : 0));
  const ctx = `seed ${cfg.seed} ${cfg.mode} caches=${cfg.caches} ${cfg.placement} ` +
    `nodes=${cfg.nodes}`;
  const pushes = STRESS_TABLES.map((t) => Array.from({ length: t.keys }, () => [] as PushRec[]));
  const pulls = STRESS_TABLES.map((t) => Array.from({ length: t.keys }, () => [] as PullRec[]));
  const fastOk = cfg.mode !== "classic_remote";
  let ops = 0;

  interface W {
    node: number;
    w: number;
    left: number;
    blocked: Ticket | null;
  }
  const workers: W[] = [];
  for (let n = 0; n < cfg.nodes; n++) {
    for (let w = 0; w < cfg.workersPerNode; w++) {
      workers.push({ node: n, w, left: cfg.opsPerWorker, blocked: null });
    }
  }
  const ready = (x: W) => x.left > 0 && (x.blocked === null || x.blocked.done);

  const pickKeys = (tb: number): number[] => {
    const n = 1 + rng.int(3), keys: number[] = [];
    for (let i = 0; i < n; i++) {
      // Half of the accesses go to 4 hot keys per table: contention is the point.
      keys.push(rng.chance(0.5) ? rng.int(4) : rng.int(STRESS_TABLES[tb].keys));
    }
    return keys;
  };

  const doPush = (x: W, tb: number, keys: number[], fast: boolean): Ticket | null => {
    const dim = STRESS_TABLES[tb].dim, table = s.cores[x.node].tables[tb].table;
    const worker = `${x.node}/${x.w}`;
    const rest: number[] = [];
    const row = new Float32Array(dim);
    s.now++;
    const issue = s.now;
    for (const k of keys) {
      for (let j = 0; j < dim; j++) row[j] = stressDelta(k, j);
      if (fast && table.pushLocal(k, row, 0)) {
        pushes[tb][k].push({ worker, issue, at: issue, t: null });
      } else rest.push(k);
    }
    if (rest.length === 0) return null;
    const d = new Float32Array(rest.length * dim);
    rest.forEach((k, i) => {
      for (let j = 0; j < dim; j++) d[i * dim + j] = stressDelta(k, j);
    });
    const t = s.push(x.node, x.w, tb, rest, d);
    for (const k of rest) pushes[tb][k].push({ worker, issue: t.issuedAt, at: -1, t });
    return t;
  };

  const doPull = (x: W, tb: number, keys: number[], fast: boolean, sync: boolean) => {
    const dim = STRESS_TABLES[tb].dim, table = s.cores[x.node].tables[tb].table;
    const worker = `${x.node}/${x.w}`;
    const rest: number[] = [];
    s.now++;
    const issue = s.now;
    for (const k of keys) {
      const out = new Float32Array(dim);
      if (fast && table.pullLocal(k, out, 0)) {
        pulls[tb][k].push({ worker, sync, issue, at: issue, t: null, pos: 0, vals: out });
      } else rest.push(k);
    }
    if (rest.length === 0) return null;
    const t = s.pull(x.node, x.w, tb, rest);
    rest.forEach((k, pos) => {
      pulls[tb][k].push({ worker, sync, issue: t.issuedAt, at: -1, t, pos, vals: null });
    });
    return t;
  };

  const runOp = (x: W) => {
    x.left--;
    ops++;
    const tb = rng.int(STRESS_TABLES.length);
    const keys = pickKeys(tb);
    const sync = rng.chance(0.5);
    const fast = fastOk && rng.chance(cfg.fastPath);
    const r = rng.next();
    let t: Ticket | null;
    if (r < 0.35) t = doPush(x, tb, keys, fast);
    else if (r < 0.7) t = doPull(x, tb, keys, fast, sync);
    else if (r < 0.9) {
      const table = s.cores[x.node].tables[tb].table;
      const rest = fast ? keys.filter((k) => !table.isLocal(k)) : keys;
      t = rest.length > 0 ? s.localize(x.node, x.w, tb, rest) : null;
    } else {
      // A storm: the same hot key localized from several nodes at once, by each node's
      // background (prefetch) worker, not awaited.
      const key = rng.int(4);
      for (let n = 0; n < cfg.nodes; n++) {
        if (n === x.node || rng.chance(0.7)) s.localize(n, cfg.workersPerNode, tb, [key]);
      }
      t = null;
    }
    x.blocked = sync ? t : null;
  };

  let steps = 0;
  const limit = 200_000;
  for (;;) {
    const queues = s.readyQueues();
    const runnable = workers.filter(ready);
    const total = queues.length + runnable.length;
    if (total === 0) break;
    const i = rng.int(total);
    if (i < queues.length) s.deliverQueue(queues[i]);
    else runOp(runnable[i - queues.length]);
    s.checkInvariants();
    if (++steps > limit) throw new Error(`${ctx}: no progress after ${limit} steps`);
  }
  for (const x of workers) {
    assert.equal(x.left, 0, `${ctx}: worker ${x.node}/${x.w} did not finish`);
    assert.ok(x.blocked === null || x.blocked.done, `${ctx}: worker ${x.node}/${x.w} hangs`);
  }
  s.checkSettled();

  // Final values, pulled from every node through the core (local and remote paths).
  for (let tb = 0; tb < STRESS_TABLES.length; tb++) {
    const { keys, dim } = STRESS_TABLES[tb];
    const all = Array.from({ length: keys }, (_, k) => k);
    const ts = s.cores.map((_, n) => s.pull(n, 0, tb, all));
    s.run(10_000);
    for (let k = 0; k < keys; k++) {
      const c = pushes[tb][k].length;
      const want = Array.from({ length: dim }, (_, j) => stressInit(tb) + c * stressDelta(k, j));
      for (const t of ts) {
        assert.deepEqual(t.row(k, dim), want, `${ctx}: final value of ${tb}/${k} at ${t.node}`);
      }
    }
  }
  s.checkSettled();

  // Every pull is linearizable at the single copy: it sees every push completed before it was
  // issued, none issued after it completed, and never less than a pull completed before it.
  // (This implies the per-worker guarantees: synchronous pulls of a worker never go back and
  // include the worker's own completed pushes.)
  for (let tb = 0; tb < STRESS_TABLES.length; tb++) {
    const { keys, dim } = STRESS_TABLES[tb];
    for (let k = 0; k < keys; k++) {
      const ps = pushes[tb][k].map((p) => ({
        worker: p.worker,
        issue: p.issue,
        done: p.t === null ? p.at : p.t.doneAt,
      }));
      for (const p of ps) assert.ok(p.done >= p.issue, `${ctx}: push of ${tb}/${k} unanswered`);
      const ls = pulls[tb][k].map((p) => {
        const done = p.t === null ? p.at : p.t.doneAt;
        assert.ok(done >= p.issue, `${ctx}: pull of ${tb}/${k} unanswered`);
        const v = p.t === null ? Array.from(p.vals!) : p.t.row(p.pos, dim);
        const c = v[0] - stressInit(tb);
        const want = Array.from({ length: dim }, (_, j) => stressInit(tb) + c * stressDelta(k, j));
        assert.ok(Number.isInteger(c) && c >= 0, `${ctx}: pull of ${tb}/${k} got ${v}`);
        assert.deepEqual(v, want, `${ctx}: pull of ${tb}/${k} got a foreign or torn value`);
        return { ...p, done, c };
      });
      for (const p of ls) {
        const lower = ps.filter((q) => q.done < p.issue).length;
        const upper = ps.filter((q) => q.issue < p.done).length;
        assert.ok(
          lower <= p.c && p.c <= upper,
          `${ctx}: pull of ${tb}/${k} by ${p.worker} at [${p.issue}, ${p.done}] saw ${p.c} ` +
            `pushes; ${lower} had completed before, ${upper} were issued before it completed`,
        );
      }
      if (!cfg.caches) {
        // Without location caches all operations of a worker on a key take one FIFO route,
        // so even asynchronous ones apply in program order: a pull sees the worker's earlier
        // pushes (answered or not) and none of its later ones.
        for (const p of ls) {
          const lower = ps.filter((q) =>
            q.done < p.issue || (q.worker === p.worker && q.issue < p.issue)
          ).length;
          const upper = ps.filter((q) =>
            q.issue < p.done && !(q.worker === p.worker && q.issue > p.issue)
          ).length;
          assert.ok(
            lower <= p.c && p.c <= upper,
            `${ctx}: pull of ${tb}/${k} by ${p.worker} at [${p.issue}, ${p.done}] saw ${p.c} ` +
              `pushes; program order allows ${lower} .. ${upper}`,
          );
        }
      }
      for (const a of ls) {
        for (const b of ls) {
          if (a.done < b.issue) {
            assert.ok(
              b.c >= a.c,
              `${ctx}: pull of ${tb}/${k} at [${b.issue}, ${b.done}] saw ${b.c} < ${a.c} seen ` +
                `by a pull completed at ${a.done}`,
            );
          }
        }
      }
      // The worker-level statement of the same guarantee, for synchronous pulls.
      const byWorker = new Map<string, typeof ls>();
      for (const p of ls) if (p.sync) byWorker.set(p.worker, [...byWorker.get(p.worker) ?? [], p]);
      for (const [w, list] of byWorker) {
        list.sort((a, b) => a.issue - b.issue);
        for (let i = 1; i < list.length; i++) {
          assert.ok(list[i].c >= list[i - 1].c, `${ctx}: worker ${w} saw ${tb}/${k} go back`);
        }
      }
    }
  }
  let moves = 0;
  for (const c of s.cores) moves += c.stats.transfersOut;
  if (cfg.mode !== "lapse") assert.equal(moves, 0, `${ctx}: a key moved in ${cfg.mode} mode`);
  return { steps, ops, moves };
}

Deno.test("stress: random pushes, pulls, localizes and storms keep every invariant", () => {
  let moves = 0, ops = 0, steps = 0;
  for (const caches of [false, true]) {
    for (let seed = 1; seed <= 50; seed++) {
      const r = stress({
        seed,
        nodes: 3 + (seed % 2),
        workersPerNode: 2,
        opsPerWorker: 40,
        mode: "lapse",
        caches,
        placement: seed % 3 === 0 ? "random" : "range",
        fastPath: 0.5,
      });
      moves += r.moves;
      ops += r.ops;
      steps += r.steps;
    }
  }
  // The stress must actually stress: keys moved a lot.
  assert.ok(moves > 2000, `only ${moves} key moves in ${ops} ops`);
  assert.ok(ops >= 100 * 240);
  assert.ok(steps > ops);
});

Deno.test("stress: classic and classic_remote under the same load never move a key", () => {
  for (const mode of ["classic", "classic_remote"] as const) {
    for (let seed = 1; seed <= 8; seed++) {
      stress({
        seed,
        nodes: 4,
        workersPerNode: 2,
        opsPerWorker: 40,
        mode,
        caches: seed % 2 === 0,
        placement: "random",
        fastPath: 0.5,
      });
    }
  }
});

// --- large batches, replies in runs, recycled request memory ------------------------------

Deno.test("large batches go out in parts of about MESSAGE_BYTES_SPLIT and arrive whole", () => {
  // 6000 keys x 64 floats = 1.5 MB of values per batch: two parts each way.
  const n = 6000, dim = 64;
  const s = new SimCluster({
    nodes: 2,
    tables: [{ name: "b", keys: 2 * n, dim, init: { kind: "constant", value: 1 } }],
    record: true,
  });
  const keys = Array.from({ length: n }, (_, i) => i); // all homed and held at node 0
  const deltas = Array.from({ length: n * dim }, (_, i) => (i % dim) + Math.floor(i / dim));
  const push = s.push(1, 0, 0, keys, deltas);
  s.run();
  assert.ok(push.done);
  const pull = s.pull(1, 0, 0, keys);
  s.run();
  assert.ok(pull.done);
  for (const i of [0, 1, 2999, 3000, n - 1]) {
    assert.deepEqual(pull.row(i, dim), Array.from({ length: dim }, (_, j) => 1 + j + i), `${i}`);
  }
  const loc = s.localize(1, 0, 0, keys);
  s.run();
  assert.ok(loc.done);
  assert.deepEqual(s.holders(0, n - 1), [1]);
  assert.deepEqual(s.value(0, n - 1), Array.from({ length: dim }, (_, j) => 1 + j + n - 1));
  const parts = Math.ceil((n * (4 * dim + 12)) / MESSAGE_BYTES_SPLIT);
  assert.equal(parts, 2);
  assert.deepEqual(s.sent, {
    PUSH: parts,
    PUSH_R: parts, // one per PUSH message
    PULL: 1,
    PULL_R: parts,
    LOCALIZE: 1,
    TRANSFER: parts,
  });
  for (const m of s.log) {
    const v = m.msg.values as Float32Array | undefined;
    if (v !== undefined) assert.ok(v.byteLength <= MESSAGE_BYTES_SPLIT + 4 * dim, `${m.msg.t}`);
  }
  s.checkSettled();
});

Deno.test("a reply with entries of several requests, in runs and out of order", () => {
  const s = sim({ nodes: 2 });
  // Node 1 pulls keys held at node 0 (keys 0-5 are homed there with 2 nodes).
  const a = s.pull(1, 0, 0, [0, 1, 2, 3]);
  const b = s.pull(1, 1, 0, [4, 5]);
  const rid = (ticket: Ticket) => {
    const m = s.deliver(1, 0, Msg.PULL).msg;
    assert.deepEqual(Array.from(m.keys), Array.from(ticket.keys));
    return m.requests[0] as number;
  };
  const ra = rid(a), rb = rid(b);
  s.log.length = 0;
  // A hand-made answer: runs of each request, positions not in order, a run of consecutive
  // positions in the middle; node 0's own answers are dropped.
  const entries: [number, number, number][] = [
    [ra, 1, 1], // [rid, key, position]
    [ra, 2, 2],
    [rb, 5, 1],
    [ra, 0, 0],
    [rb, 4, 0],
    [ra, 3, 3],
  ];
  const v = new Float32Array(entries.length * 2);
  entries.forEach(([, key], i) => v.set([10 * key, 10 * key + 1], 2 * i));
  const reply: PullReplyMessage = {
    t: Msg.PULL_R,
    job: SIM_JOB,
    table: 0,
    holder: 0,
    requests: Uint32Array.from(entries.map((e) => e[0])),
    keys: Uint32Array.from(entries.map((e) => e[1])),
    positions: Uint32Array.from(entries.map((e) => e[2])),
    values: v,
    clock: 0,
  };
  s.cores[1].onMessage(0, reply);
  assert.ok(a.done && b.done);
  assert.deepEqual(Array.from(a.vals!), [0, 1, 10, 11, 20, 21, 30, 31]);
  assert.deepEqual(Array.from(b.vals!), [40, 41, 50, 51]);
  assert.equal(s.cores[1].pendingRequests, 0);
});

Deno.test("a malformed pull reply is refused before it touches a request", () => {
  const s = sim({ nodes: 2 });
  const t = s.pull(1, 0, 0, [0, 1]);
  const r = s.deliver(1, 0, Msg.PULL).msg.requests[0] as number;
  const reply = (p: number[], floats: number, rid = r): PullReplyMessage => ({
    t: Msg.PULL_R,
    job: SIM_JOB,
    table: 0,
    holder: 0,
    requests: Uint32Array.of(rid, rid),
    keys: Uint32Array.of(0, 1),
    positions: Uint32Array.from(p),
    values: new Float32Array(floats),
    clock: 0,
  });
  // What the message alone shows is the validator's (every node runs it before any handler).
  const ctx = { from: { node: 0, nodes: 2 }, job: { id: SIM_JOB, tables: [{ keys: 12, dim: 2 }] } };
  assert.match(validateMessage(reply([0, 1], 3), ctx)!, /values: 3 floats for 2 keys of dim 2/);
  assert.equal(validateMessage(reply([0, 1], 4), ctx), null);
  // What needs the core's state is the handler's: it drops the entries and reports, no throw.
  const reports: string[] = [];
  const core = s.cores[1];
  assert.throws(() => core.onMessage(0, reply([0, 2], 4)), /position beyond pull request/);
  const lenient = testCore({
    self: 1,
    send: () => {},
    reply: () => assert.fail("nothing to answer"),
    malformed: (from, reason) => reports.push(`${from}: ${reason}`),
  });
  lenient.createTables([{ name: "w", keys: 12, dim: 2, init: { kind: "constant", value: 0 } }]);
  lenient.onMessage(0, reply([0, 1], 4, 77));
  assert.deepEqual(reports, ["0: PULL_R of table 0: answer for unknown pull request 77"]);
  assert.equal(t.done, false);
});

Deno.test("buffers of large requests are recycled as answers; small ones are not", () => {
  const answers = new Map<number, Float32Array | null>();
  const core = testCore({
    self: 0,
    nodes: 1,
    job: 1,
    send: () => {
      throw new Error("one node sends nothing");
    },
    reply: (_w, id, vals) => answers.set(id, vals),
  });
  const n = 20_000; // keys of 80 KB: above the recycling threshold
  core.createTables([{ name: "w", keys: n, dim: 1, init: { kind: "constant", value: 2 } }]);
  const keys = () => Uint32Array.from({ length: n }, (_, i) => n - 1 - i);
  const buffer = (id: number) => answers.get(id)!.buffer;
  const first = keys();
  core.workerPull(0, 1, 0, first); // all local: answered at once, in fresh memory
  assert.notEqual(buffer(1), first.buffer);
  const second = keys();
  core.workerPull(0, 2, 0, second); // answered in the first request's buffer
  assert.equal(buffer(2), first.buffer);
  assert.equal(answers.get(2)!.length, n);
  assert.ok(answers.get(2)!.every((x) => x === 2));
  // A push's arrays are recycled too: the next two large answers use `second` and `deltas`.
  const deltas = new Float32Array(n).fill(1);
  core.workerPush(0, 3, 0, Uint32Array.of(0), deltas.subarray(0, 1));
  assert.equal(answers.get(3), null);
  core.workerPull(0, 4, 0, Uint32Array.from({ length: 1000 }, (_, i) => i)); // a small answer
  assert.ok(![second.buffer, deltas.buffer].includes(buffer(4) as ArrayBuffer));
  core.workerPull(0, 5, 0, keys());
  core.workerPull(0, 6, 0, keys());
  assert.deepEqual(new Set([buffer(5), buffer(6)]), new Set([second.buffer, deltas.buffer]));
  // (key 0, last in `keys()`, got the push's delta)
  assert.ok(answers.get(6)!.every((x, i) => x === (i === n - 1 ? 3 : 2)));
  // Small requests are not worth it: their arrays stay the caller's.
  const small = Uint32Array.of(1, 2, 3);
  core.workerPull(0, 7, 0, small);
  core.workerPull(0, 8, 0, Uint32Array.of(1, 2, 3));
  assert.notEqual(buffer(8), small.buffer);
  assert.deepEqual(Array.from(small), [1, 2, 3]);
  assert.equal(core.pendingRequests, 0);
});

Deno.test("a long run of served keys goes out straight from the store; its locks are released", () => {
  const n = 3000, dim = 16; // 192 KB of values: above DIRECT_REPLY_BYTES_MIN
  const sent: { t: number; keys: number; first: number; fromSlab: boolean }[] = [];
  let fail = false;
  const core: PsCore = testCore({
    self: 0,
    send: (_node, msg) => {
      if (fail) throw new Error("connection lost");
      if (msg.t !== Msg.PULL_R) return;
      const fromSlab = msg.values.buffer === core.tables[0].table.values.buffer;
      sent.push({ t: msg.t, keys: msg.keys.length, first: msg.values[0], fromSlab });
    },
    reply: () => assert.fail("no worker request here"),
  });
  // Keys 0 .. n-1 homed and held here in consecutive slots, value = key.
  core.createTables([{ name: "p", keys: 2 * n, dim, init: { kind: "constant", value: 0 } }]);
  const table = core.tables[0].table;
  for (let k = 0; k < n; k++) table.values.fill(k, k * dim, (k + 1) * dim);
  const pull = (keys: number[]) => ({
    t: Msg.PULL,
    job: SIM_JOB,
    table: 0,
    origin: 1,
    requests: new Uint32Array(keys.length).fill(5),
    keys: Uint32Array.from(keys),
    positions: Uint32Array.from(keys, (_, i) => i),
    need: 0,
    barriers: 0,
  } as const);
  core.onMessage(1, pull(Array.from({ length: n }, (_, i) => i)));
  assert.deepEqual(sent, [{ t: Msg.PULL_R, keys: n, first: 0, fromSlab: true }]);
  assert.ok(table.locks.every((x) => x === 0), "every lock released");
  // A short run (1 KB) is batched instead: copied, in a message of the outbox's own.
  sent.length = 0;
  core.onMessage(1, pull([10, 11, 12, 13]));
  assert.deepEqual(sent, [{ t: Msg.PULL_R, keys: 4, first: 10, fromSlab: false }]);
  // The send fails: the error reaches the caller, and no key stays locked.
  fail = true;
  assert.throws(() => core.onMessage(1, pull(Array.from({ length: n }, (_, i) => i))), /lost/);
  assert.ok(table.locks.every((x) => x === 0), "every lock released after the failure");
});

/** A core with the tests' usual settings: lapse, range placement, no location caches, seed 1. */
function testCore(
  o: Pick<PsCoreOptions, "self" | "send" | "reply"> & Partial<PsCoreOptions>,
): PsCore {
  return new PsCore({
    nodes: 2,
    job: SIM_JOB,
    mode: "lapse",
    locationCaches: false,
    placement: "range",
    seed: 1,
    ...o,
  });
}

/**
 * Node 1 of 2 (keys 0..3 homed at node 0, 4..7 here), one table "p" of 8 keys x 2 floats at 0:
 * what it sends is cloned into `sent`, answers go to `reply`.
 */
function node1Of2(sent: DataMessage[], reply: PsCoreOptions["reply"]) {
  const core = testCore({ self: 1, send: (_node, msg) => sent.push(structuredClone(msg)), reply });
  core.createTables([{ name: "p", keys: 8, dim: 2, init: { kind: "constant", value: 0 } }]);
  return core;
}

Deno.test("a remote push's deltas go back to the worker with its answer", () => {
  const replies: { id: number; vals: Float32Array | null; spare?: Float32Array }[] = [];
  const sent: DataMessage[] = [];
  const core = node1Of2(sent, (_w, id, vals, _clock, spare) => replies.push({ id, vals, spare }));
  const deltas = Float32Array.of(1, 2, 3, 4);
  core.workerPush(0, 7, 0, Uint32Array.of(0, 1), deltas); // keys 0..3 are homed at node 0
  assert.deepEqual(sent.map((m) => m.t), [Msg.PUSH]);
  assert.equal(replies.length, 0);
  const push = sent[0] as Extract<DataMessage, { t: typeof Msg.PUSH }>;
  core.onMessage(0, {
    t: Msg.PUSH_R,
    job: SIM_JOB,
    table: 0,
    holder: 0,
    requests: push.requests,
    keys: push.keys,
  });
  assert.equal(replies.length, 1);
  assert.equal(replies[0].id, 7);
  assert.equal(replies[0].vals, null);
  assert.ok(replies[0].spare === deltas, "the worker's own array, for its next request");
  // A push answered at once (its keys are here) keeps nothing: no spare.
  core.workerPush(0, 8, 0, Uint32Array.of(5), Float32Array.of(1, 1));
  assert.deepEqual(replies[1], { id: 8, vals: null, spare: undefined });
});

Deno.test("a worker's pull into its shared array is answered in place, without values", () => {
  const replies: { id: number; vals: Float32Array | null }[] = [];
  const sent: DataMessage[] = [];
  const core = node1Of2(sent, (_w, id, vals) => replies.push({ id, vals }));
  const into = new Float32Array(new SharedArrayBuffer(4 * 6)).subarray(1, 5);
  // Key 6 is here (node 1 homes keys 4..7), key 2 at node 0.
  core.workerPull(0, 3, 0, Uint32Array.of(2, 6), 0, 0, into);
  const pull = sent[0] as Extract<DataMessage, { t: typeof Msg.PULL }>;
  assert.deepEqual([...pull.keys], [2]);
  core.onMessage(0, {
    t: Msg.PULL_R,
    job: SIM_JOB,
    table: 0,
    holder: 0,
    requests: pull.requests,
    keys: pull.keys,
    positions: pull.positions,
    values: Float32Array.of(20, 21),
    clock: 0,
  });
  assert.deepEqual(replies, [{ id: 3, vals: null }]);
  assert.deepEqual([...into], [20, 21, 0, 0], "key 2 from node 0, key 6 read here");
  const keys = Uint32Array.of(2, 6);
  assert.throws(() => core.workerPull(0, 4, 0, keys, 0, 0, new Float32Array(4)), /shared array/);
  assert.throws(() => core.workerPull(0, 5, 0, keys, 0, 0, into.subarray(0, 2)), /into 2 floats/);
});
