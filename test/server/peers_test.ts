import assert from "node:assert/strict";
import { Connection } from "../../server/connection.ts";
import { handshakeDial, writeAll } from "../../server/handshake.ts";
import { Peers, type PeersOptions } from "../../server/peers.ts";
import { parseAddress } from "../../core/host_port.ts";
import { dialDriver } from "../../driver/dial.ts";
import { encodeFrame, type Message } from "../../server/wire.ts";

/** A node for tests: listens on a free loopback port and records what it gets. */
interface TestNode {
  peers: Peers;
  received: [number, Message][];
  drivers: Connection[];
  logs: string[];
}

function makeNode(
  self: number,
  token: string,
  overrides: Partial<PeersOptions> = {},
): TestNode {
  const node: TestNode = { peers: null!, received: [], drivers: [], logs: [] };
  node.peers = new Peers({
    self,
    addresses: [],
    token,
    listen: { host: "127.0.0.1", port: 0 },
    connectTimeoutMs: 3000,
    frameBytesMax: 1 << 20,
    onNodeMessage: (from, msg) => node.received.push([from, msg]),
    onDriver: (conn) => {
      node.drivers.push(conn);
      conn.onMessage = (msg) => conn.send({ t: 99, echo: msg.t });
    },
    log: (line) => node.logs.push(line),
    ...overrides,
  });
  return node;
}

/** Starts `n` nodes on free ports and connects the mesh. */
async function makeMesh(
  n: number,
  token = "tok",
  overrides: Partial<PeersOptions> = {},
): Promise<TestNode[]> {
  const nodes = Array.from({ length: n }, (_, i) => makeNode(i, token, overrides));
  const addresses = nodes.map((node) => {
    const { host, port } = node.peers.listen();
    return `${host}:${port}`;
  });
  for (const node of nodes) node.peers.addresses = addresses;
  await Promise.all(nodes.map((node) => node.peers.connectAll()));
  return nodes;
}

async function closeAll(nodes: TestNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.peers.close()));
}

/** Waits until `cond` holds (polling), or fails after `timeoutMs`. */
async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A port on which nothing listens (bound, then released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

Deno.test("parseAddress", () => {
  assert.deepEqual(parseAddress("127.0.0.1:7000"), { host: "127.0.0.1", port: 7000 });
  assert.deepEqual(parseAddress("[::1]:80"), { host: "::1", port: 80 });
  assert.deepEqual(parseAddress("node-a:1"), { host: "node-a", port: 1 });
  assert.throws(
    () => parseAddress("127.0.0.1"),
    /Invalid address "127.0.0.1": no port in "127.0.0.1" \(expected host:port/,
  );
  assert.throws(() => parseAddress("h:70000"), /Invalid address/);
});

Deno.test("a 3-node mesh delivers messages between every pair, in order", async () => {
  const nodes = await makeMesh(3);
  try {
    for (const from of nodes) {
      for (let to = 0; to < 3; to++) {
        if (to === from.peers.self) continue;
        for (let i = 0; i < 5; i++) {
          from.peers.send(to, { t: 1, i, k: new Uint32Array([from.peers.self, to]) });
        }
      }
    }
    await until(() => nodes.every((n) => n.received.length === 10), "all messages");
    for (const node of nodes) {
      for (let from = 0; from < 3; from++) {
        if (from === node.peers.self) continue;
        const got = node.received.filter(([f]) => f === from).map(([, m]) => m);
        assert.deepEqual(
          got.map((m) => m.i),
          [0, 1, 2, 3, 4],
          `node ${node.peers.self} from ${from}`,
        );
        assert.deepEqual(got[0].k, new Uint32Array([from, node.peers.self]));
      }
      const stats = node.peers.stats();
      assert.equal(stats.messagesSent, 10);
      assert.equal(stats.messagesReceived, 10);
      assert.ok(stats.bytesSent > 0 && stats.bytesReceived > 0);
      assert.ok(stats.writes < stats.messagesSent, "coalesced");
    }
    assert.throws(() => nodes[0].peers.send(0, { t: 1 }), RangeError);
    assert.throws(() => nodes[0].peers.send(7, { t: 1 }), /no connection to node 7/);
    assert.deepEqual(nodes.flatMap((n) => n.logs), []);
  } finally {
    await closeAll(nodes);
  }
});

Deno.test("connectAll names the nodes that never answered", async () => {
  // node 1 of 3: dials node 0 (nothing listens there), waits for node 2 (never started)
  const node = makeNode(1, "tok", { connectTimeoutMs: 300 });
  const { port } = node.peers.listen();
  const p0 = freePort();
  const p2 = freePort();
  node.peers.addresses = [`127.0.0.1:${p0}`, `127.0.0.1:${port}`, `127.0.0.1:${p2}`];
  try {
    await assert.rejects(
      node.peers.connectAll(),
      new RegExp(
        `nodes 0 \\(127\\.0\\.0\\.1:${p0}\\), 2 \\(127\\.0\\.0\\.1:${p2}\\) did not answer ` +
          `within 300 ms \\(last error: node 0: connection refused\\)`,
      ),
    );
  } finally {
    await node.peers.close();
  }
});

Deno.test("a wrong token is reported as a rejection by that node", async () => {
  const n0 = makeNode(0, "right-token");
  const n1 = makeNode(1, "wrong-token");
  const a0 = n0.peers.listen();
  const a1 = n1.peers.listen();
  const addresses = [`127.0.0.1:${a0.port}`, `127.0.0.1:${a1.port}`];
  n0.peers.addresses = n1.peers.addresses = addresses;
  try {
    await assert.rejects(
      n1.peers.connectAll(),
      new Error(
        `node 0 (${addresses[0]}) rejected our cluster token (check --token-file / LAPSE_TOKEN)`,
      ),
    );
    await until(() => n0.logs.length > 0, "node 0 logs the refusal");
    assert.match(n0.logs[0], /refused a connection from 127\.0\.0\.1:\d+: wrong cluster token/);
    assert.equal(n0.peers.connection(1), undefined);
  } finally {
    await closeAll([n0, n1]);
  }
});

Deno.test("a port in use is one clear error", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const node = makeNode(0, "tok", {
      listen: { host: "127.0.0.1", port: listener.addr.port },
    });
    assert.throws(
      () => node.peers.listen(),
      new Error(
        `cannot listen on 127.0.0.1:${listener.addr.port}: address already in use ` +
          `(is another lapse node running? pick another --listen port)`,
      ),
    );
  } finally {
    listener.close();
  }
});

Deno.test("a driver connects any time; a node answers it", async () => {
  const nodes = await makeMesh(2);
  try {
    const { port } = nodes[0].peers.listenAddress!;
    const driver = await dialDriver(`127.0.0.1:${port}`, "tok", 2000, { log: () => {} });
    assert.equal(driver.name, `node 0 (127.0.0.1:${port})`);
    const answers: Message[] = [];
    driver.onMessage = (msg) => {
      answers.push(msg);
    };
    driver.start();
    driver.send({ t: 40 });
    await until(() => answers.length === 1, "the echo");
    assert.deepEqual(answers, [{ t: 99, echo: 40 }]);
    assert.equal(nodes[0].drivers.length, 1);
    await driver.close();
    await assert.rejects(
      dialDriver(`127.0.0.1:${port}`, "bad", 2000),
      /the lapse node at 127\.0\.0\.1:\d+ rejected our cluster token/,
    );
    await assert.rejects(
      dialDriver(`127.0.0.1:${freePort()}`, "tok", 150),
      /no lapse node answered at 127\.0\.0\.1:\d+ within 150 ms \(last error: connection refused\)/,
    );
  } finally {
    await closeAll(nodes);
  }
});

/** An authenticated raw socket to a node (as a driver), for sending bad bytes. */
async function rawDriverSocket(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await handshakeDial(conn, "tok", { role: "driver" }, 2000);
  return conn;
}

Deno.test("a node survives bad frames on one connection and keeps serving the others", async () => {
  // Lines about bad connections are rate-limited (one per interval, then a summary): with a
  // 1 ms interval each of these, coming one after another, gets its own line.
  const nodes = await makeMesh(2, "tok", { admission: { logIntervalMs: 1 } });
  try {
    const { port } = nodes[0].peers.listenAddress!;

    // 1. not the lapse protocol at all: refused in the handshake, the listener goes on
    const stranger = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(stranger, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    await until(() => nodes[0].logs.length === 1, "the refusal");
    assert.match(nodes[0].logs[0], /refused a connection from .*not speaking the lapse handshake/);
    stranger.close();

    // 2. authenticated, then a frame above the limit
    const big = await rawDriverSocket(port);
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, (1 << 20) + 1, true);
    await writeAll(big, header);
    await until(() => nodes[0].logs.length === 2, "the frame-too-large line");
    assert.match(
      nodes[0].logs[1],
      /^closing connection to the driver \(127\.0\.0\.1:\d+\): frame too large: frame of 1048577 bytes exceeds the limit of 1048576 bytes/,
    );
    assert.equal(await big.read(new Uint8Array(16)), null, "the node closed it");
    big.close();

    // 3. authenticated, then a body that is not CBOR
    const garbage = await rawDriverSocket(port);
    await writeAll(garbage, new Uint8Array([2, 0, 0, 0, 0xff, 0xff, 0, 0]));
    await until(() => nodes[0].logs.length === 3, "the malformed-frame line");
    assert.match(nodes[0].logs[2], /: malformed frame: body of 2 bytes is not valid CBOR/);
    garbage.close();

    // the mesh still works, both ways
    nodes[0].peers.send(1, { t: 2, x: 1 });
    nodes[1].peers.send(0, { t: 2, x: 2 });
    await until(
      () => nodes[0].received.length === 1 && nodes[1].received.length === 1,
      "mesh traffic",
    );
    assert.deepEqual(nodes[0].received, [[1, { t: 2, x: 2 }]]);
    // and a new driver is still served
    const driver = await dialDriver(`127.0.0.1:${port}`, "tok", 2000);
    const echoed: Message[] = [];
    driver.onMessage = (msg) => {
      echoed.push(msg);
    };
    driver.start();
    driver.send({ t: 41 });
    await until(() => echoed.length === 1, "the echo");
    assert.deepEqual(echoed, [{ t: 99, echo: 41 }]);
    await driver.close();
    assert.equal(nodes[0].logs.length, 3, "one line per bad connection");
  } finally {
    await closeAll(nodes);
  }
});

Deno.test("a throwing message handler is logged and the read loop goes on", async () => {
  const nodes = await makeMesh(2);
  try {
    const got: number[] = [];
    // replace node 1's handler through its connection to node 0
    const conn = nodes[1].peers.connection(0)!;
    conn.onMessage = (msg) => {
      if (msg.i === 1) throw new Error("boom");
      got.push(msg.i as number);
    };
    for (let i = 0; i < 3; i++) nodes[0].peers.send(1, { t: 7, i });
    await until(() => got.length === 2, "messages after the throw");
    assert.deepEqual(got, [0, 2]);
    assert.equal(nodes[1].logs.length, 1);
    assert.match(nodes[1].logs[0], /^node 0 \(.*\): handler for message t=7 threw .*Error: boom/s);
    assert.equal(conn.isClosed, false);
  } finally {
    await closeAll(nodes);
  }
});

/** A connected pair of Connections over loopback TCP. */
async function connectionPair(
  queueBytesMax?: number,
): Promise<[Connection, Connection, Message[]]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [accepted, dialed] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
  ]);
  listener.close();
  const received: Message[] = [];
  const sender = new Connection(dialed, { name: "receiver", queueBytesMax });
  const receiver = new Connection(accepted, {
    name: "sender",
    onMessage: (msg) => {
      received.push(msg);
    },
  });
  sender.start();
  receiver.start();
  return [sender, receiver, received];
}

Deno.test("1000 small sends in one tick are coalesced into a few writes", async () => {
  const [sender, receiver, received] = await connectionPair();
  try {
    for (let i = 0; i < 1000; i++) sender.send({ t: 1, i, k: new Uint32Array([i]) });
    assert.equal(sender.writes, 0, "nothing is written synchronously");
    await sender.drain();
    assert.ok(sender.writes <= 3, `${sender.writes} writes for 1000 messages`);
    assert.equal(sender.messagesSent, 1000);
    await until(() => received.length === 1000, "all messages");
    assert.deepEqual(received.map((m) => m.i), Array.from({ length: 1000 }, (_, i) => i));
    assert.equal(receiver.bytesReceived, sender.bytesSent);
    assert.equal(receiver.messagesReceived, 1000);
  } finally {
    await sender.close();
    await receiver.closed;
  }
});

Deno.test("close() flushes queued frames; the peer sees a clean close", async () => {
  const [sender, receiver, received] = await connectionPair();
  let reason = "";
  receiver.onClose = (r) => reason = r;
  sender.send({ t: 5, v: new Float32Array(100_000) });
  sender.send({ t: 6 });
  await sender.close();
  await receiver.closed;
  assert.deepEqual(received.map((m) => m.t), [5, 6]);
  assert.equal(reason, "peer closed the connection");
  assert.throws(() => sender.send({ t: 1 }), /cannot send to receiver: the connection is closed/);
});

Deno.test("exceeding queueBytesMax throws a RangeError naming the limit", async () => {
  const [sender, receiver] = await connectionPair(10_000);
  try {
    sender.send({ t: 1, v: new Float32Array(1000) }); // ~4 KB
    sender.send({ t: 1, v: new Float32Array(1000) });
    assert.throws(
      () => sender.send({ t: 1, v: new Float32Array(1000) }),
      (err: unknown) => {
        assert.ok(err instanceof RangeError);
        assert.match(err.message, /would exceed its limit of 10000 bytes/);
        return true;
      },
    );
    assert.equal(sender.messagesSent, 2);
  } finally {
    await sender.close();
    await receiver.closed;
  }
});

Deno.test("a frame above frameBytesMax is refused at send", async () => {
  const [sender, receiver] = await connectionPair();
  const small = new Connection(
    { setNoDelay() {}, close() {} } as unknown as Deno.Conn,
    { name: "small", frameBytesMax: 100 },
  );
  try {
    assert.throws(
      () => small.send({ t: 1, v: new Float32Array(100) }),
      /cannot send \d+ bytes to small: above the frame limit of 100 bytes \(ps.max_frame_bytes/,
    );
    // the real pair is unaffected
    sender.send({ t: 1 });
    await sender.drain();
    assert.equal(sender.messagesSent, 1);
  } finally {
    small.abort("test over");
    await small.closed;
    await sender.close();
    await receiver.closed;
  }
});

Deno.test("encodeFrame once, sendFrame on the connections to many", async () => {
  const nodes = await makeMesh(3);
  try {
    const frame = encodeFrame({ t: 24, gen: 1 });
    nodes[0].peers.connection(1)!.sendFrame(frame);
    nodes[0].peers.connection(2)!.sendFrame(frame);
    await until(
      () => nodes[1].received.length === 1 && nodes[2].received.length === 1,
      "the broadcast",
    );
    assert.deepEqual(nodes[2].received, [[0, { t: 24, gen: 1 }]]);
  } finally {
    await closeAll(nodes);
  }
});

Deno.test("a node that goes away is reported through onNodeClose", async () => {
  const closes: [number, string][] = [];
  const n0 = makeNode(0, "tok", { onNodeClose: (node, reason) => closes.push([node, reason]) });
  const n1 = makeNode(1, "tok");
  const addresses = [n0, n1].map((n) => `127.0.0.1:${n.peers.listen().port}`);
  n0.peers.addresses = n1.peers.addresses = addresses;
  try {
    await Promise.all([n0.peers.connectAll(), n1.peers.connectAll()]);
    await n1.peers.close();
    await until(() => closes.length === 1, "onNodeClose");
    assert.deepEqual(closes, [[1, "peer closed the connection"]]);
    assert.throws(() => n0.peers.send(1, { t: 1 }), /no connection to node 1/);
  } finally {
    await closeAll([n0, n1]);
  }
});
