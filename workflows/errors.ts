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
} as const;

export type ErrorType = (typeof ErrorTypes)[keyof typeof ErrorTypes];

export const NON_RETRYABLE_ACTIVITY_ERRORS: string[] = [
  ErrorTypes.InvalidInput,
  ErrorTypes.BuildFailed,
  ErrorTypes.ImageNotFound,
  ErrorTypes.DigestMismatch,
  ErrorTypes.RegistryAuth,
];
