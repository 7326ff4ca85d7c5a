/**
 * The shared vocabulary of every layer: job configs, tables, schemas.
 *
 * @module
 */

/** The ways the PS places, moves and caches parameters (DESIGN.md section 7). */
export type PsMode = "lapse" | "classic" | "classic_remote" | "stale";

/** One `localize:` entry of a task config. */
export interface LocalizeDirective {
  /** Table name, e.g. `W`. */
  table: string;
  /** `start`: once before training; `block`: at each block of a schedule; `ahead`: `steps` data points ahead. */
  when: "start" | "block" | "ahead";
  /** Which keys: this worker's `partition`, the current `block`, or the `next` data points' keys. */
  keys?: "partition" | "block" | "next";
  /** Name of a block schedule (`dsgd`) for `when: block`. */
  schedule?: string;
  /** How many data points ahead, for `when: ahead`. */
  steps?: number;
}

/** The validated, defaults-filled job config every node and worker sees. */
export interface JobConfig {
  /** The task's name, e.g. `mf`. */
  task: string;
  /** Seed of all randomness of the job (default 1). */
  seed: number;
  /** The task's `data:` section, validated by its schema. */
  data: Record<string, any>;
  /** The task's `model:` section, validated by its schema. */
  model: Record<string, any>;
  /** Cluster shape: nodes 1-64 (default 2), worker threads per node 1-64 (default 1). */
  cluster: { nodes: number; workers_per_node: number };
  /** Parameter server settings. */
  ps: {
    /** Default `lapse`. */
    mode: PsMode;
    /** Send requests for non-local keys to the last known owner instead of the home node. */
    location_caches: boolean;
    /** Home placement: contiguous key ranges, or a seeded random permutation (classic default). */
    placement: "range" | "random";
    /** Largest accepted frame on a connection between nodes. */
    max_frame_bytes: number;
    /** Most keys in one pull/push/localize call. */
    batch_keys_max: number;
    /**
     * A node silent (no message, no heartbeat) this long counts as lost and fails the running
     * job (default 30000). Optional for configs built by hand.
     */
    peer_timeout_ms?: number;
    /**
     * Stale mode: a worker at clock c may read a cached value that misses updates of clocks
     * c - staleness and later, never older ones (0 = every earlier clock's updates are seen).
     * Always set by validation (default 1); optional for configs built by hand.
     */
    staleness?: number;
  };
  /** The directives in force (the task's defaults if the config has no `localize:`). */
  localize: LocalizeDirective[];
  /**
   * Checkpoints: after every `every_epochs`-th epoch each node writes its keys and its
   * workers' state under `dir` (on its own disk; see server/checkpoint.ts). Absent: none.
   */
  checkpoint?: { dir: string; every_epochs: number };
  /**
   * Resume from the last complete checkpoint in this folder (`lapse train --resume DIR`), on a
   * cluster of the same size. Node 0 fills in the manifest it found.
   */
  resume?: { dir: string; manifest?: unknown };
}

/** One field of a task's config schema. */
export interface FieldSchema {
  /** The value's type; `integer` is a number without a fraction. */
  type: "number" | "integer" | "string" | "boolean" | "object" | "array";
  /** One line for docs and error hints, as a noun phrase (e.g. `learning rate`). */
  doc: string;
  /** Used when the field is absent (validated like a given value). */
  default?: unknown;
  /** A field without a default and with `required: true` must be given. */
  required?: boolean;
  /** Least value (numbers) or number of entries (arrays), inclusive. */
  min?: number;
  /** Greatest value (numbers) or number of entries (arrays), inclusive. */
  max?: number;
  /** For `string`: the allowed values. */
  enum?: readonly string[];
  /** For `object`: its fields (unknown keys are errors). Omit to allow any keys. */
  fields?: Record<string, FieldSchema>;
  /** For `array`: the schema of each element. */
  items?: FieldSchema;
  /**
   * For `string`: a file path. A relative path from the config file is resolved against the
   * config file's folder, one from `--set` against the working directory; nodes get it absolute.
   */
  path?: boolean;
}

/** What a task adds to the config schema. */
export interface TaskSchema {
  /** The `data:` section (normally an `object` with `fields`). */
  data: FieldSchema;
  /** The `model:` section (normally an `object` with `fields`). */
  model: FieldSchema;
  /** Which localize directives the task understands (anything else is a config error). */
  localize: {
    tables: readonly string[];
    when: readonly LocalizeDirective["when"][];
    keys: readonly NonNullable<LocalizeDirective["keys"]>[];
    schedules?: readonly string[];
  };
  /** The task's default localize directives (used when the config has no `localize:`). */
  defaultLocalize: LocalizeDirective[];
}

/** How a table's values start. Deterministic per key: any node may initialise any key. */
export type InitSpec =
  | { kind: "zero" }
  | { kind: "constant"; value: number }
  | { kind: "uniform"; scale: number; floats?: number } // uniform in [-scale, scale]
  | { kind: "normal"; std: number; floats?: number };
// `floats` (random kinds): only the first `floats` floats of each key are random, the rest start
// at zero (e.g. an optimizer state stored after the weights in the same key). Default: all.

/** Most keys of one table (keys are 32-bit signed indices). */
export const TABLE_KEYS_MAX = 0x7fffffff;
/** Largest value length (floats per key) of a table. */
export const TABLE_DIM_MAX = 65536;
/** Largest table (keys x dim x 4 bytes); a node may hold all of it. */
export const TABLE_BYTES_MAX = 8 * 1024 * 1024 * 1024;

/** One table of parameters: `keys` keys of `dim` floats each. */
export interface TableSpec {
  name: string;
  keys: number;
  dim: number;
  init: InitSpec;
}
