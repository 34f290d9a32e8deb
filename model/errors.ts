/**
 * Slipway's one error vocabulary: every failure type, named once, with whether retrying the step can help.
 * Adapters raise these only through portError (activities/errors.ts), which sets the ApplicationFailure's
 * nonRetryable flag from this table, and the retry policies list the non-retryable ones, so a port's failure means
 * the same whichever adapter raised it (test/unit/retry-policy.test.ts checks both). A new failure is a new row
 * here. The type strings are part of recorded histories: add, never rename or remove one.
 */
export interface ErrorSpec {
  readonly type: string;
  /** true: a passing fault (network, a 5xx, a busy server) that the same step may get past when tried again. */
  readonly retryable: boolean;
  readonly description: string;
}

export const ERROR_CATALOGUE = {
  InvalidInput: { type: 'InvalidInputError', retryable: false, description: 'input that breaks a documented rule; the field and the rule are named' },
  BuildFailed: { type: 'BuildFailedError', retryable: false, description: 'the Dockerfile failed; the failing step and the last log lines are in the details' },
  ImageNotFound: { type: 'ImageNotFoundError', retryable: false, description: 'the image, manifest or repository does not exist (HTTP 404)' },
  DigestMismatch: { type: 'DigestMismatchError', retryable: false, description: 'an image is not the digest the release expects; nothing was tagged' },
  RegistryAuth: { type: 'RegistryAuthError', retryable: false, description: 'the registry refused the credentials (HTTP 401/403) or none are configured' },
  ApprovalRejected: { type: 'ApprovalRejectedError', retryable: false, description: 'an approver rejected the release' },
  ApprovalExpired: { type: 'ApprovalExpiredError', retryable: false, description: 'nobody decided before the approval deadline' },
  ReleaseAborted: { type: 'ReleaseAbortedError', retryable: false, description: 'someone aborted the release' },
  StageFailed: { type: 'StageFailedError', retryable: false, description: 'a stage failed for a reason without a type of its own' },
  ApprovalRefused: { type: 'ApprovalRefusedError', retryable: false, description: 'an approval the validator refused' },
  ScanPolicyViolation: { type: 'ScanPolicyViolationError', retryable: false, description: "the scan found what the environment's policy forbids" },
  RolloutFailed: { type: 'RolloutFailedError', retryable: false, description: "the rollout did not become ready (progress deadline, Helm's --wait timeout); the reasons are in the message" },
  DeployFailed: { type: 'DeployFailedError', retryable: false, description: 'Helm refused the chart or its values (a template error, an invalid object)' },
  SmokeTestFailed: { type: 'SmokeTestFailedError', retryable: false, description: 'a smoke test failed' },
  EnvironmentBusy: { type: 'EnvironmentBusyError', retryable: false, description: 'another release of the service holds the environment and the policy is to refuse' },
  ClusterConfig: { type: 'ClusterConfigError', retryable: false, description: "a kube context the worker's kubeconfig does not have, or a cluster that refuses the worker" },
  MetricQuery: { type: 'MetricQueryError', retryable: false, description: 'Prometheus rejected a canary query (bad PromQL, several series): the analysis cannot judge' },
  MetricsUnavailable: { type: 'MetricsUnavailableError', retryable: true, description: 'Prometheus (or the proxy in front of it) did not answer, or answered 408/429/5xx' },
  CanaryFailed: { type: 'CanaryFailedError', retryable: false, description: 'the canary analysis judged the canary worse than the baseline (or a person rolled it back)' },
  Unauthenticated: { type: 'UnauthenticatedError', retryable: false, description: 'a start request or decision whose identity could not be verified (no token, a bad signature, another binding)' },
  PlanRefused: { type: 'PlanRefusedError', retryable: false, description: "the workers' configuration has no plan for the release (unknown service, invalid slipway.yaml)" },
  TagExists: { type: 'TagExistsError', retryable: false, description: 'the target tag already points to another digest and promotion never overwrites a tag' },
  RegistryUnavailable: { type: 'RegistryUnavailableError', retryable: true, description: 'the registry did not answer, or answered 408/429/5xx' },
  RegistryRejected: { type: 'RegistryRejectedError', retryable: false, description: 'the registry refused a request for a reason retrying cannot change (another 4xx)' },
  /** Raised by the workflow when a step ran out of time or attempts without a typed failure of its own. */
  Timeout: { type: 'TimeoutError', retryable: true, description: 'a step did not finish within its time budget' },
  // Raised by adapters under these names before this table existed; listed so that the vocabulary is complete.
  ClusterUnreachable: { type: 'ClusterUnreachableError', retryable: true, description: 'the Kubernetes API did not answer' },
  Helm: { type: 'HelmError', retryable: true, description: 'helm failed for an unclassified reason' },
  HelmBusy: { type: 'HelmBusyError', retryable: true, description: 'the Helm release has another operation in progress' },
  ScannerUnavailable: { type: 'ScannerUnavailableError', retryable: false, description: 'the scanner binary is missing' },
  ScannerDatabase: { type: 'ScannerDatabaseError', retryable: false, description: 'the scanner has no usable vulnerability database' },
  ScannerTimeout: { type: 'ScannerTimeoutError', retryable: false, description: 'the scan did not finish within its timeout' },
  ScanReportInvalid: { type: 'ScanReportInvalidError', retryable: false, description: 'the scanner wrote a report Slipway cannot read' },
  ScannerFailed: { type: 'ScannerFailedError', retryable: true, description: 'the scanner exited with an error (the registry, the disk)' },
  // GitOps delivery (issue #13): the environment repository, its forge, and Flux applying what was merged.
  GitRepositoryUnavailable: { type: 'GitRepositoryUnavailableError', retryable: true, description: 'the environment repository or its forge did not answer, or answered 408/429/5xx' },
  GitBranchMissing: { type: 'GitBranchMissingError', retryable: false, description: "the environment repository has no such branch (delivery.repository.branch)" },
  GitopsEntryMissing: { type: 'GitopsEntryMissingError', retryable: false, description: 'the file at delivery.repository.path has no entry for the image (no images: entry, HelmRelease key or marker)' },
  GitMergeConflict: { type: 'GitMergeConflictError', retryable: false, description: 'a revert or a pull request that cannot merge cleanly' },
  ForgeAuth: { type: 'ForgeAuthError', retryable: false, description: 'the forge or the repository refused the token (401/403), or the workers have no token in forge.tokenEnv' },
  ForgeRejected: { type: 'ForgeRejectedError', retryable: false, description: 'the forge or git refused a request for a reason retrying cannot change (another 4xx)' },
  PullRequestClosed: { type: 'PullRequestClosedError', retryable: false, description: "the release's pull request was closed without being merged: the release is rejected" },
  FluxApplyFailed: { type: 'FluxApplyFailedError', retryable: false, description: "Flux did not apply the release's commit (a failed reconcile, with Flux's reason, or not within the deploy timeout)" },
} as const satisfies Record<string, ErrorSpec>;

type Catalogue = typeof ERROR_CATALOGUE;
export type ErrorKey = keyof Catalogue;

/** The type strings by name: `ErrorTypes.DigestMismatch === 'DigestMismatchError'`. */
export const ErrorTypes = Object.fromEntries(Object.entries(ERROR_CATALOGUE).map(([k, v]) => [k, v.type])) as { readonly [K in ErrorKey]: Catalogue[K]['type'] };

export type ErrorType = Catalogue[ErrorKey]['type'];

const BY_TYPE = new Map<string, ErrorSpec>(Object.values(ERROR_CATALOGUE).map((s) => [s.type, s]));

/** Whether retrying can help; an unknown type (a programming error, a Node error) is retried, as Temporal does. */
export function isRetryable(type: string): boolean {
  return BY_TYPE.get(type)?.retryable ?? true;
}

/** Listed in every retry policy, so a permanent failure fails the step at once whichever flag its thrower set. */
export const NON_RETRYABLE_ACTIVITY_ERRORS: string[] = Object.values(ERROR_CATALOGUE)
  .filter((s) => !s.retryable)
  .map((s) => s.type);

/**
 * What a failed step comes down to, for the workflow's final error: the innermost typed failure under the
 * ActivityFailure / ChildWorkflowFailure / TimeoutFailure wrappers, and — when a step ran out of attempts or
 * time — a message that says so. Pure and deterministic (reads only the error object).
 */
export function explainFailure(err: unknown): { type: string; message: string } {
  let e: any = err;
  let activity: string | undefined;
  let retryState: string | undefined;
  let timeout: string | undefined;
  for (let depth = 0; e && depth < 10; depth++) {
    if (e.name === 'ActivityFailure' || e.name === 'ChildWorkflowFailure') {
      activity ??= e.activityType ?? e.workflowType;
      retryState ??= retryStateName(e.retryState);
    } else if (e.name === 'TimeoutFailure') {
      timeout ??= timeoutName(e.timeoutType);
    } else {
      break;
    }
    if (!e.cause) break;
    e = e.cause;
  }
  const typed = e && typeof e.type === 'string' && e.name !== 'TimeoutFailure' ? (e.type as string) : undefined;
  const inner = e?.message ?? String(err);
  const step = activity ? `${activity}: ` : '';
  if (timeout) {
    const last = typed || (e && e.name !== 'TimeoutFailure') ? ` (last error: ${inner})` : '';
    return { type: typed ?? ERROR_CATALOGUE.Timeout.type, message: `${step}gave up after the ${timeout} timeout${last}` };
  }
  if (retryState === 'MAXIMUM_ATTEMPTS_REACHED') return { type: typed ?? ERROR_CATALOGUE.StageFailed.type, message: `${step}gave up after its last attempt: ${inner}` };
  return { type: typed ?? ERROR_CATALOGUE.StageFailed.type, message: inner };
}

// RetryState and TimeoutType arrive as enum numbers or names depending on the SDK path; both are accepted.
const RETRY_STATES = ['UNSPECIFIED', 'IN_PROGRESS', 'NON_RETRYABLE_FAILURE', 'TIMEOUT', 'MAXIMUM_ATTEMPTS_REACHED', 'RETRY_POLICY_NOT_SET', 'INTERNAL_SERVER_ERROR', 'CANCEL_REQUESTED'];
const TIMEOUT_TYPES = ['UNSPECIFIED', 'START_TO_CLOSE', 'SCHEDULE_TO_START', 'SCHEDULE_TO_CLOSE', 'HEARTBEAT'];
const enumName = (v: unknown, names: string[], prefix: string): string | undefined =>
  typeof v === 'number' ? names[v] : typeof v === 'string' ? v.replace(prefix, '') : undefined;
const retryStateName = (v: unknown) => enumName(v, RETRY_STATES, 'RETRY_STATE_');
const timeoutName = (v: unknown) => {
  const n = enumName(v, TIMEOUT_TYPES, 'TIMEOUT_TYPE_');
  return n ? n.toLowerCase().replace(/_/g, '-') : 'activity';
};

/** A request or configuration the user must correct (the CLI prints it without a stack trace). */
export class UsageError extends Error {
  override name = 'UsageError';
}
