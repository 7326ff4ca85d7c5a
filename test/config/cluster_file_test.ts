import assert from "node:assert/strict";
import { ConfigError } from "../../core/errors.ts";
import { formatHostPort, splitHostPort } from "../../core/host_port.ts";
import { loadClusterFile, randomToken, readToken } from "../../config/cluster_file.ts";

async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function loadText(text: string) {
  return await inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/cluster.yaml`, text);
    return await loadClusterFile(`${dir}/cluster.yaml`);
  });
}

async function rejects(p: Promise<unknown>, pattern: RegExp): Promise<ConfigError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.match(e.message, pattern);
    return e;
  }
  assert.fail(`expected an error matching ${pattern}`);
}

Deno.test("a cluster file with strings and {host, port} entries", async () => {
  const c = await loadText(
    "nodes:\n  - 127.0.0.1:7000\n  - { host: node-2.local, port: 7001 }\n  - '[::1]:7002'\n" +
      "workers_per_node: 2\n",
  );
  assert.deepEqual(c, {
    nodes: [
      { host: "127.0.0.1", port: 7000 },
      { host: "node-2.local", port: 7001 },
      { host: "::1", port: 7002 },
    ],
    workers_per_node: 2,
    connect_timeout_ms: 30_000,
  });
  assert.equal(formatHostPort(c.nodes[2]), "[::1]:7002");
});

Deno.test("cluster file: bad host:port names the entry and its line", async () => {
  const e = await rejects(
    loadText("nodes:\n  - 127.0.0.1:7000\n  - 10.0.0.2\n"),
    /cluster\.yaml:3: nodes\[1\]: no port in "10\.0\.0\.2" \(write each node as host:port/,
  );
  assert.equal(e.line, 3);
  await rejects(
    loadText("nodes:\n  - 127.0.0.1:70000\n"),
    /:2: nodes\[0\]: port 70000 is out of range \(1-65535\)/,
  );
  await rejects(loadText("nodes:\n  - 127.0.0.1:0\n"), /port 0 is out of range/);
  await rejects(loadText("nodes:\n  - 300.1.1.1:7000\n"), /"300\.1\.1\.1" is not a valid IPv4/);
  await rejects(loadText("nodes:\n  - bad_host:7000\n"), /"bad_host" is not a valid hostname/);
  await rejects(loadText("nodes:\n  - ::1:7000\n"), /IPv6 addresses need brackets/);
  await rejects(
    loadText("nodes:\n  - { host: a, port: '7000' }\n"),
    /:2: nodes\[0\]\.port: expected a port number, got "7000"/,
  );
  await rejects(
    loadText("nodes:\n  - { host: a, prot: 7000 }\n"),
    /:2: unknown key nodes\[0\]\.prot/,
  );
});

Deno.test("cluster file: duplicates name both entries", async () => {
  await rejects(
    loadText("nodes:\n  - 10.0.0.1:7000\n  - 10.0.0.2:7000\n  - 10.0.0.1:7000\n"),
    /cluster\.yaml:4: nodes\[2\]: 10\.0\.0\.1:7000 is listed twice \(also nodes\[0\] on line 2\)/,
  );
  await rejects(
    loadText("nodes: [Node-A:1, node-a:1]\n"),
    /nodes\[1\]: node-a:1 is listed twice/,
  );
});

Deno.test("cluster file: structure errors", async () => {
  await rejects(loadText("workers_per_node: 1\n"), /missing required key nodes/);
  await rejects(loadText("nodes: []\n"), /nodes: has 0 entries, at least 1 needed/);
  await rejects(
    loadText("nodes: [a:1]\nworker_per_node: 2\n"),
    /:2: unknown key worker_per_node \(did you mean workers_per_node\?\)/,
  );
  await rejects(
    loadText("nodes: [a:1]\nworkers_per_node: 0\n"),
    /:2: workers_per_node: 0 is below the minimum 1/,
  );
  await rejects(loadText("nodes: [a:1\n"), /cluster\.yaml:\d+: invalid YAML/);
  await rejects(loadText(""), /the cluster file is empty/);
  await rejects(loadText("- a:1\n"), /expected a mapping/);
  await rejects(loadClusterFile("/nonexistent/cluster.yaml"), /cluster file ".*" not found/);
});

Deno.test("splitHostPort", () => {
  assert.deepEqual(splitHostPort("127.0.0.1:7000"), { host: "127.0.0.1", port: 7000 });
  assert.deepEqual(splitHostPort("localhost:1"), { host: "localhost", port: 1 });
  assert.deepEqual(splitHostPort("127.0.0.1:0", { allowPortZero: true }), {
    host: "127.0.0.1",
    port: 0,
  });
  assert.equal(typeof splitHostPort("127.0.0.1:0"), "string");
  assert.equal(typeof splitHostPort(":7000"), "string");
  assert.equal(typeof splitHostPort("a:b"), "string");
  assert.equal(typeof splitHostPort("1.2.3:4"), "string");
});

Deno.test("readToken: from a file (trimmed), else from LAPSE_TOKEN", async () => {
  await inTempDir(async (dir) => {
    const env = new Map<string, string>([["LAPSE_TOKEN", "from-env-0123456789"]]);
    await Deno.writeTextFile(`${dir}/token`, "  s3cret-0123456789\n");
    assert.equal(await readToken({ tokenFile: `${dir}/token`, env }), "s3cret-0123456789");
    assert.equal(await readToken({ env }), "from-env-0123456789");
  });
});

Deno.test("readToken: errors name the file or the variable", async () => {
  await inTempDir(async (dir) => {
    const none = new Map<string, string>();
    await Deno.writeTextFile(`${dir}/empty`, " \n");
    await rejects(
      readToken({ tokenFile: `${dir}/empty`, env: none }),
      /token file ".*\/empty" is empty/,
    );
    await rejects(
      readToken({ tokenFile: `${dir}/missing`, env: none }),
      /token file ".*\/missing" not found/,
    );
    await rejects(
      readToken({ env: none }),
      /^no cluster token: pass --token-file FILE or set LAPSE_TOKEN$/,
    );
    await rejects(
      readToken({ env: new Map([["LAPSE_TOKEN", " "]]) }),
      /LAPSE_TOKEN is set but empty/,
    );
    // Shorter than 16 bytes: refused, with the command that makes a good one.
    await rejects(
      readToken({ env: new Map([["LAPSE_TOKEN", "x"]]) }),
      /the cluster token from LAPSE_TOKEN is 1 byte long; at least 16 are needed .*lapse token/,
    );
    await Deno.writeTextFile(`${dir}/short`, "fifteen-bytes!!\n");
    await rejects(
      readToken({ tokenFile: `${dir}/short`, env: none }),
      /token file ".*\/short" is 15 bytes long; at least 16/,
    );
    assert.equal(
      await readToken({ env: new Map([["LAPSE_TOKEN", "sixteen-bytes!!!"]]) }),
      "sixteen-bytes!!!",
    );
  });
});

Deno.test("randomToken is 64 hex digits and differs between calls", () => {
  const a = randomToken();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, randomToken());
});
