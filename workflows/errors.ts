/**
 * Failure types, named once. Retrying cannot fix any of these, so activities and the workflow raise them as
 * non-retryable ApplicationFailures and the retry policies list them.
 */
export const ErrorTypes = {
  InvalidInput: 'InvalidInputError',
  BuildFailed: 'BuildFailedError',
  ImageNotFound: 'ImageNotFoundError',
  DigestMismatch: 'DigestMismatchError',
  RegistryAuth: 'RegistryAuthError',
  ApprovalRejected: 'ApprovalRejectedError',
  ApprovalExpired: 'ApprovalExpiredError',
  ReleaseAborted: 'ReleaseAbortedError',
  StageFailed: 'StageFailedError',
  ApprovalRefused: 'ApprovalRefusedError',
  ScanPolicyViolation: 'ScanPolicyViolationError',
  /** The rollout did not become ready (progress deadline, Helm's --wait timeout); the reasons are in the message. */
  RolloutFailed: 'RolloutFailedError',
  /** Helm refused the chart or its values (a template error, an invalid object). */
  DeployFailed: 'DeployFailedError',
  SmokeTestFailed: 'SmokeTestFailedError',
  /** Another release of the service holds the environment and the policy is to refuse. */
  EnvironmentBusy: 'EnvironmentBusyError',
  /** A kube context the worker's kubeconfig does not have, or a cluster that refuses the worker. */
  ClusterConfig: 'ClusterConfigError',
  /** Prometheus rejected a canary query (bad PromQL, several series): the analysis cannot judge, so it fails. */
  MetricQuery: 'MetricQueryError',
  /** The canary analysis judged the canary worse than the baseline (or a person rolled it back). */
  CanaryFailed: 'CanaryFailedError',
  /** A start request or decision whose identity could not be verified (no token, a bad signature, another binding). */
  Unauthenticated: 'UnauthenticatedError',
  /** The workers' configuration has no plan for the release (unknown service, invalid slipway.yaml). */
  PlanRefused: 'PlanRefusedError',
} as const;

export type ErrorType = (typeof ErrorTypes)[keyof typeof ErrorTypes];

export const NON_RETRYABLE_ACTIVITY_ERRORS: string[] = [
  ErrorTypes.InvalidInput,
  ErrorTypes.BuildFailed,
  ErrorTypes.ImageNotFound,
  ErrorTypes.DigestMismatch,
  ErrorTypes.RegistryAuth,
  ErrorTypes.RolloutFailed,
  ErrorTypes.DeployFailed,
  ErrorTypes.SmokeTestFailed,
  ErrorTypes.EnvironmentBusy,
  ErrorTypes.ClusterConfig,
  ErrorTypes.MetricQuery,
  ErrorTypes.Unauthenticated,
  ErrorTypes.PlanRefused,
];
