/**
 * Node 0's judgement of a finished epoch, the same for every task: a job that trains on
 * nothing, or whose loss is no longer a number, cannot give a useful model, so it fails with
 * the reason (exit 2) instead of finishing "successfully".
 *
 * @module
 */

/** Metrics that are a loss or an error: NaN or infinity there means training diverged. */
const LOSS_METRIC = /loss|rmse|mse|error/i;

/**
 * The reason to fail the job after epoch `epoch`, or null. `points` is the number of data
 * points the workers declared for the epoch (all workers together); `metrics` are the task's
 * summarized metrics of the epoch.
 */
export function epochProblem(
  epoch: number,
  points: number,
  workers: number,
  metrics: Record<string, number>,
): string | null {
  if (points === 0) {
    return `the training set is empty: 0 data points over all ${workers} worker(s) in epoch ` +
      `${epoch} (check the data file and the data.* settings)`;
  }
  for (const [name, value] of Object.entries(metrics)) {
    if (LOSS_METRIC.test(name) && !Number.isFinite(value)) {
      return `${name} became ${value} in epoch ${epoch}: training diverged (lower model.lr, ` +
        `or look for huge or broken values in the data)`;
    }
  }
  return null;
}
