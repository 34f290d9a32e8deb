/**
 * The GitOps adapters' failures, each named by what failed (`failure`) and for which repository, raised through
 * portError. Each kind maps onto the catalogue's Git rows (model/errors.ts), which set its retryability; the kind
 * and repository also travel in the failure's details.
 */
import { ErrorTypes, type ErrorType } from '../../model/errors';
import { classifyNetwork, networkCode, portError } from '../errors';

export const GITOPS_FAILURE_TYPES = {
  /** Network error, 408/429/5xx: the server may answer next time (retryable). */
  unreachable: ErrorTypes.GitRepositoryUnavailable,
  /** The configured branch does not exist on the remote. */
  'branch-missing': ErrorTypes.GitBranchMissing,
  /** The repository, or the file at repository.path, does not exist. */
  'not-found': ErrorTypes.InvalidInput,
  /** The file exists but has no entry for the image (no images: entry, no HelmRelease key, no marker). */
  'entry-missing': ErrorTypes.GitopsEntryMissing,
  /** A revert or a pull request that cannot merge cleanly. */
  'merge-conflict': ErrorTypes.GitMergeConflict,
  /** 401/403: no token, a bad token, or a token without the rights this step needs. */
  auth: ErrorTypes.ForgeAuth,
  /** A webhook whose signature (or basic auth) does not verify. */
  'bad-signature': ErrorTypes.Unauthenticated,
  /** Another 4xx, or git refusing the request for a reason retrying cannot change. */
  rejected: ErrorTypes.ForgeRejected,
} as const satisfies Record<string, ErrorType>;

export type GitopsFailure = keyof typeof GITOPS_FAILURE_TYPES;

/** A typed failure naming the repository and what failed; details carry both for callers and tests. */
export function gitopsError(failure: GitopsFailure, repository: string, message: string, details: Record<string, unknown> = {}) {
  return portError(GITOPS_FAILURE_TYPES[failure], `${repository}: ${message}`, { ...details, repository, failure });
}

/** The failure kind an error carries (from gitopsError's details), if any. */
export function failureOf(err: unknown): GitopsFailure | undefined {
  const d = (err as { details?: unknown[] })?.details?.[0] as { failure?: GitopsFailure } | undefined;
  return d?.failure;
}

/** HTTP status → failure kind, for the forge adapters. */
export function httpFailure(status: number): GitopsFailure {
  if (status === 401 || status === 403) return 'auth';
  if (status === 404) return 'not-found';
  if (status === 409) return 'merge-conflict';
  if (status === 408 || status === 429 || status >= 500) return 'unreachable';
  return 'rejected';
}

/** A fetch failure: network errors become `unreachable`; typed failures pass through. */
export function networkFailure(err: unknown, repository: string, what: string): unknown {
  const code = networkCode(err);
  if (code) return gitopsError('unreachable', repository, `${what}: ${code}`);
  return classifyNetwork(err, `${repository}: ${what}`);
}
