/** Activity proxies with their timeouts and retry policies, shared by the workflows. */
import { proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { SlipwayActivities } from '../activities/contract';
import { NON_RETRYABLE_ACTIVITY_ERRORS } from './errors';
import { BUILD_QUEUE } from './queues';

// Every activity heartbeats, so a dead worker is noticed within the heartbeat timeout and the step is retried.
export const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: NON_RETRYABLE_ACTIVITY_ERRORS };
export const registryActs = proxyActivities<SlipwayActivities>({ startToCloseTimeout: '30m', heartbeatTimeout: '20s', retry });
export const buildActs = proxyActivities<SlipwayActivities>({ taskQueue: BUILD_QUEUE, startToCloseTimeout: '60m', heartbeatTimeout: '20s', retry });
// A scan that keeps failing (registry down, disk full) must end the release, not retry forever.
export const scanRetry: RetryPolicy = { ...retry, maximumAttempts: 3 };
export const registryScanActs = proxyActivities<SlipwayActivities>({ startToCloseTimeout: '30m', heartbeatTimeout: '60s', retry: scanRetry });
export const hostScanActs = (taskQueue: string) =>
  proxyActivities<SlipwayActivities>({ taskQueue, startToCloseTimeout: '30m', heartbeatTimeout: '60s', retry: scanRetry, scheduleToStartTimeout: '10m' });
export const hostActs = (taskQueue: string) =>
  proxyActivities<SlipwayActivities>({ taskQueue, startToCloseTimeout: '30m', heartbeatTimeout: '20s', retry, scheduleToStartTimeout: '10m' });

// Kubernetes steps: a cluster that stays unreachable ends the release (and its rollbacks) instead of retrying forever.
export const kubeRetry: RetryPolicy = { ...retry, maximumAttempts: 5 };
export const kubeActs = proxyActivities<SlipwayActivities>({ startToCloseTimeout: '10m', heartbeatTimeout: '30s', retry: kubeRetry });
export const deployActs = (timeoutMs: number) =>
  proxyActivities<SlipwayActivities>({ startToCloseTimeout: timeoutMs + 180_000, heartbeatTimeout: '30s', retry: kubeRetry });
// The lock waits inside the activity; scheduleToClose bounds the whole wait, retries included.
export const lockActs = (busyTimeoutMs: number) =>
  proxyActivities<SlipwayActivities>({ scheduleToCloseTimeout: busyTimeoutMs + 60_000, heartbeatTimeout: '30s', retry: { ...retry, maximumAttempts: 10 } });

