/**
 * A worker's checkpoint state (what a task gives `ctx.checkpoint` at the end of an epoch and
 * gets back as `ctx.resumeState`), shared by kge and w2v: the common fields, their check on
 * resume, and typed arrays (negative pools) as base64 strings in the JSON state.
 *
 * Common fields: `epoch` (the next epoch to train), `seed` (the job seed), `worker` and
 * `workers` (who wrote it: a state resumed by another worker, on another cluster shape, must
 * not reuse the writer's random streams, or two workers would draw the same negatives).
 *
 * @module
 */
import { userError } from "../core/errors.ts";

/** The fields every kge and w2v worker state has. */
export interface EpochState {
  /** The next epoch to train (the checkpoint was taken after epoch - 1). */
  epoch: number;
  seed: number;
  worker: number;
  workers: number;
}

/** What {@linkcode resumeFrom} found. */
export interface ResumePoint {
  /** First epoch to train. */
  firstEpoch: number;
  /** The state was written by this very worker of a job of the same shape: reuse its streams. */
  sameWorker: boolean;
}

/**
 * Checks a resumed worker state against the job (the same seed, an epoch inside the run) and
 * says where to go on.
 *
 * @throws {Error} a user error naming the fix when the state is not of this job.
 */
export function resumeFrom(
  task: string,
  state: Record<string, unknown>,
  job: { seed: number; epochs: number; worker: number; workers: number },
): ResumePoint {
  const { epoch, seed, worker, workers } = state;
  if (seed !== job.seed || !Number.isInteger(epoch) || (epoch as number) < 1) {
    throw userError(
      `${task}: the checkpoint's worker state ${JSON.stringify(state).slice(0, 200)} does not ` +
        `fit this ${task} job (seed ${job.seed}): resume with the config that wrote the checkpoint`,
    );
  }
  if ((epoch as number) >= job.epochs) {
    throw userError(
      `${task}: the checkpoint was taken after epoch ${(epoch as number) - 1}, the last one of ` +
        `a ${job.epochs}-epoch job: nothing left to train (raise model.epochs to train on)`,
    );
  }
  return {
    firstEpoch: epoch as number,
    sameWorker: worker === job.worker && workers === job.workers,
  };
}

const CHUNK = 0x8000;

/** A 32-bit integer array as a base64 string (little endian), for a JSON state. */
export function encodeInts(a: Uint32Array | Int32Array): string {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let bin = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    bin += String.fromCharCode(...bytes.subarray(i, Math.min(bytes.length, i + CHUNK)));
  }
  return btoa(bin);
}

/**
 * Fills `out` from {@linkcode encodeInts}' string; false (and `out` untouched) if the value is
 * not such a string of exactly `out.length` integers.
 */
export function decodeInts(value: unknown, out: Uint32Array | Int32Array): boolean {
  if (typeof value !== "string" || value.length !== 4 * Math.ceil(out.byteLength / 3)) {
    return false;
  }
  let bin: string;
  try {
    bin = atob(value);
  } catch {
    return false;
  }
  if (bin.length !== out.byteLength) return false;
  const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return true;
}
