import assert from "node:assert/strict";
import { applySets } from "../../config/set_flags.ts";
import { ConfigError, USER_ERROR } from "../../core/errors.ts";
import { loadJobConfig, validateJobConfig } from "../../config/job_config.ts";
import { parseYamlWithLines } from "../../config/yaml.ts";
import { type TaskSchema } from "../../core/types.ts";

/** A small mf-like task schema. */
const SCHEMA: TaskSchema = {
  data: {
    type: "object",
    doc: "the data",
    required: true,
    fields: {
      generate: {
        type: "object",
        doc: "synthetic data",
        fields: {
          rows: { type: "integer", required: true, min: 1, doc: "number of rows" },
          nnz: { type: "integer", required: true, min: 1, doc: "number of non-zeros" },
          noise: { type: "number", default: 0.1, min: 0, doc: "noise" },
        },
      },
      file: { type: "string", doc: "a MatrixMarket file" },
    },
  },
  model: {
    type: "object",
    doc: "the model",
    fields: {
      rank: { type: "integer", default: 10, min: 1, max: 1000, doc: "factor rank" },
      lr: { type: "number", default: 0.05, min: 0, doc: "learning rate" },
      loss: { type: "string", enum: ["l2", "l1"], default: "l2", doc: "loss" },
      optim: {
        type: "object",
        doc: "optimizer",
        fields: { decay: { type: "number", default: 0.9, doc: "decay" } },
      },
      dims: { type: "array", items: { type: "integer", min: 1, doc: "dim" }, doc: "dims" },
    },
  },
  localize: {
    tables: ["W", "H"],
    when: ["start", "block", "ahead"],
    keys: ["partition", "next"],
    schedules: ["dsgd"],
  },
  defaultLocalize: [{ table: "W", when: "start", keys: "partition" }],
};

const MINIMAL = { task: "mf", data: { generate: { rows: 10, nnz: 50 } } };

function fails(fn: () => unknown, pattern: RegExp): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.match(e.message, pattern);
    return e;
  }
  assert.fail(`expected an error matching ${pattern}`);
}

async function failsAsync(fn: () => Promise<unknown>, pattern: RegExp): Promise<ConfigError> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.match(e.message, pattern);
    return e;
  }
  assert.fail(`expected an error matching ${pattern}`);
}

async function withFile<T>(text: string, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/job.yaml`;
  await Deno.writeTextFile(path, text);
  try {
    return await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const resolve = (task: string) => {
  if (task !== "mf") {
    return Promise.reject(
      new ConfigError(`unknown task ${JSON.stringify(task)}`, { path: "task", hint: "use mf" }),
    );
  }
  return Promise.resolve(SCHEMA);
};

Deno.test("defaults are filled for every generic section and nested task fields", () => {
  const c = validateJobConfig(MINIMAL, SCHEMA);
  assert.equal(c.seed, 1);
  assert.deepEqual(c.cluster, { nodes: 2, workers_per_node: 1 });
  assert.deepEqual(c.ps, {
    mode: "lapse",
    location_caches: true,
    placement: "range",
    max_frame_bytes: 64 * 1024 * 1024,
    batch_keys_max: 1_000_000,
    peer_timeout_ms: 30_000,
    staleness: 1,
  });
  assert.deepEqual(c.model, { rank: 10, lr: 0.05, loss: "l2", optim: { decay: 0.9 } });
  assert.deepEqual(c.data, { generate: { rows: 10, nnz: 50, noise: 0.1 } });
  assert.deepEqual(c.localize, [{ table: "W", when: "start", keys: "partition" }]);
  // The default localize is a copy, not the schema's own array.
  assert.notEqual(c.localize, SCHEMA.defaultLocalize);
});

Deno.test("placement defaults to random in the classic modes", () => {
  for (const mode of ["classic", "classic_remote"]) {
    const c = validateJobConfig({ ...MINIMAL, ps: { mode } }, SCHEMA);
    assert.equal(c.ps.placement, "random");
  }
  const c = validateJobConfig({ ...MINIMAL, ps: { mode: "classic", placement: "range" } }, SCHEMA);
  assert.equal(c.ps.placement, "range");
});

Deno.test("an empty section (YAML null) counts as {}", () => {
  const c = validateJobConfig({ ...MINIMAL, model: null, cluster: null }, SCHEMA);
  assert.equal(c.model.rank, 10);
  assert.equal(c.cluster.nodes, 2);
});

Deno.test("unknown keys are errors with a did-you-mean suggestion", () => {
  fails(
    () => validateJobConfig({ ...MINIMAL, model: { rnak: 5 } }, SCHEMA),
    /^unknown key model\.rnak \(did you mean model\.rank\?\)$/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, cluster: { worker_per_node: 2 } }, SCHEMA),
    /did you mean cluster\.workers_per_node\?/,
  );
  // Nothing near: list the known keys.
  fails(
    () => validateJobConfig({ ...MINIMAL, ps: { zzzzzz: 1 } }, SCHEMA),
    /unknown key ps\.zzzzzz \(known keys in ps: mode, location_caches, placement/,
  );
  // A section key at the top level points to its section.
  fails(
    () => validateJobConfig({ ...MINIMAL, mode: "classic" }, SCHEMA),
    /unknown key mode \(did you mean ps\.mode\?\)/,
  );
  fails(() => validateJobConfig({ ...MINIMAL, modle: {} }, SCHEMA), /did you mean model\?/);
});

Deno.test("wrong types name the value and the fix", () => {
  const e = fails(
    () => validateJobConfig({ ...MINIMAL, model: { lr: "fast" } }, SCHEMA),
    /^model\.lr: expected a number >= 0, got "fast" \(set model\.lr to a number >= 0, e\.g\. 0\.05\)$/,
  );
  assert.equal(e.path, "model.lr");
  fails(
    () => validateJobConfig({ ...MINIMAL, model: { rank: 2.5 } }, SCHEMA),
    /model\.rank: expected an integer from 1 to 1000, got 2\.5/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, ps: { location_caches: "yes" } }, SCHEMA),
    /ps\.location_caches: expected true or false, got "yes"/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, cluster: [1] }, SCHEMA),
    /cluster: expected a mapping \(key: value\), got a list/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, model: { dims: [1, "x"] } }, SCHEMA),
    /model\.dims\[1\]: expected an integer >= 1, got "x"/,
  );
  fails(
    () => validateJobConfig({ task: "mf", data: { generate: { rows: "5_000", nnz: 1 } } }, SCHEMA),
    /got "5_000" \(write it without underscores: 5000\)/,
  );
  fails(() => validateJobConfig(["task"], SCHEMA), /expected a mapping of sections/);
});

Deno.test("missing required keys name where to add them", () => {
  fails(
    () => validateJobConfig({ task: "mf" }, SCHEMA),
    /^missing required key data \(add a data: section; see README "Config reference"\)$/,
  );
  fails(
    () => validateJobConfig({ data: MINIMAL.data }, SCHEMA),
    /missing required key task \(add task: NAME/,
  );
  fails(
    () => validateJobConfig({ task: "mf", data: { generate: { rows: 1 } } }, SCHEMA),
    /missing required key data\.generate\.nnz \(add nnz: under data\.generate; nnz is the number of non-zeros, an integer >= 1\)/,
  );
});

Deno.test("enum values are checked with a suggestion", () => {
  fails(
    () => validateJobConfig({ ...MINIMAL, ps: { mode: "clasic" } }, SCHEMA),
    /ps\.mode: expected one of lapse, classic, classic_remote, stale, got "clasic" \(did you mean classic\?\)/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, model: { loss: "huber" } }, SCHEMA),
    /model\.loss: expected one of l2, l1, got "huber" \(set model\.loss to one of l2, l1\)/,
  );
});

Deno.test("min and max are enforced", () => {
  fails(
    () => validateJobConfig({ ...MINIMAL, cluster: { nodes: 0 } }, SCHEMA),
    /cluster\.nodes: 0 is below the minimum 1/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, cluster: { nodes: 65 } }, SCHEMA),
    /cluster\.nodes: 65 is above the maximum 64/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, ps: { max_frame_bytes: 100 } }, SCHEMA),
    /ps\.max_frame_bytes: 100 is below the minimum 1024/,
  );
  const c = validateJobConfig({ ...MINIMAL, cluster: { nodes: 64, workers_per_node: 64 } }, SCHEMA);
  assert.deepEqual(c.cluster, { nodes: 64, workers_per_node: 64 });
});

Deno.test("localize: none, [] and explicit directives", () => {
  assert.deepEqual(validateJobConfig({ ...MINIMAL, localize: "none" }, SCHEMA).localize, []);
  assert.deepEqual(validateJobConfig({ ...MINIMAL, localize: [] }, SCHEMA).localize, []);
  // The README's config reference: `localize: default` in a file is the task's own directives.
  assert.deepEqual(
    validateJobConfig({ ...MINIMAL, localize: "default" }, SCHEMA).localize,
    validateJobConfig({ ...MINIMAL }, SCHEMA).localize,
  );
  const c = validateJobConfig({
    ...MINIMAL,
    localize: [
      { table: "H", when: "block", schedule: "dsgd" },
      { table: "W", when: "ahead", keys: "next", steps: 4 },
    ],
  }, SCHEMA);
  assert.deepEqual(c.localize, [
    { table: "H", when: "block", schedule: "dsgd" },
    { table: "W", when: "ahead", keys: "next", steps: 4 },
  ]);
  fails(
    () => validateJobConfig({ ...MINIMAL, localize: "all" }, SCHEMA),
    /localize: expected a list of directives, "none" or "default", got "all"/,
  );
});

Deno.test("localize: unknown directive fields are errors", () => {
  fails(
    () =>
      validateJobConfig(
        { ...MINIMAL, localize: [{ table: "W", when: "start", key: "x" }] },
        SCHEMA,
      ),
    /unknown key localize\[0\]\.key in a localize directive \(did you mean localize\[0\]\.keys\?\)/,
  );
});

Deno.test("localize: directives the task does not understand name the allowed values", () => {
  fails(
    () => validateJobConfig({ ...MINIMAL, localize: [{ table: "X", when: "start" }] }, SCHEMA),
    /localize\[0\]\.table: task mf does not understand table: X \(task mf allows W, H\)/,
  );
  fails(
    () =>
      validateJobConfig(
        { ...MINIMAL, localize: [{ table: "W", when: "start", keys: "block" }] },
        SCHEMA,
      ),
    /localize\[0\]\.keys: task mf does not understand keys: block .*allows partition, next/,
  );
  fails(
    () =>
      validateJobConfig(
        { ...MINIMAL, localize: [{ table: "H", when: "block", schedule: "dsdg" }] },
        SCHEMA,
      ),
    /schedule: dsdg \(did you mean dsgd\?/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, localize: [{ table: "w", when: "start" }] }, SCHEMA),
    /table: w \(did you mean W\? task mf allows W, H\)/,
  );
  const noAhead: TaskSchema = { ...SCHEMA, localize: { ...SCHEMA.localize, when: ["start"] } };
  fails(
    () =>
      validateJobConfig(
        { ...MINIMAL, localize: [{ table: "W", when: "ahead", steps: 2 }] },
        noAhead,
      ),
    /localize\[0\]\.when: task mf does not understand when: ahead \(task mf allows start\)/,
  );
});

Deno.test("localize: when: ahead needs steps >= 1, and only ahead takes steps", () => {
  fails(
    () => validateJobConfig({ ...MINIMAL, localize: [{ table: "W", when: "ahead" }] }, SCHEMA),
    /missing required key localize\[0\]\.steps/,
  );
  fails(
    () =>
      validateJobConfig(
        { ...MINIMAL, localize: [{ table: "W", when: "ahead", steps: 0 }] },
        SCHEMA,
      ),
    /localize\[0\]\.steps: 0 is below the minimum 1/,
  );
  fails(
    () =>
      validateJobConfig(
        { ...MINIMAL, localize: [{ table: "W", when: "start", steps: 3 }] },
        SCHEMA,
      ),
    /steps only applies to when: ahead/,
  );
  fails(
    () => validateJobConfig({ ...MINIMAL, localize: [{ when: "start" }] }, SCHEMA),
    /missing required key localize\[0\]\.table/,
  );
});

Deno.test("parseYamlWithLines records the line of every key and list item", () => {
  const text = "task: mf\nmodel:\n  lr: 0.05\nlocalize:\n  - table: W\n    when: start\n";
  const p = parseYamlWithLines(text, "a.yaml");
  assert.deepEqual(p.value, {
    task: "mf",
    model: { lr: 0.05 },
    localize: [{ table: "W", when: "start" }],
  });
  assert.equal(p.lines.get("task"), 1);
  assert.equal(p.lines.get("model.lr"), 3);
  assert.equal(p.lines.get("localize[0]"), 5);
  assert.equal(p.lines.get("localize[0].when"), 6);
});

Deno.test("YAML syntax errors become ConfigErrors with the line", () => {
  const e = fails(
    () => parseYamlWithLines("task: mf\nmodel:\n  lr: 1\n  lr: 2\n", "b.yaml"),
    /^b\.yaml:4: invalid YAML: Map keys must be unique/,
  );
  assert.equal(e.line, 4);
  assert.equal(e.file, "b.yaml");
  fails(() => parseYamlWithLines("a: [1, 2\nb: 3\n", "c.yaml"), /^c\.yaml:\d+: invalid YAML/);
});

Deno.test("applySets: scalars, nested paths, lists and flow values", () => {
  const raw = { task: "mf", model: { lr: 0.05 }, localize: [{ table: "W", when: "start" }] };
  const out = applySets(raw, [
    "model.lr=0.1",
    "ps.mode=classic",
    "cluster.nodes=4",
    "data.generate.nnz=2000000",
    "ps.location_caches=false",
    "model.dims=[1, 2]",
    "localize[0].when=ahead",
    "localize.0.steps=3",
    "model.name=hello world",
  ]);
  assert.deepEqual(out, {
    task: "mf",
    model: { lr: 0.1, dims: [1, 2], name: "hello world" },
    ps: { mode: "classic", location_caches: false },
    cluster: { nodes: 4 },
    data: { generate: { nnz: 2000000 } },
    localize: [{ table: "W", when: "ahead", steps: 3 }],
  });
  // The input is not changed.
  assert.deepEqual(raw.model, { lr: 0.05 });
});

Deno.test("applySets: localize=none, localize=default and key=null", () => {
  const raw = { task: "mf", model: { lr: 0.05 }, localize: [{ table: "W", when: "start" }] };
  assert.deepEqual(applySets(raw, ["localize=none"]).localize, []);
  assert.equal("localize" in applySets(raw, ["localize=default"]), false);
  assert.deepEqual(applySets(raw, ["model.lr=null"]).model, {});
});

Deno.test("applySets: malformed flags are ConfigErrors naming the flag", () => {
  fails(
    () => applySets({}, ["model.lr"]),
    /^--set model\.lr: missing "=" \(write --set PATH=VALUE/,
  );
  fails(
    () => applySets({}, ["model..lr=1"]),
    /^--set model\.\.lr=1: "model\.\.lr" is not a valid key path/,
  );
  fails(() => applySets({}, ["=1"]), /is not a valid key path/);
  fails(() => applySets({}, ["model.lr="]), /^--set model\.lr=: no value/);
  fails(() => applySets({ model: { lr: 1 } }, ["model.lr.x=1"]), /model\.lr is not a section/);
  fails(() => applySets({ localize: [] }, ["localize[3].when=start"]), /localize has 0 entries/);
});

Deno.test("loadJobConfig: unknown key with suggestion and line number", async () => {
  const text = "task: mf\ndata:\n  generate: { rows: 10, nnz: 50 }\nmodel:\n  rank: 4\n  rnak: 5\n";
  const e = await withFile(text, (path) =>
    failsAsync(
      () => loadJobConfig(path, [], resolve),
      /job\.yaml:6: unknown key model\.rnak \(did you mean model\.rank\?\)$/,
    ));
  assert.equal(e.line, 6);
  assert.equal(e.path, "model.rnak");
});

Deno.test("loadJobConfig: wrong type in the file names file and line", async () => {
  const text = "task: mf\ndata:\n  generate:\n    rows: 10\n    nnz: 50\nmodel:\n  lr: fast\n";
  await withFile(text, (path) =>
    failsAsync(
      () => loadJobConfig(path, [], resolve),
      /job\.yaml:7: model\.lr: expected a number >= 0, got "fast" \(set model\.lr to/,
    ));
});

Deno.test("loadJobConfig: a missing key points at its section's line", async () => {
  const text = "task: mf\ndata:\n  generate:\n    rows: 10\n";
  await withFile(text, (path) =>
    failsAsync(
      () => loadJobConfig(path, [], resolve),
      /job\.yaml:3: missing required key data\.generate\.nnz/,
    ));
});

Deno.test("loadJobConfig: --set overrides win and their errors name the flag, not a line", async () => {
  const text = "task: mf\ndata:\n  generate: { rows: 10, nnz: 50 }\nmodel:\n  lr: 0.05\n";
  await withFile(text, async (path) => {
    const c = await loadJobConfig(
      path,
      ["model.lr=0.1", "ps.mode=classic", "localize=none"],
      resolve,
    );
    assert.equal(c.model.lr, 0.1);
    assert.equal(c.ps.mode, "classic");
    assert.equal(c.ps.placement, "random");
    assert.deepEqual(c.localize, []);
    const e = await failsAsync(
      () => loadJobConfig(path, ["model.lr=fast"], resolve),
      /^--set model\.lr=fast: model\.lr: expected a number/,
    );
    assert.equal(e.line, undefined);
    // A misspelt section that only the flag made: the flag is to blame, not the file.
    const t = await failsAsync(
      () => loadJobConfig(path, ["modle.lr=1"], resolve),
      /^--set modle\.lr=1: unknown key modle \(did you mean model\?\)/,
    );
    assert.equal(t.file, undefined);
  });
});

Deno.test("loadJobConfig: an unknown task is located at the task: line", async () => {
  await withFile(
    "seed: 3\ntask: nope\n",
    (path) =>
      failsAsync(
        () => loadJobConfig(path, [], resolve),
        /job\.yaml:2: unknown task "nope" \(use mf\)/,
      ),
  );
});

Deno.test("loadJobConfig: missing, empty and non-mapping files", async () => {
  await failsAsync(
    () => loadJobConfig("/nonexistent/x.yaml", [], resolve),
    /^config file "\/nonexistent\/x\.yaml" not found/,
  );
  await withFile(
    "",
    (path) => failsAsync(() => loadJobConfig(path, [], resolve), /the file is empty/),
  );
  await withFile(
    "- a\n- b\n",
    (path) => failsAsync(() => loadJobConfig(path, [], resolve), /expected a mapping of sections/),
  );
});

Deno.test("ConfigError is marked as a user error", () => {
  const e = new ConfigError("x", { file: "f.yaml", line: 2, hint: "do y" });
  assert.equal(e.message, "f.yaml:2: x (do y)");
  assert.equal(e[USER_ERROR], true);
  assert.equal((e as any)[Symbol.for("lapse.userError")], true);
});
