/**
 * GitOps ports (issue #13): the environment repository (Git) and the forge that serves its pull requests.
 * Adapters: git.ts (EnvironmentRepository, git through execFile), forge/{gitea,github,azure-repos}.ts (Forge).
 * Every method is idempotent on the release's identity (workflow id + environment + digest), so a retried
 * activity finds its own commit, branch or pull request instead of making a second.
 */

/** What a release changes in one environment's repository. */
export interface ReleaseChange {
  /** The release's workflow id (release:<service>:<version>): the Slipway-Release trailer. */
  workflowId: string;
  environment: string;
  service: string;
  version: string;
  /** The image repository the environment runs, e.g. 127.0.0.1:5000/prod/delivery. */
  repository: string;
  /** sha256:<64 hex> — the Slipway-Digest trailer. */
  digest: string;
}

/**
 * Where a change went:
 *  - `landed`: the target branch already holds it (found by its trailers, or pushed directly now);
 *  - `branch`: committed on the release branch, waiting for a pull request to merge it;
 *  - `unchanged`: the file already pins this digest; nothing was committed.
 */
export type ChangeState = 'landed' | 'branch' | 'unchanged';

export interface PreparedChange {
  state: ChangeState;
  /** The release (or revert) branch, for `branch`; the target branch otherwise. */
  branch: string;
  /** The commit carrying the trailers (absent for `unchanged`). */
  commit?: string;
  /** The target branch's commit the change was made on. */
  base: string;
  /** True when an earlier attempt had already made this commit (found, not made again). */
  reused: boolean;
  /** The digest the file pinned before (absent when the entry had none). */
  previousDigest?: string;
}

export interface RevertResult extends Omit<PreparedChange, 'state'> {
  /** `nothing`: the release's change is not on the target branch (never merged), so there is nothing to revert. */
  state: ChangeState | 'nothing';
  /** The release commit reverted. */
  reverts?: string;
}

/** The environment repository: one repository, branch and file, as a gitops delivery section names them. */
export interface EnvironmentRepository {
  /**
   * Makes the release's change: fetch, edit the file for its format, commit with the trailers
   * `Slipway-Release`, `Slipway-Environment` and `Slipway-Digest`, and push — to the target branch (`direct`, a
   * fast-forward; nothing half-written: the commit lands whole or not at all) or to the release branch
   * `slipway/<environment>/<release>` (`branch`, for a pull request). Fails before committing anything when the
   * branch, the file or the image entry is missing.
   */
  applyChange(change: ReleaseChange, to: 'direct' | 'branch'): Promise<PreparedChange>;
  /** The release's change as it stands: on the target branch, on its release branch, or nowhere. */
  findChange(workflowId: string, environment: string, digest?: string): Promise<{ where: 'target' | 'branch'; commit: string; digest?: string } | undefined>;
  /**
   * Reverts the release's change on the target branch (git revert of its commit, trailer `Slipway-Revert-Of`),
   * directly or on `slipway-revert/<environment>/<release>` for a pull request. A conflict is a typed failure.
   */
  revertChange(workflowId: string, environment: string, to: 'direct' | 'branch'): Promise<RevertResult>;
}

export type PullRequestState = 'open' | 'merged' | 'closed';

export interface Review {
  user: string;
  /** APPROVED | CHANGES_REQUESTED | COMMENTED | … — each forge's word mapped onto these. */
  state: 'approved' | 'changes-requested' | 'commented' | 'other';
  /** The head commit the review was made on, where the forge says it. */
  commit?: string;
  at?: string;
}

export interface PullRequest {
  number: number;
  url: string;
  state: PullRequestState;
  title: string;
  head: { branch: string; sha?: string };
  base: string;
  author?: string;
  /** When merged: the merge (or squash) commit on the base branch, and who merged it. */
  mergeCommit?: string;
  mergedBy?: string;
  mergedAt?: string;
}

export interface PullRequestStatus extends PullRequest {
  /** Each reviewer's latest review (the forge's order: older first). */
  reviews: Review[];
  /** Distinct users whose latest review approves, the author excluded. */
  approvedBy: string[];
}

/** A webhook from the forge, reduced to what the release waits for. */
export interface WebhookEvent {
  pullRequest: number;
  /** The forge's action word: opened, closed, merged, reviewed, … */
  action: string;
  state: PullRequestState;
  merged: boolean;
  headBranch?: string;
  mergeCommit?: string;
  /** owner/repo (Gitea, GitHub) or the repository name (Azure Repos), to route it to the right releases. */
  repository?: string;
}

export interface OpenPullRequest {
  head: string;
  base: string;
  title: string;
  body: string;
}

/** A forge's pull requests for one repository. */
export interface Forge {
  /** Opens a pull request, or returns the one already open for this head and base (never a second). */
  openPullRequest(req: OpenPullRequest): Promise<PullRequest>;
  /** The newest pull request from this head into this base, in any state. */
  findPullRequest(head: string, base: string): Promise<PullRequest | undefined>;
  getPullRequest(number: number): Promise<PullRequestStatus>;
  /** Merges it (auto-merge, tests); `sha` guards against merging a head that moved. Merged already → its state. */
  mergePullRequest(number: number, opts?: { sha?: string; message?: string }): Promise<PullRequestStatus>;
  /** Throws a `bad-signature` failure unless the delivery is authentic (constant-time compare). */
  verifyWebhook(headers: Record<string, string | undefined>, body: Buffer | string, secret: string): void;
  /** The pull request event in a verified delivery; undefined for events that are not about a pull request. */
  parseWebhook(headers: Record<string, string | undefined>, body: Buffer | string): WebhookEvent | undefined;
}

/** Where Flux runs and which of its objects apply the environment repository (slipway.yaml delivery.flux). */
export interface FluxWaitRequest {
  target: { context: string; namespace: string };
  flux: { namespace: string; gitRepository: string; kustomization: string };
  /** The commit on the target branch that must be applied (the release's, or its revert). */
  commit: string;
  timeoutMs: number;
}

export interface FluxApplied {
  /** Flux's revision string for what it applied, e.g. main@sha1:<commit>. */
  revision: string;
  waitedMs: number;
  /** The reconcile.fluxcd.io/requestedAt value written to ask for an immediate reconcile. */
  requestedAt: string;
}

/** The controller that applies the environment repository to the cluster (Flux: activities/flux/flux.ts). */
export interface GitOpsController {
  /** Asks for a reconcile now, then waits until the commit is applied and ready; a failed apply fails with the controller's reason. */
  waitApplied(req: FluxWaitRequest, beat: (details: Record<string, unknown>) => void, signal?: AbortSignal): Promise<FluxApplied>;
}
