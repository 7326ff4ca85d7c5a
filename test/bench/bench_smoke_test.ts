/**
 * Every `deno bench` case of bench/ runs once (one quick iteration, no timing), so that a broken
 * benchmark fails `deno task ok` instead of going unnoticed until someone runs `deno task bench`.
 * The bench files are imported with `Deno.bench` replaced by a collector; each collected case
 * then runs once with a `b` whose start/end do nothing.
 */
import assert from "node:assert/strict";

type BenchFn = (b: { start(): void; end(): void }) => void | Promise<void>;
interface Case {
  name: string;
  fn: BenchFn;
  ignore?: boolean;
}

/** Normalises the overloads of `Deno.bench` to one case. */
function toCase(a: unknown, b?: unknown, c?: unknown): Case {
  if (typeof a === "function") return { name: a.name, fn: a as BenchFn };
  if (typeof a === "string") {
    if (typeof b === "function") return { name: a, fn: b as BenchFn };
    return { ...(b as object), name: a, fn: c as BenchFn };
  }
  const o = a as Record<string, unknown>;
  const fn = (typeof b === "function" ? b : o.fn) as BenchFn;
  return { ...o, name: String(o.name ?? fn.name), fn } as Case;
}

const BENCH_DIR = new URL("../../bench/", import.meta.url);

Deno.test("every benchmark in bench/ runs once without error", async () => {
  const files = [...Deno.readDirSync(BENCH_DIR)]
    .filter((e) => e.isFile && e.name.endsWith("_bench.ts"))
    .map((e) => e.name)
    .sort();
  assert.ok(files.length >= 3, `bench files: ${files.join(", ")}`);
  const original = Deno.bench;
  const cases: (Case & { file: string })[] = [];
  let file = "";
  Object.defineProperty(Deno, "bench", {
    value: (a: unknown, b?: unknown, c?: unknown) => void cases.push({ ...toCase(a, b, c), file }),
    configurable: true,
    writable: true,
  });
  try {
    for (file of files) await import(new URL(file, BENCH_DIR).href);
  } finally {
    Object.defineProperty(Deno, "bench", { value: original, configurable: true, writable: true });
  }
  assert.ok(cases.length >= files.length, `${cases.length} cases in ${files.length} files`);
  const noop = { start() {}, end() {} };
  const failures: string[] = [];
  for (const c of cases) {
    if (c.ignore) continue;
    try {
      await c.fn(noop);
    } catch (e) {
      failures.push(`${c.file}: "${c.name}": ${(e as Error)?.message ?? e}`);
    }
  }
  assert.deepEqual(failures, [], failures.join("\n"));
});
