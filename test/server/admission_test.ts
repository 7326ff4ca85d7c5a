/** Admission of unauthenticated connections: caps, wrong-token delays, the summary log. */
import assert from "node:assert/strict";
import { Admission, hostOf } from "../../server/admission.ts";

Deno.test("admission: pending handshakes are capped per address and in total", () => {
  const lines: string[] = [];
  const a = new Admission({
    pendingMax: 3,
    pendingMaxPerAddress: 2,
    log: (l) => lines.push(l),
    logIntervalMs: 60_000,
  });
  try {
    assert.ok(a.enter("10.0.0.1"));
    assert.ok(a.enter("10.0.0.1"));
    assert.ok(!a.enter("10.0.0.1"), "third from one address");
    assert.ok(a.enter("10.0.0.2"));
    assert.ok(!a.enter("10.0.0.3"), "fourth in total");
    assert.equal(a.pending, 3);
    a.leave("10.0.0.1");
    assert.ok(a.enter("10.0.0.3"));
    assert.equal(a.overCap, 2);
    // Only the first refusal of the interval is a line; the rest are summed up later.
    assert.equal(lines.length, 1);
    assert.match(lines[0], /closed a connection from 10\.0\.0\.1 at once: 2 handshakes/);
  } finally {
    a.close();
  }
});

Deno.test("admission: wrong tokens of one address wait longer and longer", () => {
  const a = new Admission({
    failureDelayMsMin: 100,
    failureDelayMsMax: 1000,
    failureMemoryMs: 10_000,
    log: () => {},
  });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((i) => a.wrongToken("h", 1000 + i)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.equal(a.wrongToken("other", 2000), 100, "per address");
  assert.equal(a.wrongToken("h", 1000 + 5 + 10_001), 100, "forgotten after failureMemoryMs");
  a.succeeded("other");
  assert.equal(a.wrongToken("other", 2001), 100, "a success forgets the failures");
  a.close();
});

Deno.test("admission: refusals of an interval become one summary line", async () => {
  const lines: string[] = [];
  const a = new Admission({ log: (l) => lines.push(l), logIntervalMs: 50 });
  try {
    for (let i = 0; i < 1000; i++) a.refused(`h${i % 7}`, `refused ${i}`);
    assert.deepEqual(lines, ["refused 0"]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(lines[1], /^refused 999 more connections from 7 addresses in the last 0\.05 s/);
    assert.match(lines[1], /\(last: refused 999\)$/);
  } finally {
    a.close();
  }
});

Deno.test("hostOf: the host of host:port and [v6]:port", () => {
  assert.equal(hostOf("127.0.0.1:7000"), "127.0.0.1");
  assert.equal(hostOf("[::1]:7000"), "::1");
  assert.equal(hostOf("weird"), "weird");
});
