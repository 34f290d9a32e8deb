/**
 * A test-only workflow: runs one activity with the given heartbeat timeout and no retries, so a test can watch an
 * activity meet its heartbeat timeout, its own timeout or a cancellation on the real server.
 */
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';

export interface SingleActivityOptions {
  heartbeatTimeoutMs: number;
  startToCloseTimeoutMs: number;
}

export async function singleActivity(name: string, input: unknown, opts: SingleActivityOptions): Promise<unknown> {
  const acts = proxyActivities<Record<string, (input: unknown) => Promise<unknown>>>({
    heartbeatTimeout: opts.heartbeatTimeoutMs,
    startToCloseTimeout: opts.startToCloseTimeoutMs,
    retry: { maximumAttempts: 1 },
    // The workflow ends only once the activity has finished cancelling: the test then checks what it left behind.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  return acts[name](input);
}
