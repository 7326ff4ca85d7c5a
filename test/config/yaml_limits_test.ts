/**
 * The limits of config/yaml.ts that keep a hostile config cheap: alias bombs, deep nesting and
 * huge files are one ConfigError each, quickly, instead of gigabytes or a stack overflow.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../core/errors.ts";
import {
  parseYamlWithLines,
  YAML_ALIASES_MAX,
  YAML_BYTES_MAX,
  YAML_DEPTH_MAX,
} from "../../config/yaml.ts";

function configError(text: string, pattern: RegExp): void {
  assert.throws(() => parseYamlWithLines(text, "bad.yaml"), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

Deno.test("yaml: a 320-byte alias bomb is refused at once", () => {
  // 9 levels of 9 references each: 9^9 = 387M strings when expanded.
  let bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  for (let i = 1; i < 9; i++) {
    const name = String.fromCharCode(97 + i), prev = String.fromCharCode(96 + i);
    bomb += `${name}: &${name} [${Array(9).fill(`*${prev}`).join(",")}]\n`;
  }
  configError(bomb, /^bad\.yaml: invalid YAML: its aliases expand to too many values/);
});

Deno.test("yaml: more aliases than the limit are refused with the line", () => {
  const text = "x: &x 1\nl:\n" + "  - *x\n".repeat(YAML_ALIASES_MAX + 1);
  configError(
    text,
    new RegExp(`^bad\\.yaml:\\d+: more than ${YAML_ALIASES_MAX} aliases \\(\\*x\\)`),
  );
  // A few aliases are fine.
  const ok = parseYamlWithLines("x: &x 1\nl: [*x, *x]\n", "ok.yaml");
  assert.deepEqual(ok.value, { x: 1, l: [1, 1] });
});

Deno.test("yaml: nesting deeper than the limit is refused, flow or block", () => {
  const flow = "a: " + "[".repeat(5000) + "]".repeat(5000) + "\n";
  configError(flow, /invalid YAML: nested more than 64 levels deep/);
  let block = "";
  for (let i = 0; i < 300; i++) block += " ".repeat(i) + "k:\n";
  configError(block, /^bad\.yaml:\d+: invalid YAML: nested more than 64 levels deep/);
  // Just inside the limit is fine.
  const inside = "a: " + "[".repeat(YAML_DEPTH_MAX - 2) + "]".repeat(YAML_DEPTH_MAX - 2);
  parseYamlWithLines(inside, "ok.yaml");
});

Deno.test("yaml: a file above the size limit is refused before parsing", () => {
  configError("#".repeat(YAML_BYTES_MAX + 1), /more than the 1048576 a config may have/);
});
