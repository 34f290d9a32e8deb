/**
 * Activity proxies with their timeouts and retry policies, shared by the workflows. Every proxy is bounded in time
 * (scheduleToCloseTimeout: the whole step, retries and queue waits included) and in attempts, so a failure that
 * keeps coming back ends the release with its own typed error instead of retrying forever. Create new proxies
 * through `boundedProxy` (test/unit/retry-policy.test.ts fails on a `proxyActivities` call anywhere else).
 */
import { proxyActivities, type ActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import type { GitopsActivities, SlipwayActivities } from '../activities/contract';
import { NON_RETRYABLE_ACTIVITY_ERRORS } from '../model/errors';
import { BUILD_QUEUE } from '../model/queues';

/** The base policy; every option set below adds its own `maximumAttempts`. */
export const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: NON_RETRYABLE_ACTIVITY_ERRORS };
export const attempts = (maximumAttempts: number): RetryPolicy & { maximumAttempts: number } => ({ ...retry, maximumAttempts });

/** Options a proxy may be created with: both bounds are required by the type as well as checked at run time. */
export type BoundedActivityOptions = ActivityOptions & {
  scheduleToCloseTimeout: NonNullable<ActivityOptions['scheduleToCloseTimeout']>;
  retry: RetryPolicy & { maximumAttempts: number };
};

const MINUTE = 60_000;

/**
 * Each stage's budget. Every activity heartbeats, so a dead worker is noticed within the heartbeat timeout and
 * the attempt is retried; the attempts and the schedule-to-close budget bound how long that may go on.
 */
export const activityOptions = {
  /** Docker builds (and chart packaging) on any builder: the wait for a free builder is inside the budget. */
  build: { taskQueue: BUILD_QUEUE, startToCloseTimeout: '60m', heartbeatTimeout: '20s', scheduleToCloseTimeout: '3h', retry: attempts(3) },
  /** Promotion copies between repositories or registries. */
  registry: { startToCloseTimeout: '30m', heartbeatTimeout: '20s', scheduleToCloseTimeout: '60m', retry: attempts(5) },
  /** A scan that keeps failing (registry down, disk full) must end the release, not retry forever. */
  registryScan: { startToCloseTimeout: '30m', heartbeatTimeout: '60s', scheduleToCloseTimeout: '60m', retry: attempts(3) },
  /** Kubernetes steps (inspect, smoke, rollback, canary): an unreachable cluster ends the release and its rollbacks. */
  kube: { startToCloseTimeout: '10m', heartbeatTimeout: '30s', scheduleToCloseTimeout: '30m', retry: attempts(5) },
  /** One Prometheus measurement of a canary interval: short, a few tries, then the analysis fails. */
  metrics: { startToCloseTimeout: '2m', heartbeatTimeout: '30s', scheduleToCloseTimeout: '10m', retry: attempts(5) },
  /** Steps pinned to the Docker host that built the image (push); a host that never comes back ends the release. */
  host: (taskQueue: string): BoundedActivityOptions => ({
    taskQueue,
    startToCloseTimeout: '30m',
    heartbeatTimeout: '20s',
    scheduleToStartTimeout: '10m',
    scheduleToCloseTimeout: '60m',
    retry: attempts(5),
  }),
  hostScan: (taskQueue: string): BoundedActivityOptions => ({
    taskQueue,
    startToCloseTimeout: '30m',
    heartbeatTimeout: '60s',
    scheduleToStartTimeout: '10m',
    scheduleToCloseTimeout: '60m',
    retry: attempts(3),
  }),
  /** helm upgrade --wait: its own timeout plus three minutes per attempt, three attempts. */
  deploy: (timeoutMs: number): BoundedActivityOptions => ({
    startToCloseTimeout: timeoutMs + 3 * MINUTE,
    heartbeatTimeout: '30s',
    scheduleToCloseTimeout: 3 * (timeoutMs + 3 * MINUTE) + 2 * MINUTE,
    retry: attempts(3),
  }),
  /** GitOps: a clone, a push or a forge call; an unreachable forge is retried a few times, then the release fails. */
  gitops: { startToCloseTimeout: '5m', heartbeatTimeout: '30s', scheduleToCloseTimeout: '20m', retry: attempts(5) },
  /** The wait for Flux: its own bound (deploy.timeout, at most FLUX_WAIT_MAX_MS) inside one attempt, a second for a lost worker. */
  flux: { startToCloseTimeout: '60m', heartbeatTimeout: '30s', scheduleToCloseTimeout: '2h', retry: attempts(2) },
  /** The lock waits inside the activity; scheduleToClose bounds the whole wait, retries included. */
  lock: (busyTimeoutMs: number): BoundedActivityOptions => ({ heartbeatTimeout: '30s', scheduleToCloseTimeout: busyTimeoutMs + MINUTE, retry: attempts(10) }),
} satisfies Record<string, BoundedActivityOptions | ((arg: never) => BoundedActivityOptions)>;

/** Why an option set is not bounded (undefined when it is). Pure; shared by boundedProxy and the unit test. */
export function unboundedReason(options: ActivityOptions): string | undefined {
  if (options.scheduleToCloseTimeout === undefined || options.scheduleToCloseTimeout === 0) return 'scheduleToCloseTimeout is not set';
  const max = options.retry?.maximumAttempts;
  if (!max || max < 1) return 'retry.maximumAttempts is not set (0 or absent means unlimited)';
  return undefined;
}

/** The only way workflows create activity proxies: refuses (at workflow start, deterministically) an unbounded one. */
export function boundedProxy<A extends object = SlipwayActivities>(options: BoundedActivityOptions) {
  const reason = unboundedReason(options);
  if (reason) throw new TypeError(`activity options ${JSON.stringify(options)}: ${reason}`);
  return proxyActivities<A>(options);
}

export const registryActs = boundedProxy(activityOptions.registry);
export const buildActs = boundedProxy(activityOptions.build);
export const registryScanActs = boundedProxy(activityOptions.registryScan);
export const kubeActs = boundedProxy(activityOptions.kube);
export const metricActs = boundedProxy(activityOptions.metrics);
export const hostScanActs = (taskQueue: string) => boundedProxy(activityOptions.hostScan(taskQueue));
export const hostActs = (taskQueue: string) => boundedProxy(activityOptions.host(taskQueue));
export const deployActs = (timeoutMs: number) => boundedProxy(activityOptions.deploy(timeoutMs));
export const lockActs = (busyTimeoutMs: number) => boundedProxy(activityOptions.lock(busyTimeoutMs));
export const gitopsActs = boundedProxy<GitopsActivities>(activityOptions.gitops);
export const fluxActs = boundedProxy<GitopsActivities>(activityOptions.flux);
/** The longest wait for Flux one attempt makes: inside the flux option set's start-to-close. */
export const FLUX_WAIT_MAX_MS = 55 * MINUTE;

/** Kept for callers that built their own policies from these. */
export const scanRetry: RetryPolicy = activityOptions.registryScan.retry;
export const kubeRetry: RetryPolicy = activityOptions.kube.retry;
