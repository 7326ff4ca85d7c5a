/**
 * The tasks this build knows, by config name. Imports are literal so that `deno compile`
 * bundles them.
 *
 * @module
 */
import type { TaskDefinition } from "../core/task.ts";

const TASKS: Record<string, () => Promise<TaskDefinition>> = {
  mf: async () => (await import("./mf.ts")).task,
  kge: async () => (await import("./kge.ts")).task,
  pscheck: async () => (await import("./pscheck.ts")).task,
  sspcheck: async () => (await import("./sspcheck.ts")).task,
  w2v: async () => (await import("./w2v.ts")).task,
  pingpong: async () => (await import("./pingpong.ts")).task,
};

/** Names of the known tasks. */
export const TASK_NAMES: readonly string[] = Object.keys(TASKS);

/** Loads a task by name; a `RangeError` names the known tasks if there is none. */
export function loadTask(name: string): Promise<TaskDefinition> {
  const load = TASKS[name];
  if (load === undefined) {
    return Promise.reject(
      new RangeError(
        `Unknown task "${name}": expected one of ${TASK_NAMES.join(", ")} (config key task)`,
      ),
    );
  }
  return load();
}

/**
 * Names of the shipped configs: every `tasks/NAME.yaml` (usable as `lapse train --config NAME`
 * and `lapse init NAME`).
 */
export function builtinConfigs(): string[] {
  const dir = new URL(".", import.meta.url);
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => e.isFile && e.name.endsWith(".yaml"))
      .map((e) => e.name.slice(0, -".yaml".length))
      .sort();
  } catch {
    return [];
  }
}

/**
 * The file of a shipped config, or undefined if `name` is not one. A path to an existing file
 * always wins over a shipped config of the same name (see `lapse train --config`).
 */
export function builtinConfigPath(name: string): string | undefined {
  if (!/^[a-z][a-z0-9_]*$/.test(name) || !builtinConfigs().includes(name)) return undefined;
  return decodeURIComponent(new URL(`./${name}.yaml`, import.meta.url).pathname);
}
