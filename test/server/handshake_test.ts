import assert from "node:assert/strict";
import { Connection } from "../../server/connection.ts";
import {
  handshakeAccept,
  handshakeDial,
  HandshakeError,
  type HandshakeResult,
  HandshakeType,
  writeAll,
} from "../../server/handshake.ts";
import { encodeFrame, type Message } from "../../server/wire.ts";

/** A connected loopback TCP pair: [dialer side, acceptor side]. */
async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const [accepted, dialed] = await Promise.all([
      listener.accept(),
      Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    ]);
    return [dialed, accepted];
  } finally {
    listener.close();
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // closed by the handshake already
  }
}

/** Settles both sides of a handshake; returns [dial outcome, accept outcome]. */
async function both<A, B>(a: Promise<A>, b: Promise<B>) {
  return await Promise.allSettled([a, b]);
}

Deno.test("handshake: same token, identities are exchanged", async () => {
  const [d, a] = await tcpPair();
  const [dialed, accepted] = await Promise.all([
    handshakeDial(d, "secret", { role: "node", id: 2 }, 2000),
    handshakeAccept(a, "secret", 2000, { self: { role: "node", id: 0 } }),
  ]);
  assert.deepEqual(accepted.peer, { role: "node", id: 2 });
  assert.deepEqual(dialed.peer, { role: "node", id: 0 });
  assert.equal(dialed.decoder.bufferedBytes, 0);
  d.close();
  a.close();
});

Deno.test("handshake: a driver says so, and an acceptor without identity is allowed", async () => {
  const [d, a] = await tcpPair();
  const [dialed, accepted] = await Promise.all([
    handshakeDial(d, "tok", { role: "driver" }, 2000),
    handshakeAccept(a, "tok", 2000),
  ]);
  assert.deepEqual(accepted.peer, { role: "driver" });
  assert.equal(dialed.peer, null);
  d.close();
  a.close();
});

Deno.test("handshake: a wrong token fails on both sides with a clear message", async () => {
  const [d, a] = await tcpPair();
  const [dial, accept] = await both(
    handshakeDial(d, "token-A", { role: "node", id: 1 }, 2000),
    handshakeAccept(a, "token-B", 2000),
  );
  assert.equal(dial.status, "rejected");
  assert.equal(accept.status, "rejected");
  const dial_err = (dial as PromiseRejectedResult).reason;
  const accept_err = (accept as PromiseRejectedResult).reason;
  assert.ok(dial_err instanceof HandshakeError);
  assert.equal(dial_err.kind, "rejected"); // the dialer learned it from the REJECT frame
  assert.match(
    dial_err.message,
    /wrong cluster token: 127\.0\.0\.1:\d+ rejected our cluster token/,
  );
  assert.ok(accept_err instanceof HandshakeError);
  assert.equal(accept_err.kind, "wrong_token");
  assert.match(
    accept_err.message,
    /wrong cluster token from 127\.0\.0\.1:\d+ \(says it is node 1\)/,
  );
  // both sockets were closed by the handshake
  assert.throws(() => d.close(), Deno.errors.BadResource);
  assert.throws(() => a.close(), Deno.errors.BadResource);
});

Deno.test("handshake: admit() can refuse a proven peer, and the dialer hears why", async () => {
  const [d, a] = await tcpPair();
  const [dial, accept] = await both(
    handshakeDial(d, "tok", { role: "node", id: 3 }, 2000),
    handshakeAccept(a, "tok", 2000, { admit: (who) => `no room for node ${(who as any).id}` }),
  );
  const dial_err = (dial as PromiseRejectedResult).reason;
  assert.ok(dial_err instanceof HandshakeError);
  assert.equal(dial_err.kind, "refused");
  assert.match(dial_err.message, /refused the connection: no room for node 3/);
  assert.equal(accept.status, "rejected");
  closeQuietly(d);
  closeQuietly(a);
});

Deno.test("handshake: a silent peer times out", async () => {
  const [d, a] = await tcpPair();
  await assert.rejects(handshakeAccept(a, "tok", 100), (err: unknown) => {
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.kind, "timeout");
    assert.match(err.message, /timed out after 100 ms/);
    return true;
  });
  d.close();
});

Deno.test("handshake: garbage instead of HELLO is a protocol error", async () => {
  const [d, a] = await tcpPair();
  const garbage = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const [, accept] = await both(writeAll(d, garbage), handshakeAccept(a, "tok", 2000));
  const err = (accept as PromiseRejectedResult).reason;
  assert.ok(err instanceof HandshakeError);
  assert.equal(err.kind, "protocol");
  assert.match(err.message, /not speaking the lapse handshake: frame of \d+ bytes exceeds/);
  d.close();
});

Deno.test("handshake: a peer that hangs up is reported as closed", async () => {
  const [d, a] = await tcpPair();
  d.close();
  await assert.rejects(handshakeAccept(a, "tok", 2000), (err: unknown) => {
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.kind, "closed");
    return true;
  });
});

Deno.test("handshake: a recorded proof does not verify against a fresh challenge", async () => {
  // Record a genuine PROOF frame, then replay it to another acceptor.
  const [d1, a1] = await tcpPair();
  let recorded: Uint8Array | null = null;
  const recorder = {
    read: (p: Uint8Array) => d1.read(p),
    write: (p: Uint8Array) => {
      recorded = p.slice(); // the last frame written is the PROOF
      return d1.write(p);
    },
    close: () => d1.close(),
    remoteAddr: d1.remoteAddr,
    localAddr: d1.localAddr,
  } as unknown as Deno.Conn;
  await Promise.all([
    handshakeDial(recorder, "tok", { role: "node", id: 1 }, 2000),
    handshakeAccept(a1, "tok", 2000),
  ]);
  d1.close();
  a1.close();
  assert.ok(recorded !== null);

  const [d2, a2] = await tcpPair();
  const nonce = new Uint8Array(32);
  const replay = (async () => {
    await writeAll(
      d2,
      encodeFrame({ t: HandshakeType.hello, v: 1, nonce, role: "node", id: 1 }),
    );
    const buf = new Uint8Array(4096);
    await d2.read(buf); // CHALLENGE
    await writeAll(d2, recorded!);
    const n = await d2.read(buf); // REJECT
    return n;
  })();
  const [replayed, accept] = await both(replay, handshakeAccept(a2, "tok", 2000));
  assert.equal(replayed.status, "fulfilled");
  const err = (accept as PromiseRejectedResult).reason;
  assert.ok(err instanceof HandshakeError);
  assert.equal(err.kind, "wrong_token");
  d2.close();
});

Deno.test("handshake: bytes pipelined after ACCEPT reach the connection", async () => {
  const [d, a] = await tcpPair();
  // The dialer reads ACCEPT only once the acceptor has also sent a data frame, so both arrive
  // in one read (with no timing assumption).
  let data_sent!: () => void;
  const sent = new Promise<void>((resolve) => data_sent = resolve);
  let reads = 0;
  const late = {
    read: async (p: Uint8Array) => {
      if (++reads === 2) {
        await sent;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return d.read(p);
    },
    write: (p: Uint8Array) => d.write(p),
    close: () => d.close(),
    remoteAddr: d.remoteAddr,
    localAddr: d.localAddr,
  } as unknown as Deno.Conn;
  const accepting = handshakeAccept(a, "tok", 2000).then(async (r) => {
    await writeAll(a, encodeFrame({ t: 1, v: new Float32Array([1, 2, 3]) }));
    data_sent();
    return r;
  });
  const [dialed] = await Promise.all([
    handshakeDial(late, "tok", { role: "driver" }, 2000),
    accepting,
  ]) as [HandshakeResult, HandshakeResult];
  assert.ok(dialed.decoder.bufferedBytes > 0, "the data frame came with ACCEPT");
  const got: Message[] = [];
  const conn = new Connection(d, { name: "acceptor", decoder: dialed.decoder });
  conn.onMessage = (msg) => {
    got.push(msg);
    conn.close();
  };
  conn.start();
  const timer = setTimeout(() => conn.abort("no message within 2 s"), 2000);
  await conn.closed;
  clearTimeout(timer);
  assert.deepEqual(got, [{ t: 1, v: new Float32Array([1, 2, 3]) }]);
  a.close();
});
